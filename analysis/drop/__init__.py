"""Attention, MLP and block dropping (He et al. 2024, "What Matters in Transformers? Not All
Attention is Needed"; reference: Shwai-He/LLM-Drop).

A module's importance is how much it changes the residual stream: the cosine similarity between
its input X and its output, averaged over calibration tokens. With ``h_l`` the residual entering
layer ``l`` and ``a_l`` / ``m_l`` what attention / MLP add:

* attention: cos(h_l, h_l + a_l)              (X = the residual entering input_layernorm)
* MLP:       cos(h_l + a_l, h_{l+1})          (X = the residual entering post_attention_layernorm)
* block:     cos(h_l, h_{l+1})
* span n:    cos(h_i, h_{i+n})                (n consecutive blocks)

The most similar modules matter least and are dropped: all ``k`` at once (``one-shot``) or one per
round with the scores recomputed on the already-dropped model (``iterative``).

* :func:`compute_scores` — every score above in one streaming pass (forward hooks, running sums).
* :func:`select_layers`, :func:`drop_modules`, :func:`drop` — choose and drop, in place. A dropped
  attention sublayer computes nothing and allocates no KV cache; dropped blocks are removed and
  ``num_hidden_layers`` shrinks (see ``analysis/dropped_modeling/modeling_dropped.py``, the code a
  dropped-model repo ships).
* :func:`perplexity`, :func:`mc_accuracy`, :func:`throughput`, :func:`module_times`,
  :func:`evaluate`, :func:`sweep` — what dropping costs and gains.
* :func:`save_dropped` — a repo folder that loads by name with
  ``AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`` without zooscope.
* :func:`run_drop` returns a :class:`DropReport` (``to_json()``, ``to_markdown()``, ``plot()``,
  ``write()``); ``zoo-analysis drop`` is its CLI.

Modules: ``scores``, ``surgery``, ``evaluate``, ``speed``, ``export`` (pure functions + result
dataclasses; the scores hook the residual-stream points of ``analysis.hooks``), ``report`` (the
report and :func:`run_drop`), ``plots``, ``cli``.
"""
from __future__ import annotations

# public name -> the module that defines it (re-exported here, imported on first use)
from ..lazy import lazy_exports

_EXPORTS = {
    "add_cli": "cli",
    "KINDS": "kinds",
    "MODES": "kinds",
    "check_kind": "kinds",
    "check_mode": "kinds",
    "ScoreResult": "scores",
    "compute_scores": "scores",
    "select_layers": "scores",
    "DROPPABLE_FAMILIES": "surgery",
    "FAMILY_CLASSES": "surgery",
    "DropResult": "surgery",
    "check_count": "surgery",
    "check_droppable": "surgery",
    "drop_modules": "surgery",
    "remove_blocks": "surgery",
    "drop": "surgery",
    "EvalResult": "evaluation",
    "perplexity": "evaluation",
    "read_mc": "evaluation",
    "mc_accuracy": "evaluation",
    "evaluate": "evaluation",
    "sweep": "evaluation",
    "fmt_value": "evaluation",
    "rows_table": "evaluation",
    "CLOCKS": "speed",
    "timer": "speed",
    "throughput": "speed",
    "module_times": "speed",
    "hook_overhead": "speed",
    "kv_cache_bytes": "speed",
    "own_memory": "speed",
    "quartiles": "speed",
    "paired_rounds": "speed",
    "speed_interval": "speed",
    "compare_speed": "speed",
    "format_interval": "speed",
    "MODELING_DIR": "export",
    "MODELING_FILE": "export",
    "save_dropped": "export",
    "model_card": "export",
    "default_repo_id": "export",
    "plot_scores": "plots",
    "plot_sweep": "plots",
    "DropReport": "report",
    "run_drop": "report",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
