"""The logit lens: lm_head(final_norm(h_l)) against the model's own output (KL, top-k overlap)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from ..batching import batches, forward, token_weights
from ..batching import progress as _progress
from ..hooks import RESID_POST, RESID_PRE, Hooks
from ..models import DecoderAdapter, as_adapter

__all__ = ["LensResult", "logit_lens"]


@dataclass
class LensResult:
    """``kl[l]`` = KL(p_final ‖ p_lens(h_l)) in nats and ``topk_overlap[l]`` = |top-k ∩ top-k|/k,
    averaged over tokens, for l = 0..L (l = L is the model's own output)."""

    kl: list[float]
    topk_overlap: list[float]
    k: int
    num_tokens: int
    excluded_positions: list[int]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


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
    progress: bool = True,
) -> LensResult:
    """Logit lens in two passes per batch: the final distribution, then every layer's lens
    evaluated in the hooks (token chunks of ``chunk_tokens``) — no stored residual stream."""
    adapter = as_adapter(model)
    L = adapter.num_layers
    kl_sum = torch.zeros(L + 1, dtype=torch.float64)
    overlap_sum = torch.zeros(L + 1, dtype=torch.float64)
    tokens = 0
    state: dict[str, Any] = {}

    def measure(index: int, hidden: torch.Tensor):
        flat = hidden[state["keep"]]
        for start in range(0, flat.shape[0], chunk_tokens):
            logp = adapter.logits(flat[start:start + chunk_tokens]).float().log_softmax(-1)
            ref = state["logp"][start:start + chunk_tokens]
            kl = (ref.exp() * (ref - logp)).sum(-1)
            top = logp.topk(k, dim=-1).indices
            ref_top = state["top"][start:start + chunk_tokens]
            overlap = (top[:, :, None] == ref_top[:, None, :]).any(-1).float().sum(-1) / k
            kl_sum[index] += float(kl.sum())
            overlap_sum[index] += float(overlap.sum())

    for ids, mask in _progress(batches(prompts, batch_size, pad_id), desc="logit lens", progress=progress):
        keep = token_weights(mask, exclude_positions).to(adapter.device)
        logits = forward(adapter, ids, mask).logits
        state["keep"] = keep
        state["logp"] = logits[keep].float().log_softmax(-1)
        state["top"] = state["logp"].topk(k, dim=-1).indices
        del logits
        tokens += int(keep.sum())
        with _lens_hooks(adapter, measure):
            forward(adapter, ids, mask)
        state.clear()
    n = max(tokens, 1)
    return LensResult((kl_sum / n).tolist(), (overlap_sum / n).tolist(), k, tokens,
                      sorted(set(int(p) for p in exclude_positions)))


def _lens_hooks(adapter: DecoderAdapter, measure) -> Hooks:
    """``measure(l, h_l)`` for h_0..h_{L-1} (entering each layer) and h_L (leaving the last)."""
    L = adapter.num_layers
    hooks = Hooks(adapter)
    for l in range(L):
        hooks.read(RESID_PRE, l, lambda h, l=l: measure(l, h))
    hooks.read(RESID_POST, L - 1, lambda h: measure(L, h))
    return hooks
