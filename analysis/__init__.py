"""zooscope analysis tools: load any model by name and measure it.

Each tool is one package of pure functions and result dataclasses (``analysis.depth``,
``analysis.drop``, ``analysis.convergent``, ...) with a ``zoo-analysis`` sub-command. What they
share: ``analysis.models`` (load by name, the decoder adapter), ``analysis.hooks`` (one hooks
context manager, one residual-stream vocabulary), ``analysis.batching`` (padding, batches,
progress bars) and ``analysis.runner`` (the CLI runner: common options, atomic ``--out``, errors).
"""

__all__ = ["load_model", "DecoderAdapter"]


def __getattr__(name):
    # ``analysis.load_model`` / ``analysis.DecoderAdapter`` without importing torch at package import
    if name in ("load_model", "DecoderAdapter"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
