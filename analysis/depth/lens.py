"""The logit lens: lm_head(final_norm(h_l)) against the model's own output (KL, top-k overlap)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import nn

from ..batching import batches, forward, token_weights
from ..batching import progress as _progress
from ..hooks import RESID_POST, RESID_PRE, Hooks
from ..models import DecoderAdapter, as_adapter

__all__ = ["LensResult", "logit_lens", "lens_statistics", "chunked_logsumexp"]


@dataclass
class LensResult:
    """``kl[l]`` = KL(p_final ‖ p_lens(h_l)) in nats and ``topk_overlap[l]`` = |top-k ∩ top-k|/k,
    averaged over the ``num_tokens`` measured tokens, for l = 0..L (l = L is the model's own output).

    With ``sample`` < 1 the head ran on a random ``sampled_tokens`` of them (the same share of every
    batch): the averages are then stratified estimates of the all-token means and ``kl_se`` /
    ``topk_overlap_se`` their standard errors (with the finite-population correction, so an exact
    lens, ``sample`` = 1, has standard error 0)."""

    kl: list[float]
    topk_overlap: list[float]
    k: int
    num_tokens: int
    excluded_positions: list[int]
    sample: float = 1.0
    sampled_tokens: int | None = None
    kl_se: list[float] | None = None
    topk_overlap_se: list[float] | None = None

    @property
    def exact(self) -> bool:
        return self.sampled_tokens is None or self.sampled_tokens == self.num_tokens

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


class _StratifiedMean:
    """Per-layer means over tokens from per-batch simple random samples (without replacement):
    Σ_b n_b · mean_b / N, and its variance Σ_b n_b² (1 − m_b/n_b) s_b² / m_b / N² (Cochran,
    *Sampling Techniques*, 5.5), for n_b measured and m_b sampled tokens in batch b."""

    def __init__(self, rows: int):
        self.total = torch.zeros(rows, dtype=torch.float64)
        self.variance = torch.zeros(rows, dtype=torch.float64)
        self.tokens = 0

    def add(self, values: torch.Tensor, measured: int) -> None:
        """``values`` (rows, m_b): one batch's sampled tokens."""
        values = values.double()
        m = values.shape[1]
        self.total += values.mean(1) * measured
        if m > 1 and m < measured:
            self.variance += measured ** 2 * (1 - m / measured) * values.var(1) / m
        self.tokens += measured

    def mean(self) -> list[float]:
        return (self.total / max(self.tokens, 1)).tolist()

    def standard_error(self) -> list[float]:
        return (self.variance.sqrt() / max(self.tokens, 1)).tolist()


@torch.no_grad()
def logit_lens(
    model,
    prompts: Sequence[torch.Tensor],
    *,
    k: int = 5,
    batch_size: int = 4,
    exclude_positions: Sequence[int] = (0,),
    pad_id: int = 0,
    chunk_tokens: int = 512,
    vocab_chunk: int = 4096,
    sample: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> LensResult:
    """Logit lens in one forward pass per batch: the hooks keep h_0..h_L at the measured tokens,
    the model's own output gives the reference, and every layer's lens is evaluated in chunks of
    ``chunk_tokens`` tokens x ``vocab_chunk`` vocabulary rows with the log-softmax and the KL fused
    (:func:`lens_statistics`): no layer's full log-probabilities are ever materialised.

    ``sample`` < 1 evaluates the head on that share of each batch's measured tokens (drawn with
    ``seed``), for models whose exact lens costs many forwards (the head on L+1 residual streams:
    ~6 forwards of a 49k-vocabulary 135M model); the result carries the standard errors."""
    if not 0 < sample <= 1:
        raise ValueError(f"sample must be in (0, 1], not {sample}")
    adapter = as_adapter(model)
    L = adapter.num_layers
    kl_mean, overlap_mean = _StratifiedMean(L + 1), _StratifiedMean(L + 1)
    sampled = 0
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, Any] = {}

    def keep_hidden(index: int, hidden: torch.Tensor):
        state["h"][index] = hidden[state["keep"]]

    for ids, mask in _progress(batches(prompts, batch_size, pad_id), desc="logit lens", progress=progress):
        keep = token_weights(mask, exclude_positions)
        measured = int(keep.sum())
        if measured == 0:
            continue
        if sample < 1:  # at least 2 per batch: one token gives no variance, so no standard error
            keep = _sample_tokens(keep, min(measured, max(2, round(sample * measured))), generator)
        keep = keep.to(adapter.device)
        state["keep"], state["h"] = keep, [None] * (L + 1)
        with _lens_hooks(adapter, keep_hidden):
            logits = forward(adapter, ids, mask).logits
        reference = logits[keep].float()
        del logits
        kl_values = torch.empty(L + 1, reference.shape[0], dtype=torch.float64)
        overlap_values = torch.empty_like(kl_values)
        for start in range(0, reference.shape[0], chunk_tokens):
            stop = start + chunk_tokens
            ref = reference[start:stop]
            ref_p = ref.softmax(-1)
            ref_logz = chunked_logsumexp(ref, vocab_chunk)
            ref_top = ref.topk(k, dim=-1).indices
            for index in range(L + 1):
                kl, overlap = lens_statistics(adapter, state["h"][index][start:stop], ref, ref_p,
                                              ref_logz, ref_top, vocab_chunk=vocab_chunk)
                kl_values[index, start:stop] = kl.cpu()
                overlap_values[index, start:stop] = overlap.cpu()
        kl_mean.add(kl_values, measured)
        overlap_mean.add(overlap_values, measured)
        sampled += reference.shape[0]
        state.clear()
    return LensResult(kl_mean.mean(), overlap_mean.mean(), k, kl_mean.tokens,
                      sorted(set(int(p) for p in exclude_positions)), sample=float(sample), sampled_tokens=sampled,
                      kl_se=kl_mean.standard_error(), topk_overlap_se=overlap_mean.standard_error())


def _sample_tokens(keep: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``keep`` with all but a uniform random ``count`` of its True entries cleared."""
    where = keep.flatten().nonzero().squeeze(1)
    chosen = where[torch.randperm(len(where), generator=generator)[:count]]
    out = torch.zeros(keep.numel(), dtype=torch.bool)
    out[chosen] = True
    return out.view_as(keep)


def _head(adapter: DecoderAdapter):
    """(weight, bias) of the LM head when it is a plain linear map (chunkable by vocabulary rows)."""
    head = adapter.lm_head
    if isinstance(head, nn.Linear):
        return head.weight, head.bias
    return None, None


def _chunk_logits(adapter: DecoderAdapter, normed: torch.Tensor, weight, bias, v0: int, v1: int) -> torch.Tensor:
    if weight is None:
        z = adapter.lm_head(normed)
    else:
        z = torch.nn.functional.linear(normed, weight[v0:v1], None if bias is None else bias[v0:v1])
    z = z.float()
    if adapter.softcap:
        z = torch.tanh(z / adapter.softcap) * adapter.softcap
    return z


def chunked_logsumexp(logits: torch.Tensor, vocab_chunk: int = 4096) -> torch.Tensor:
    """log Σ exp over the last axis by vocabulary chunks, combined in float64 (the lens' own
    algorithm, so that at the model's output both sides round alike)."""
    out = torch.full((logits.shape[0],), -math.inf, dtype=torch.float64, device=logits.device)
    for v0 in range(0, logits.shape[-1], vocab_chunk):
        out = torch.logaddexp(out, torch.logsumexp(logits[:, v0:v0 + vocab_chunk].float(), -1).double())
    return out


def lens_statistics(adapter: DecoderAdapter, hidden: torch.Tensor, ref_logits: torch.Tensor, ref_p: torch.Tensor,
                    ref_logz: torch.Tensor, ref_top: torch.Tensor, *,
                    vocab_chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(p ‖ softmax(z)) and |top-k(z) ∩ ref_top|/k per token, for z = the model's head on
    ``hidden`` (n, d) and p = softmax(``ref_logits``) (``ref_p``, with ``ref_logz`` its float64
    log-normaliser from :func:`chunked_logsumexp`). Fused over vocabulary chunks:
    KL = Σ p (r − z) + logsumexp z − logsumexp r, each chunk's logsumexp and dot product in float32
    (one fused pass each), combined across chunks in float64, and the top-k kept as running
    values, so only an (n, vocab_chunk) block of z exists; the difference r − z is taken before
    the sum, so at the model's own output (z = r) the KL is 0 up to the head's rounding rather
    than a difference of two entropies (within ~1e-8 nats of a float64 computation)."""
    k = ref_top.shape[-1]
    weight, bias = _head(adapter)
    normed = adapter.final_norm(hidden)
    V = ref_p.shape[-1]
    if weight is None:  # an unusual head: one chunk
        vocab_chunk = V
    n = hidden.shape[0]
    log_z = torch.full((n,), -math.inf, dtype=torch.float64, device=hidden.device)
    p_dot_d = torch.zeros(n, dtype=torch.float64, device=hidden.device)
    top_vals = torch.full((n, 0), -math.inf, device=hidden.device)
    top_idx = torch.zeros((n, 0), dtype=torch.long, device=hidden.device)
    for v0 in range(0, V, vocab_chunk):
        v1 = min(V, v0 + vocab_chunk)
        z = _chunk_logits(adapter, normed, weight, bias, v0, v1)
        # one fused pass per statistic: the chunk's logsumexp (combined across chunks in float64)
        # and Σ p (r − z) as a row-wise dot product (each chunk's sum added in float64)
        log_z = torch.logaddexp(log_z, torch.logsumexp(z, -1).double())
        p_dot_d += torch.einsum("nv,nv->n", ref_p[:, v0:v1], ref_logits[:, v0:v1] - z).double()
        vals, idx = z.topk(min(k, v1 - v0), dim=-1)
        top_vals, order = torch.cat([top_vals, vals], -1).topk(min(k, top_vals.shape[1] + vals.shape[1]), dim=-1)
        top_idx = torch.cat([top_idx, idx + v0], -1).gather(-1, order)
    kl = (p_dot_d + log_z - ref_logz).clamp_min(0)
    overlap = (top_idx[:, :, None] == ref_top[:, None, :]).any(-1).float().sum(-1) / k
    return kl, overlap


def _lens_hooks(adapter: DecoderAdapter, measure) -> Hooks:
    """``measure(l, h_l)`` for h_0..h_{L-1} (entering each layer) and h_L (leaving the last)."""
    L = adapter.num_layers
    hooks = Hooks(adapter)
    for l in range(L):
        hooks.read(RESID_PRE, l, lambda h, l=l: measure(l, h))
    hooks.read(RESID_POST, L - 1, lambda h: measure(L, h))
    return hooks
