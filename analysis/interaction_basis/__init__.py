"""The interaction basis (``zoo-analysis interaction-basis``; Bushnaq et al. 2024, "Using
Degeneracy in the Loss Landscape for Mechanistic Interpretability"; RESEARCH.md F1): a basis of
each layer's activations invariant to the reparameterisations that linear dependence between
activations and between the gradients passed back to the layer allow, and the interaction graph
between consecutive layers' basis directions, against PCA and the neuron basis.

=============  ==================================================================================
``basis``      pure float64 linear algebra: ``interaction_rotation``, ``gram_eigenbasis``,
               ``neuron_basis``, ``LayerBasis``
``sparsity``   ``gini``, ``top_k_share``, ``edges_for_share``, ``edge_sparsity``
``collect``    node layers (``Node``, ``module_nodes``, ``decoder_mlp_nodes``) and the streamed
               statistics: ``gram_matrices``, ``gradient_gram``, ``edge_attributions``,
               ``projection_effect``
``report``     ``interaction_basis`` → ``InteractionReport`` (``to_json``, ``write``, ``summary_markdown``)
``plots``      ``plot_report``, ``plot_importance``, ``plot_graph``
``cli``        ``add_cli`` (``zoo-analysis interaction-basis``)
=============  ==================================================================================
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "add_cli": "cli",
    **{name: "basis" for name in ("LayerBasis", "interaction_rotation", "gram_eigenbasis", "neuron_basis", "eigh_descending")},
    **{name: "sparsity" for name in ("gini", "top_k_share", "edges_for_share", "edge_sparsity")},
    **{name: "collect" for name in ("Node", "module_nodes", "decoder_mlp_nodes", "gram_matrices", "gradient_gram",
                                    "edge_attributions", "projection_effect")},
    **{name: "report" for name in ("interaction_basis", "InteractionReport", "LayerResult", "PairResult",
                                   "directions_for_share")},
    **{name: "plots" for name in ("plot_report", "plot_importance", "plot_graph")},
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
