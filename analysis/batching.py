"""The small helpers every analysis tool shares: padding id, progress bars, prompt batches."""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from .prompts import iter_batches

__all__ = ["pad_id", "progress", "batches", "token_weights", "forward"]


def pad_id(tokenizer) -> int:
    """The id to pad prompts with: the tokenizer's pad token, else its end-of-sequence token, else 0
    (padding is masked out everywhere, so only a valid id matters)."""
    for attribute in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attribute, None)
        if isinstance(value, int):
            return value
    return 0


def progress(iterable: Iterable, total: int | None = None, desc: str | None = None, progress: bool = True):
    """``iterable`` with a tqdm bar that disappears when done, or as it is when ``progress`` is False."""
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def batches(prompts, batch_size: int, pad_id: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded ``(input_ids, attention_mask)`` batches of ``prompts`` (1-D token-id tensors,
    or a 2-D tensor of rows, or one 1-D tensor), in order."""
    if isinstance(prompts, torch.Tensor):
        prompts = [p for p in (prompts if prompts.dim() == 2 else prompts[None])]
    return list(iter_batches(list(prompts), batch_size, pad_id))


def token_weights(mask: torch.Tensor, exclude: Sequence[int]) -> torch.Tensor:
    """Boolean (B, T): real tokens not at an excluded position (negative positions count from the end)."""
    keep = mask.bool().clone()
    length = keep.shape[1]
    for position in exclude:
        if -length <= position < length:
            keep[:, position] = False
    return keep


def forward(adapter, ids: torch.Tensor, mask: torch.Tensor | None = None):
    """The model's forward on one batch (moved to the model's device), without a KV cache."""
    device = adapter.device
    ids = ids.to(device)
    if mask is not None:
        mask = mask.to(device)
    return adapter.model(input_ids=ids, attention_mask=mask, use_cache=False)
