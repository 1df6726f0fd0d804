"""Importance scores: how much each attention / MLP sublayer and block changes the residual stream.

cos(X, out) between a module's input and its output, averaged over calibration tokens, in one
streaming pass of forward hooks on the residual-stream points (analysis.hooks):

* attention: cos(resid_pre, resid_mid)     = cos(h_l, h_l + a_l)
* MLP:       cos(resid_mid, resid_post)    = cos(h_l + a_l, h_{l+1})
* block:     cos(resid_pre, resid_post)    = cos(h_l, h_{l+1})
* span n:    cos(h_i, h_{i+n})             (n consecutive blocks)

The most similar modules matter least (:func:`select_layers`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..batching import batches
from ..batching import progress as _progress
from ..dropped_modeling.modeling_dropped import DroppedAttention, DroppedMLP
from ..errors import UserError
from .kinds import KINDS, MODES, check_kind, check_mode
from ..hooks import RESID_MID, RESID_POST, RESID_PRE, Hooks
from ..models import DecoderAdapter, as_adapter

__all__ = ["KINDS", "MODES", "ScoreResult", "compute_scores", "select_layers", "check_kind", "check_mode",
           "attn_dropped", "mlp_dropped"]

_EPS = 1e-12


def _nan_to_none(values):
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in values]


def _none_to_nan(values):
    return [float("nan") if v is None else float(v) for v in values]


def attn_dropped(adapter: DecoderAdapter, l: int) -> bool:
    return isinstance(getattr(adapter.layers[l], adapter.family.attn, None), DroppedAttention)


def mlp_dropped(adapter: DecoderAdapter, l: int) -> bool:
    return isinstance(getattr(adapter.layers[l], adapter.family.mlp, None), DroppedMLP)


@dataclass
class ScoreResult:
    """Mean cosine similarity between each module's input and output (higher = less important).

    ``attn[l]`` / ``mlp[l]`` / ``block[l]`` per layer (NaN where the sublayer is already
    dropped); ``spans[n][i]`` = cos(h_i, h_{i+n}) for n consecutive blocks (``spans[1]`` equals
    ``block``). ``num_tokens`` tokens were averaged (padding excluded).
    """

    attn: list[float]
    mlp: list[float]
    block: list[float]
    spans: dict[int, list[float]]
    num_tokens: int

    @property
    def num_layers(self) -> int:
        return len(self.block)

    def of(self, kind: str) -> list[float]:
        return getattr(self, check_kind(kind))

    def to_dict(self) -> dict:
        return {"attn": _nan_to_none(self.attn), "mlp": _nan_to_none(self.mlp),
                "block": _nan_to_none(self.block),
                "spans": {str(n): _nan_to_none(v) for n, v in self.spans.items()},
                "num_tokens": self.num_tokens}

    @classmethod
    def from_dict(cls, data: dict) -> "ScoreResult":
        return cls(_none_to_nan(data["attn"]), _none_to_nan(data["mlp"]), _none_to_nan(data["block"]),
                   {int(n): _none_to_nan(v) for n, v in data.get("spans", {}).items()}, int(data["num_tokens"]))


def _cos_sum(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> float:
    """Σ over weighted tokens of cos(x_t, y_t), in float32 with float64 accumulation."""
    x = x.float()
    y = y.float()
    dots = (x * y).sum(-1)
    cos = dots / (x.norm(dim=-1) * y.norm(dim=-1)).clamp_min(_EPS)
    return float((cos.double() * weights.double()).sum())


@torch.no_grad()
def compute_scores(
    model,
    prompts,
    *,
    batch_size: int = 4,
    pad_id: int = 0,
    spans: Sequence[int] = (1, 2, 4),
    progress: bool = False,
) -> ScoreResult:
    """Every module's input/output cosine similarity over ``prompts`` (1-D token-id tensors), in
    one pass of forward hooks that keep running sums (one batch's residual states at a time)."""
    adapter = as_adapter(model)
    L = adapter.num_layers
    spans = sorted({int(n) for n in spans if 1 <= int(n) <= L} | {1})
    sums = {k: [0.0] * L for k in KINDS}
    span_sums = {n: [0.0] * (L - n + 1) for n in spans}
    tokens = 0
    state: dict[str, Any] = {}

    def pre_layer(l):
        def hook(h):
            state["h"][l] = h
        return hook

    def pre_mlp_norm(l):
        def hook(mid):
            sums["attn"][l] += _cos_sum(state["h"][l], mid, state["w"])
            state["mid"] = mid
        return hook

    def post_layer(l):
        def hook(out):
            state["h"][l + 1] = out
            sums["mlp"][l] += _cos_sum(state["mid"], out, state["w"])
            sums["block"][l] += _cos_sum(state["h"][l], out, state["w"])
        return hook

    try:
        with Hooks(adapter) as hooks:
            for l in range(L):
                hooks.read(RESID_PRE, l, pre_layer(l))
                hooks.read(RESID_MID, l, pre_mlp_norm(l))
                hooks.read(RESID_POST, l, post_layer(l))
            device = adapter.device
            for ids, mask in _progress(batches(prompts, batch_size, pad_id), desc="scores", progress=progress):
                state["h"] = [None] * (L + 1)
                state["w"] = mask.to(device=device, dtype=torch.float32)
                tokens += int(mask.sum())
                adapter.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
                h = state["h"]
                for n in spans:
                    for i in range(L - n + 1):
                        span_sums[n][i] += _cos_sum(h[i], h[i + n], state["w"])
    finally:
        state.clear()
    if tokens == 0:
        raise UserError("no calibration tokens")
    means = {k: [s / tokens for s in v] for k, v in sums.items()}
    for l in range(L):  # a dropped sublayer is not a candidate any more
        if attn_dropped(adapter, l):
            means["attn"][l] = float("nan")
        if mlp_dropped(adapter, l):
            means["mlp"][l] = float("nan")
    span_means = {n: [s / tokens for s in v] for n, v in span_sums.items()}
    return ScoreResult(means["attn"], means["mlp"], means["block"], span_means, tokens)


def select_layers(scores: Sequence[float], k: int) -> list[int]:
    """The ``k`` layers with the highest similarity (NaN = not a candidate), ties to the lower
    index, in decreasing order of similarity."""
    candidates = [(-float(s), i) for i, s in enumerate(scores) if s is not None and not math.isnan(float(s))]
    if k > len(candidates):
        raise UserError(f"cannot drop {k} modules: only {len(candidates)} left to drop")
    return [i for _, i in sorted(candidates)[:k]]
