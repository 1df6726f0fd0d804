"""Relative contributions of each layer to the residual stream, from running sums in hooks.

‖a_l‖/‖h_l‖, ‖m_l‖/‖h_l+a_l‖, ‖h_{l+1}−h_l‖/‖h_l‖ and the cosines cos(a_l,h_l), cos(m_l,h_l+a_l),
cos(Δh,h), averaged over tokens; plus the residual stream's largest outlier dimensions per layer
(attention sinks / massive activations). Nothing is cached: one batch's tensors at a time.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from ..batching import batches, forward, token_weights
from ..batching import progress as _progress
from ..hooks import ATTN_OUT, MLP_OUT, RESID_POST, RESID_PRE, Hooks
from ..models import DecoderAdapter, as_adapter

__all__ = ["CONTRIB_FIELDS", "ContributionResult", "contributions", "collect_activations"]

_EPS = 1e-12

CONTRIB_FIELDS = ("attn_ratio", "mlp_ratio", "layer_ratio", "attn_cos", "mlp_cos", "layer_cos")


@dataclass
class ContributionResult:
    """Per-layer averages over tokens (index l = layer l; ``residual_norm`` has L+1 entries).

    ``excluded_positions`` lists the positions left out of the averages (attention sinks
    usually sit at position 0). ``outliers[l]`` lists the residual dimensions with the largest
    share of ‖h_l‖² at the first position, at the other positions, and over all tokens
    (``all_positions``: E[h_d²]/E‖h‖²).
    """

    attn_ratio: list[float]
    mlp_ratio: list[float]
    layer_ratio: list[float]
    attn_cos: list[float]
    mlp_cos: list[float]
    layer_cos: list[float]
    residual_norm: list[float]
    num_tokens: int
    excluded_positions: list[int]
    outliers: list[dict] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return len(self.layer_ratio)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


class _ContributionAccumulator:
    def __init__(self, adapter: DecoderAdapter, top_dims: int = 3):
        self.adapter = adapter
        L, d = adapter.num_layers, adapter.hidden_size
        self.sums = torch.zeros(len(CONTRIB_FIELDS), L, dtype=torch.float64)
        self.norm_sums = torch.zeros(L + 1, dtype=torch.float64)
        self.sq_first = torch.zeros(L + 1, d, dtype=torch.float64)
        self.sq_rest = torch.zeros(L + 1, d, dtype=torch.float64)
        self.max_first = torch.zeros(L + 1, dtype=torch.float64)
        self.max_rest = torch.zeros(L + 1, dtype=torch.float64)
        self.tokens = 0
        self.top_dims = top_dims
        self.weights: torch.Tensor | None = None  # (B, T) float, tokens in the averages
        self.real: torch.Tensor | None = None  # (B, T) bool, non-padding tokens
        self._h = self._a = self._m = None

    def begin(self, mask: torch.Tensor, exclude: Sequence[int]):
        device = self.adapter.device
        self.weights = token_weights(mask, exclude).to(device=device, dtype=torch.float32)
        self.real = mask.bool().to(device)
        self.tokens += int(self.weights.sum().item())

    def _outliers(self, index: int, h: torch.Tensor):
        real = self.real.to(h.device).float()
        for row in range(h.shape[0]):  # one sequence at a time: temporaries stay T x d
            hb = h[row].float()
            mask = real[row]
            squared = hb.square()
            self.sq_first[index] += (squared[0] * mask[0]).double().cpu()
            self.sq_rest[index] += (squared[1:] * mask[1:, None]).sum(0).double().cpu()
            peaks = hb.abs().amax(dim=-1) * mask
            self.max_first[index] = max(float(self.max_first[index]), float(peaks[0]))
            if hb.shape[0] > 1:
                self.max_rest[index] = max(float(self.max_rest[index]), float(peaks[1:].max()))

    def attach(self, hooks: Hooks) -> Hooks:
        for l in range(self.adapter.num_layers):
            hooks.read(RESID_PRE, l, self._pre(l))
            hooks.read(ATTN_OUT, l, self._store("_a"))
            hooks.read(MLP_OUT, l, self._store("_m"))
            hooks.read(RESID_POST, l, self._post(l))
        return hooks

    def _pre(self, l):
        def hook(h):
            self._h = h
            if l == 0:
                self._outliers(0, self._h)
        return hook

    def _store(self, name):
        def hook(tensor):
            setattr(self, name, tensor)
        return hook

    def _post(self, l):
        def hook(out):
            h, a, m = self._h, self._a, self._m
            self._h = self._a = self._m = None
            w = self.weights.to(out.device)  # layers may sit on different devices (device_map)
            # one sequence at a time, so the temporaries are T x d rather than B x T x d
            for row in range(out.shape[0]):
                self._add(l, h[row].float(), a[row].float(), m[row].float(), out[row].float(), w[row])
            self._outliers(l + 1, out)
        return hook

    def _add(self, l, h, a, m, out, w):
        mid = h + a
        dh = out - h
        nh, na, nm = h.norm(dim=-1), a.norm(dim=-1), m.norm(dim=-1)
        nmid, ndh = mid.norm(dim=-1), dh.norm(dim=-1)
        values = (
            na / nh.clamp_min(_EPS),
            nm / nmid.clamp_min(_EPS),
            ndh / nh.clamp_min(_EPS),
            (a * h).sum(-1) / (na * nh).clamp_min(_EPS),
            (m * mid).sum(-1) / (nm * nmid).clamp_min(_EPS),
            (dh * h).sum(-1) / (ndh * nh).clamp_min(_EPS),
        )
        for index, value in enumerate(values):
            self.sums[index, l] += float((value * w).sum())
        self.norm_sums[l] += float((nh * w).sum())
        if l == self.adapter.num_layers - 1:
            self.norm_sums[l + 1] += float((out.norm(dim=-1) * w).sum())

    def result(self, exclude: Sequence[int]) -> ContributionResult:
        n = max(self.tokens, 1)
        means = (self.sums / n).tolist()
        outliers = []
        for index in range(self.sq_first.shape[0]):
            first_share = self.sq_first[index] / self.sq_first[index].sum().clamp_min(_EPS)
            rest_share = self.sq_rest[index] / self.sq_rest[index].sum().clamp_min(_EPS)
            every = self.sq_first[index] + self.sq_rest[index]
            all_share = every / every.sum().clamp_min(_EPS)
            outliers.append({
                "layer": index,
                "first_position": [
                    {"dim": int(i), "share": float(first_share[i])}
                    for i in torch.argsort(first_share, descending=True)[: self.top_dims]
                ],
                "other_positions": [
                    {"dim": int(i), "share": float(rest_share[i])}
                    for i in torch.argsort(rest_share, descending=True)[: self.top_dims]
                ],
                # E[h_d²] / E‖h‖² over every token (position 0 and the rest together)
                "all_positions": [
                    {"dim": int(i), "share": float(all_share[i])}
                    for i in torch.argsort(all_share, descending=True)[: self.top_dims]
                ],
                "max_abs_first": float(self.max_first[index]),
                "max_abs_other": float(self.max_rest[index]),
                "mean_sq_norm_first": float(self.sq_first[index].sum()),
                "mean_sq_norm_other": float(self.sq_rest[index].sum()),
            })
        counts_first = max(1, self._count_first)
        counts_rest = max(1, self._count_rest)
        for entry in outliers:
            entry["mean_sq_norm_first"] /= counts_first
            entry["mean_sq_norm_other"] /= counts_rest
        return ContributionResult(
            *means,
            residual_norm=(self.norm_sums / n).tolist(),
            num_tokens=self.tokens,
            excluded_positions=sorted(set(int(p) for p in exclude)),
            outliers=outliers,
        )

    _count_first = 0
    _count_rest = 0

    def count(self, mask: torch.Tensor):
        self._count_first += int(mask[:, :1].sum())
        self._count_rest += int(mask[:, 1:].sum())


@torch.no_grad()
def contributions(
    model,
    prompts: Sequence[torch.Tensor],
    *,
    batch_size: int = 8,
    exclude_positions: Sequence[int] = (0,),
    pad_id: int = 0,
    progress: bool = True,
) -> ContributionResult:
    """Relative contributions and cosines per layer, as running sums in forward hooks."""
    adapter = as_adapter(model)
    acc = _ContributionAccumulator(adapter)
    chunks = batches(prompts, batch_size, pad_id)
    with acc.attach(Hooks(adapter)):
        for ids, mask in _progress(chunks, desc="contributions", progress=progress):
            acc.begin(mask, exclude_positions)
            acc.count(mask)
            forward(adapter, ids, mask)
    return acc.result(exclude_positions)


@torch.no_grad()
def collect_activations(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict:
    """Every h_l (L+1), a_l and m_l (L) of one batch, stacked: the stored-activations way.

    For tests and comparisons; the tools themselves never keep these.
    """
    adapter = as_adapter(model)
    hs: list = [None] * (adapter.num_layers + 1)
    attn: list = [None] * adapter.num_layers
    mlp: list = [None] * adapter.num_layers
    with Hooks(adapter) as hooks:
        for l in range(adapter.num_layers):
            def pre(h, l=l):
                hs[l] = h.detach().clone()
            def post(out, l=l):
                hs[l + 1] = out.detach().clone()
            def a_hook(a, l=l):
                attn[l] = a.detach().clone()
            def m_hook(m, l=l):
                mlp[l] = m.detach().clone()
            hooks.read(RESID_PRE, l, pre)
            hooks.read(RESID_POST, l, post)
            hooks.read(ATTN_OUT, l, a_hook)
            hooks.read(MLP_OUT, l, m_hook)
        output = forward(adapter, input_ids, attention_mask)
    return {"h": torch.stack(hs), "attn": torch.stack(attn), "mlp": torch.stack(mlp),
            "logits": output.logits}
