"""Continuous sequence-to-sequence maps on a compact domain, for the universal-approximation
experiments of the single-layer transformer: x ∈ [-1, 1]^n drawn uniformly, y = F(x)."""
from __future__ import annotations

import numpy as np
from datasets import Dataset, DatasetDict, Features, Sequence, Value

from ..errors import UserError, unknown_name_error
from . import register_dataset


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Causal mean of the last `window` values (fewer at the start)."""
    c = np.cumsum(x, axis=1)
    shifted = np.concatenate([np.zeros((len(x), window)), c[:, :-window]], axis=1)[:, : x.shape[1]]
    counts = np.minimum(np.arange(1, x.shape[1] + 1), window)
    return (c - shifted) / counts


def equivariant_map(seed: int, width: int = 8):
    """A random smooth permutation-equivariant map (a Deep-Sets form):
    y_i = Σ_k α_k tanh(β_k x_i + γ_k mean_j x_j + δ_k mean_j x_j² + ε_k) / √width."""
    rng = np.random.default_rng(seed)
    alpha, beta, gamma, delta, eps = rng.standard_normal((5, width))

    def fn(x: np.ndarray) -> np.ndarray:
        m1, m2 = x.mean(1, keepdims=True)[..., None], (x**2).mean(1, keepdims=True)[..., None]
        pre = beta * x[..., None] + gamma * m1 + delta * m2 + eps
        return (np.tanh(pre) * alpha).sum(-1) / np.sqrt(width)

    return fn


# name → (x (N, n), window, map_seed) → y (N, n); whether the map is permutation-equivariant
SEQ_MAPS = {
    "sort": (lambda x, w, s: np.sort(x, axis=1), False),
    "prefix_sum": (lambda x, w, s: np.cumsum(x, axis=1), False),
    "moving_average": (lambda x, w, s: _moving_average(x, w), False),
    "reversal": (lambda x, w, s: x[:, ::-1].copy(), False),
    "equivariant": (lambda x, w, s: equivariant_map(s)(x), True),
}


def apply_map(name: str, x: np.ndarray, window: int = 3, map_seed: int = 0) -> np.ndarray:
    """y = F(x) for the map `name` on a batch of sequences x (N, n)."""
    if name not in SEQ_MAPS:
        raise unknown_name_error("sequence map", name, list(SEQ_MAPS))
    return SEQ_MAPS[name][0](np.asarray(x, dtype=np.float64), window, map_seed)


@register_dataset("seq_maps")
def seq_maps(map: str = "sort", seq_len: int = 8, n_train: int = 4096, n_test: int = 1024, window: int = 3,
             map_seed: int = 0, seed: int = 0) -> DatasetDict:
    """Sequences x ~ U[-1, 1]^seq_len and targets y = F(x) for one map: sort (ascending),
    prefix_sum, moving_average (causal, `window` long), reversal, or equivariant (a random smooth
    permutation-equivariant map drawn from `map_seed`). Columns: input_features, labels (float, (seq_len,))."""
    if map not in SEQ_MAPS:
        raise unknown_name_error("sequence map", map, list(SEQ_MAPS))
    for name, value, low in (("seq_len", seq_len, 1), ("n_train", n_train, 1), ("n_test", n_test, 1), ("window", window, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"{name} must be a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    features = Features({"input_features": Sequence(Value("float32"), length=seq_len),
                         "labels": Sequence(Value("float32"), length=seq_len)})

    def sample(n: int) -> Dataset:
        x = rng.uniform(-1.0, 1.0, size=(n, seq_len))
        y = apply_map(map, x, window, map_seed)
        return Dataset.from_dict({"input_features": x.astype(np.float32), "labels": y.astype(np.float32)}, features=features)

    return DatasetDict({"train": sample(n_train), "test": sample(n_test)})
