"""MgNO, work in progress: the V-cycle operator layers (modeling_mgno.py) and their config.

Not registered as a zoo architecture yet (no ARCHITECTURE here): its output is a field
(batch, channels, n, n), and tests/test_registry.py's parametrised contract assumes
logits of shape (batch, num_labels) with a num_labels=1 regressor variant, which an operator
whose grid must halve num_levels times cannot meet. See /work/notes/issue17-operators.md.
"""
