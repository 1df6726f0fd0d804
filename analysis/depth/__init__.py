"""Residual-stream depth probes: how does a decoder LM use its layers?

After Csordás et al. 2025, "Do Language Models Use Their Depth Efficiently?". With ``h_l`` the
residual stream entering layer ``l``, ``a_l`` what attention adds and ``m_l`` what the MLP adds
(``h_{l+1} = h_l + a_l + m_l``):

* :func:`contributions` — ‖a_l‖/‖h_l‖, ‖m_l‖/‖h_l+a_l‖, ‖h_{l+1}−h_l‖/‖h_l‖ and the cosines
  cos(a_l,h_l), cos(m_l,h_l+a_l), cos(Δh,h), averaged over tokens; plus the residual stream's
  largest outlier dimensions per layer (attention sinks / massive activations), all from
  running sums in forward hooks (nothing is cached).
* :func:`skip_effects` — skip a layer (output := input), or an attention / MLP sublayer
  (output := 0) at some positions; the relative change of every layer's contribution
  ‖Δ(h_{j+1}−h_j)‖/‖h_{j+1}−h_j‖ and of the next-token distribution ‖p−p′‖₂, maxed over
  positions and prompts → L×L matrices. Variants share the unchanged prefix of layers and run
  batched (:func:`skip_effects_reference` is the plain one-forward-per-variant version).
* :func:`logit_lens` — lm_head(final_norm(h_l)) against the model's output: KL and top-k overlap,
  in one forward per batch with the head in token x vocabulary chunks (:func:`lens_statistics`).
* :func:`estimate_flops` — what each analysis will cost, from the weight shapes (the CLI prints it).
* :func:`depth_score` — Σ l·e_l / Σ e_l.
* :func:`linear_maps` — closed-form ridge maps from one model's residual stream to another's
  (same tokenizer): relative error, source layer × target layer.

:func:`run_depth` runs them all and returns a :class:`DepthReport` (``to_json()``, ``plot()``,
``to_markdown()``, ``write(out_dir)``); ``zoo-analysis depth`` is its CLI.

Modules: ``contributions``, ``skip``, ``logit_lens``, ``maps`` (pure functions + result dataclasses,
working through ``analysis.hooks`` on the residual-stream points), ``report`` (the report and
:func:`run_depth`), ``resources`` (length and memory checks), ``plots``, ``cli``.
"""
from __future__ import annotations

# public name -> the module that defines it (re-exported here, imported on first use)
from ..lazy import lazy_exports

_EXPORTS = {
    "add_cli": "cli",
    "ANALYSES": "names",
    "CONTRIB_FIELDS": "contrib",
    "ContributionResult": "contrib",
    "contributions": "contrib",
    "collect_activations": "contrib",
    "KINDS": "skip",
    "SkipResult": "skip",
    "skip_masks": "skip",
    "skipping": "skip",
    "skip_forward": "skip",
    "choose_positions": "skip",
    "skip_effects": "skip",
    "skip_effects_reference": "skip",
    "LensResult": "lens",
    "logit_lens": "lens",
    "LinearMapResult": "maps",
    "collect_streams": "maps",
    "fit_linear_maps": "maps",
    "check_same_tokenizer": "maps",
    "linear_maps": "maps",
    "DepthReport": "report",
    "depth_score": "report",
    "run_depth": "report",
    "max_positions": "resources",
    "check_max_tokens": "resources",
    "estimate_memory": "resources",
    "estimate_flops": "resources",
    "measure_rate": "resources",
    "LAPTOP_FLOPS": "resources",
    "lens_statistics": "lens",
    "chunked_logsumexp": "lens",
    "MIN_OUTPUT_SAMPLES": "skip",
    "skip_output_refusal": "skip",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
