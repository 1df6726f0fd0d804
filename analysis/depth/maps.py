"""Closed-form ridge maps from one model's residual stream to another's (same tokenizer):
held-out relative error, source layer × target layer."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from ..batching import batches, forward, token_weights
from ..batching import progress as _progress
from ..errors import UserError
from ..hooks import RESID_POST, RESID_PRE, Hooks
from ..models import as_adapter

__all__ = ["LinearMapResult", "collect_streams", "fit_linear_maps", "check_same_tokenizer", "linear_maps"]

_EPS = 1e-12


@dataclass
class LinearMapResult:
    """``relative_error[s][t]``: held-out ‖Ŷ−Y‖²/‖Y−Ȳ‖² predicting the target model's h_t
    from the source model's h_s with a ridge map (1 = no better than the mean)."""

    source: str
    target: str
    relative_error: list[list[float]]
    ridge: float
    num_train: int
    num_test: int
    excluded_positions: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def best_target(self) -> list[int]:
        """For each source layer, the target layer it predicts best."""
        return [int(torch.tensor(row).argmin()) for row in self.relative_error]


@torch.no_grad()
def collect_streams(
    model,
    prompts: Sequence[torch.Tensor],
    *,
    batch_size: int = 8,
    exclude_positions: Sequence[int] = (0,),
    max_tokens: int = 4096,
    pad_id: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """(N, L+1, d) float32 residual states h_0..h_L at the first ``max_tokens`` kept tokens."""
    adapter = as_adapter(model)
    L = adapter.num_layers
    rows: list[torch.Tensor] = []
    taken = 0
    for ids, mask in _progress(batches(prompts, batch_size, pad_id), desc="streams", progress=progress):
        if taken >= max_tokens:
            break
        keep = token_weights(mask, exclude_positions).to(adapter.device)
        per_layer: list = [None] * (L + 1)
        with Hooks(adapter) as hooks:
            for l in range(L):
                def pre(h, l=l):
                    per_layer[l] = h[keep].float().cpu()
                hooks.read(RESID_PRE, l, pre)

            def last(out):
                per_layer[L] = out[keep].float().cpu()
            hooks.read(RESID_POST, L - 1, last)
            forward(adapter, ids, mask)
        stacked = torch.stack(per_layer, dim=1)[: max_tokens - taken]
        rows.append(stacked)
        taken += stacked.shape[0]
    return torch.cat(rows)


@torch.no_grad()
def fit_linear_maps(
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    ridge: float = 1e-3,
    test_fraction: float = 0.25,
    seed: int = 0,
    source_name: str = "source",
    target_name: str = "target",
    excluded_positions: Sequence[int] = (),
) -> LinearMapResult:
    """Closed-form ridge maps h_s(source) → h_t(target) for every pair of layers.

    ``source`` is (N, Ls, ds) and ``target`` (N, Lt, dt), rows aligned token by token. Both are
    centred with the training means (an intercept); the ridge penalty is
    ``ridge × trace(XᵀX)/d`` so it does not depend on the stream's scale.
    """
    if source.shape[0] != target.shape[0]:
        raise UserError("source and target streams must have the same tokens")
    N = source.shape[0]
    n_test = max(1, int(round(N * test_fraction)))
    if N - n_test < 2:
        raise UserError(f"too few tokens ({N}) for a linear map; use more or longer prompts")
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    train, test = order[n_test:], order[:n_test]
    _, Lt, dt = target.shape
    Ytr = target[train].reshape(len(train), Lt * dt).double()
    Yte = target[test].reshape(len(test), Lt * dt).double()
    y_mean = Ytr.mean(0)
    Ytr = Ytr - y_mean
    Yte = Yte - y_mean
    denominator = Yte.reshape(len(test), Lt, dt).square().sum(dim=(0, 2)).clamp_min(_EPS)
    errors = []
    for s in range(source.shape[1]):
        X = source[train, s].double()
        x_mean = X.mean(0)
        X = X - x_mean
        gram = X.T @ X
        penalty = ridge * float(gram.diagonal().sum()) / gram.shape[0] + _EPS
        gram.diagonal().add_(penalty)
        weights = torch.linalg.solve(gram, X.T @ Ytr)
        prediction = (source[test, s].double() - x_mean) @ weights
        residual = (prediction - Yte).reshape(len(test), Lt, dt).square().sum(dim=(0, 2))
        errors.append((residual / denominator).tolist())
    return LinearMapResult(source_name, target_name, errors, ridge, len(train), len(test),
                           sorted(set(int(p) for p in excluded_positions)))


def check_same_tokenizer(tok_a, tok_b, name_a: str, name_b: str):
    if tok_a is None or tok_b is None:
        raise UserError("linear maps need both models' tokenizers")
    if tok_a.get_vocab() != tok_b.get_vocab():
        raise UserError(
            f"{name_a} and {name_b} use different tokenizers; linear maps between residual "
            "streams need the same tokens in both models"
        )


def linear_maps(source_model, target_model, prompts, *, source_name="source", target_name="target",
                source_tokenizer=None, target_tokenizer=None, ridge: float = 1e-3,
                max_tokens: int = 4096, batch_size: int = 8, exclude_positions=(0,), pad_id: int = 0,
                progress: bool = True) -> LinearMapResult:
    """Residual streams of both models on the same tokens, then :func:`fit_linear_maps`."""
    if source_tokenizer is not None or target_tokenizer is not None:
        check_same_tokenizer(source_tokenizer, target_tokenizer, source_name, target_name)
    X = collect_streams(source_model, prompts, batch_size=batch_size, exclude_positions=exclude_positions,
                        max_tokens=max_tokens, pad_id=pad_id, progress=progress)
    Y = collect_streams(target_model, prompts, batch_size=batch_size, exclude_positions=exclude_positions,
                        max_tokens=max_tokens, pad_id=pad_id, progress=progress)
    return fit_linear_maps(X, Y, ridge=ridge, source_name=source_name, target_name=target_name,
                           excluded_positions=exclude_positions)
