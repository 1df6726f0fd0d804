"""Synthetic data sets of the theory papers, generated from a seed (deterministic)."""
from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from ..errors import UserError
from . import register_dataset


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@register_dataset("xor_cluster")
def xor_cluster(
    dim: int = 50,
    n_train: int = 400,
    n_test: int = 2000,
    label_noise: float = 0.1,
    separation: float = 5.0,
    seed: int = 0,
) -> DatasetDict:
    """XOR cluster data (Xu et al. 2023): x = μ + ξ, μ ∈ {±μ₁, ±μ₂}, μ₁ ⟂ μ₂, ξ ~ N(0, I_dim).

    Class 0 for the clusters ±μ₁, class 1 for ±μ₂: no linear classifier beats chance. ‖μ₁‖ =
    ‖μ₂‖ = `separation`. A `label_noise` fraction of the *training* labels is flipped (exactly
    round(label_noise·n_train) of them); test labels are clean. Columns: input_features, labels,
    clean_labels, cluster (0: +μ₁, 1: −μ₁, 2: +μ₂, 3: −μ₂), flipped.
    """
    _check(isinstance(dim, int) and dim >= 2, f"dim must be an integer >= 2, got {dim!r}")
    _check(isinstance(n_train, int) and n_train >= 1, f"n_train must be a positive integer, got {n_train!r}")
    _check(isinstance(n_test, int) and n_test >= 1, f"n_test must be a positive integer, got {n_test!r}")
    _check(0 <= label_noise < 0.5, f"label_noise must be in [0, 0.5), got {label_noise!r}")
    _check(separation > 0, f"separation must be positive, got {separation!r}")
    rng = np.random.default_rng(seed)
    # Two random orthonormal directions, scaled: the clusters' geometry does not favour any axis.
    basis, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    centres = separation * np.stack([basis[:, 0], -basis[:, 0], basis[:, 1], -basis[:, 1]])

    def sample(n: int, noise: float) -> Dataset:
        cluster = rng.integers(0, 4, size=n)
        x = centres[cluster] + rng.standard_normal((n, dim))
        clean = (cluster >= 2).astype(np.int64)
        flipped = np.zeros(n, dtype=bool)
        flipped[rng.choice(n, size=int(round(noise * n)), replace=False)] = True
        labels = np.where(flipped, 1 - clean, clean)
        features = Features({
            "input_features": Sequence(Value("float32"), length=dim),
            "labels": ClassLabel(names=["±mu1", "±mu2"]),
            "clean_labels": ClassLabel(names=["±mu1", "±mu2"]),
            "cluster": Value("int64"),
            "flipped": Value("bool"),
        })
        return Dataset.from_dict(
            {"input_features": x.astype(np.float32), "labels": labels, "clean_labels": clean,
             "cluster": cluster, "flipped": flipped},
            features=features,
        )

    train = sample(n_train, label_noise)
    return DatasetDict({"train": train, "test": sample(n_test, 0.0)})


@register_dataset("sparse_regression")
def sparse_regression(
    dim: int = 100,
    n_train: int = 40,
    n_test: int = 1000,
    sparsity: int = 5,
    noise: float = 0.0,
    seed: int = 0,
) -> DatasetDict:
    """Sparse linear regression (the diagonal-linear-network experiments): x ~ N(0, I_dim),
    y = ⟨β*, x⟩ + noise·ε with β* having `sparsity` nonzero entries ±1/√sparsity (‖β*‖₂ = 1) at
    random coordinates. Test targets are noiseless. With n_train < dim an interpolating (zero
    training loss) solution exists. Columns: input_features, labels (float32).
    """
    _check(isinstance(dim, int) and dim >= 1, f"dim must be a positive integer, got {dim!r}")
    _check(isinstance(n_train, int) and n_train >= 1, f"n_train must be a positive integer, got {n_train!r}")
    _check(isinstance(n_test, int) and n_test >= 1, f"n_test must be a positive integer, got {n_test!r}")
    _check(isinstance(sparsity, int) and 1 <= sparsity <= dim, f"sparsity must be an integer in [1, dim], got {sparsity!r}")
    _check(noise >= 0, f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    beta = np.zeros(dim)
    support = rng.choice(dim, size=sparsity, replace=False)
    beta[support] = rng.choice([-1.0, 1.0], size=sparsity) / np.sqrt(sparsity)
    features = Features({"input_features": Sequence(Value("float32"), length=dim), "labels": Value("float32")})

    def sample(n: int, eps: float) -> Dataset:
        x = rng.standard_normal((n, dim))
        y = x @ beta + eps * rng.standard_normal(n)
        return Dataset.from_dict({"input_features": x.astype(np.float32), "labels": y.astype(np.float32)},
                                 features=features)

    return DatasetDict({"train": sample(n_train, noise), "test": sample(n_test, 0.0)})


OPERATIONS = {
    "add": lambda a, b, m: (a + b) % m,
    "sub": lambda a, b, m: (a - b) % m,
    "mul": lambda a, b, m: (a * b) % m,
    "div": lambda a, b, m: (a * pow(int(b), -1, m)) % m,
}


@register_dataset("modular_arithmetic")
def modular_arithmetic(modulus: int = 23, operation: str = "add", train_fraction: float = 0.5, seed: int = 0) -> DatasetDict:
    """All pairs (a, b) of Z_M with label a ∘ b mod M, split at random into train and test.

    Columns: input_features (one-hot a ‖ one-hot b, length 2M, as in Tian 2025), a, b, labels.
    "div" needs a prime modulus and uses b ≠ 0 only.
    """
    _check(isinstance(modulus, int) and modulus >= 2, f"modulus must be an integer >= 2, got {modulus!r}")
    _check(operation in OPERATIONS, f"operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    _check(0 < train_fraction < 1, f"train_fraction must be in (0, 1), got {train_fraction!r}")
    if operation == "div":
        _check(all(modulus % p for p in range(2, int(modulus**0.5) + 1)), f"div needs a prime modulus, got {modulus}")
    a, b = (g.ravel() for g in np.meshgrid(np.arange(modulus), np.arange(modulus), indexing="ij"))
    if operation == "div":
        a, b = a[b != 0], b[b != 0]
    labels = np.array([OPERATIONS[operation](int(x), int(y), modulus) for x, y in zip(a, b)], dtype=np.int64)
    one_hot = np.zeros((len(a), 2 * modulus), dtype=np.float32)
    one_hot[np.arange(len(a)), a] = 1.0
    one_hot[np.arange(len(a)), modulus + b] = 1.0
    order = np.random.default_rng(seed).permutation(len(a))
    n_train = int(round(train_fraction * len(a)))
    _check(0 < n_train < len(a), f"train_fraction {train_fraction} leaves an empty split for modulus {modulus}")
    features = Features({
        "input_features": Sequence(Value("float32"), length=2 * modulus),
        "a": Value("int64"), "b": Value("int64"),
        "labels": ClassLabel(names=[str(i) for i in range(modulus)]),
    })

    def subset(idx):
        return Dataset.from_dict({"input_features": one_hot[idx], "a": a[idx], "b": b[idx], "labels": labels[idx]}, features=features)

    return DatasetDict({"train": subset(order[:n_train]), "test": subset(order[n_train:])})
