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

from ..dropped_modeling.modeling_dropped import FAMILY_CLASSES
from .cli import add_cli
from .evaluate import EvalResult, evaluate, fmt_value, mc_accuracy, perplexity, read_mc, rows_table, sweep
from .export import MODELING_DIR, MODELING_FILE, default_repo_id, model_card, save_dropped
from .plots import plot_scores, plot_sweep
from .report import DropReport, run_drop
from .scores import KINDS, MODES, ScoreResult, check_kind, check_mode, compute_scores, select_layers
from .speed import CLOCKS, hook_overhead, kv_cache_bytes, module_times, own_memory, throughput, timer
from .surgery import (
    DROPPABLE_FAMILIES,
    DropResult,
    check_count,
    check_droppable,
    drop,
    drop_modules,
    remove_blocks,
)

__all__ = [
    "KINDS",
    "MODES",
    "CLOCKS",
    "DROPPABLE_FAMILIES",
    "FAMILY_CLASSES",
    "MODELING_DIR",
    "MODELING_FILE",
    "ScoreResult",
    "DropResult",
    "EvalResult",
    "DropReport",
    "compute_scores",
    "select_layers",
    "check_kind",
    "check_mode",
    "check_count",
    "check_droppable",
    "drop_modules",
    "remove_blocks",
    "drop",
    "perplexity",
    "read_mc",
    "mc_accuracy",
    "timer",
    "throughput",
    "module_times",
    "hook_overhead",
    "kv_cache_bytes",
    "own_memory",
    "evaluate",
    "sweep",
    "fmt_value",
    "rows_table",
    "save_dropped",
    "model_card",
    "default_repo_id",
    "plot_scores",
    "plot_sweep",
    "run_drop",
    "add_cli",
]
