"""Representational geometry (``zoo-analysis geometry``): how a layer's representation relates to
another representation, to the targets, and to the structure of the conditions.

===========  =================================================================================
``metrics``  pure functions on (examples, units) arrays: ``hsic_unbiased``, ``hsic_biased``,
             ``linear_cka``, ``kernel_cka``, ``rdm``, ``rsa``, ``kernel_target_alignment``,
             ``target_matrix``, ``condition_means``, ``parallelism_score``, ``ccgp``
``collect``  ``layer_representations`` (forward hooks on named layers), ``dataset_batches``
``report``   ``measure`` → ``GeometryReport`` (``to_json``, ``write``, ``summary_markdown``)
``plots``    ``plot_report``
``cli``      ``add_cli`` (``zoo-analysis geometry``)
===========  =================================================================================

Used for Alleman, Lindsey & Fusi (2024), tanh vs ReLU geometry, with the zoo data set
``geometry_task`` (the parameterised tasks, one alignment knob).
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "add_cli": ("cli", "add_cli"),
    "layer_representations": ("collect", "layer_representations"),
    "dataset_batches": ("collect", "dataset_batches"),
    "GeometryReport": ("report", "GeometryReport"),
    "LayerGeometry": ("report", "LayerGeometry"),
    "measure": ("report", "measure"),
    "plot_report": ("plots", "plot_report"),
    **{name: ("metrics", name) for name in ("hsic_unbiased", "hsic_biased", "linear_cka", "kernel_cka", "rdm", "rsa",
                                            "kernel_target_alignment", "target_matrix", "condition_means",
                                            "parallelism_score", "ccgp")},
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
