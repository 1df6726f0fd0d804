"""Convergent learning (Li, Yosinski, Clune, Lipson, Hopcroft 2015): do networks that differ only
in their seed learn the same units?

Pipeline, one pass over the inputs:

1. ``collect_statistics`` runs every model on the same batches with forward hooks on the chosen
   modules (a layer is a module path as ``named_modules()`` gives it; its output is the layer's
   units) and streams the outputs into ``LayerStatistics``: float64 running sums of each
   model's units, their within-model Gram matrices and the cross-model Gram matrices. A
   convolutional output ``(N, C, H, W)`` counts each position as a sample of its ``C`` channel
   units; a sequence output ``(B, T, D)`` counts each non-padding token. No activation is kept
   beyond the current batch. Optionally ``BinnedMI`` accumulates joint histograms for a binned,
   Miller-Madow bias-corrected mutual information.
2. From the statistics: ``match_units`` (one-to-one matching with the maximum total correlation
   by ``scipy.optimize.linear_sum_assignment``, and semi-matching: each unit's best partner),
   ``rotation_baseline`` (the same matching against a random rotation of the other net's units:
   what is left when two nets span the same space in unrelated bases), ``canonical_correlations``
   (does the other net span the same subspace at all?), ``sparse_prediction`` (L1-regularised
   linear maps from one net's units to the other's along a λ path: error against nonzero
   weights, one-to-many) and ``spectral_groups`` (spectral clustering of both nets' units on
   the joint correlation graph: many-to-many groups and their make-up).
3. ``compare_models`` ties it together into a ``ConvergentReport`` (``to_json()``, ``write()``,
   ``plot()``, markdown summary); ``zoo-analysis match`` is the CLI.

The package, one module per step; the core modules are pure functions and result dataclasses:

===============  ===========================================================================
``statistics``   ``flatten_units``, ``LayerStatistics``, ``BinnedMI`` (streaming moments, MI)
``matching``     ``Matching``, ``match_units``, ``column_argmax``, ``rotation_baseline``,
                 ``canonical_correlations``
``sparse``       ``SparsePath``, ``sparse_prediction``, ``unstandardise``
``spectral``     ``SpectralGroups``, ``spectral_groups``
``report``       ``PairComparison``, ``ConvergentReport``, ``jsonable``
``plots``        ``plot_report`` (the figures of a report)
``inputs``       models, layers, inputs: ``load_models``, ``list_layers``, ``check_layers``,
                 ``layer_shapes``, ``check_inputs``, ``image_batches``, ``text_batches``
``collect``      ``collect_statistics`` (the hooks and the one pass)
``compare``      ``compare_pair``, ``compare_models``
``cli``          ``add_cli`` (``zoo-analysis match``)
===============  ===========================================================================

Every name is re-exported here (``from analysis.convergent import match_units``), as before the
split (imported on first use); so are the round-1 private names other code used
(``_check_inputs``, ``_column_argmax``).
"""
from __future__ import annotations

from ..lazy import lazy_exports

# public name -> (module, name there); imported on first use, so that building the zoo-analysis
# parser (which needs only ``add_cli``) does not load torch. No sub-module is named like a name
# exported here, so importing one never hides an export.

_EXPORTS = {
    "add_cli": ("cli", "add_cli"),
    "collect_statistics": ("collect", "collect_statistics"),
    "compare_models": ("compare", "compare_models"),
    "compare_pair": ("compare", "compare_pair"),
    "check_inputs": ("inputs", "check_inputs"),
    "check_layers": ("inputs", "check_layers"),
    "image_batches": ("inputs", "image_batches"),
    "input_kind": ("inputs", "input_kind"),
    "layer_shapes": ("inputs", "layer_shapes"),
    "list_layers": ("inputs", "list_layers"),
    "load_models": ("inputs", "load_models"),
    "text_batches": ("inputs", "text_batches"),
    "Matching": ("matching", "Matching"),
    "canonical_correlations": ("matching", "canonical_correlations"),
    "column_argmax": ("matching", "column_argmax"),
    "match_units": ("matching", "match_units"),
    "rotation_baseline": ("matching", "rotation_baseline"),
    "plot_report": ("plots", "plot_report"),
    "ConvergentReport": ("report", "ConvergentReport"),
    "PairComparison": ("report", "PairComparison"),
    "jsonable": ("report", "jsonable"),
    "SparsePath": ("sparse", "SparsePath"),
    "sparse_prediction": ("sparse", "sparse_prediction"),
    "unstandardise": ("sparse", "unstandardise"),
    "SpectralGroups": ("spectral", "SpectralGroups"),
    "spectral_groups": ("spectral", "spectral_groups"),
    "BinnedMI": ("statistics", "BinnedMI"),
    "LayerStatistics": ("statistics", "LayerStatistics"),
    "flatten_units": ("statistics", "flatten_units"),
}
# round-1 names (the module was one file), kept for code written against it
_ALIASES = {
    "_check_inputs": ("inputs", "check_inputs"),
    "_input_kind": ("inputs", "input_kind"),
    "_column_argmax": ("matching", "column_argmax"),
    "_layer_sizes": ("inputs", "layer_shapes"),
    "_jsonable": ("report", "jsonable"),
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, {**_EXPORTS, **_ALIASES}, globals())
