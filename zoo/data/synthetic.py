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
    return _pairs_split(a, b, labels, modulus, train_fraction, seed, f"modulus {modulus}")


def _pairs_split(a, b, labels, order_: int, train_fraction: float, seed: int, what: str) -> DatasetDict:
    """The pairs (a, b) → label as one-hot a ‖ one-hot b (length 2·order_), split at random."""
    one_hot = np.zeros((len(a), 2 * order_), dtype=np.float32)
    one_hot[np.arange(len(a)), a] = 1.0
    one_hot[np.arange(len(a)), order_ + b] = 1.0
    order = np.random.default_rng(seed).permutation(len(a))
    n_train = int(round(train_fraction * len(a)))
    _check(0 < n_train < len(a), f"train_fraction {train_fraction} leaves an empty split for {what}")
    features = Features({
        "input_features": Sequence(Value("float32"), length=2 * order_),
        "a": Value("int64"), "b": Value("int64"),
        "labels": ClassLabel(names=[str(i) for i in range(order_)]),
    })

    def subset(idx):
        return Dataset.from_dict({"input_features": one_hot[idx], "a": a[idx], "b": b[idx], "labels": labels[idx]}, features=features)

    return DatasetDict({"train": subset(order[:n_train]), "test": subset(order[n_train:])})


def _permutation_group(n: int) -> list[tuple[int, ...]]:
    """S_n as permutation tuples in lexicographic order (index 0 is the identity)."""
    from itertools import permutations

    return list(permutations(range(n)))


def _dihedral_group(n: int) -> list[tuple[int, ...]]:
    """D_n (order 2n, the symmetries of a regular n-gon) as permutations of the n vertices:
    rotations r^k (i ↦ i + k) first, then reflections r^k s (i ↦ k − i); index 0 is the identity."""
    rotations = [tuple((i + k) % n for i in range(n)) for k in range(n)]
    reflections = [tuple((k - i) % n for i in range(n)) for k in range(n)]
    return rotations + reflections


GROUPS = {"S": (_permutation_group, 3, 5), "D": (_dihedral_group, 3, 50)}


def group_table(group: str) -> np.ndarray:
    """The multiplication table T[i, j] = index of g_i ∘ g_j ((g ∘ h)(x) = g(h(x))) of a named
    permutation group: "S<n>" (symmetric, 3 ≤ n ≤ 5) or "D<n>" (dihedral of order 2n, 3 ≤ n ≤ 50)."""
    match = isinstance(group, str) and len(group) >= 2 and group[0] in GROUPS and group[1:].isdigit()
    _check(match, f"group must be S<n> (symmetric) or D<n> (dihedral), e.g. S3 or D5; got {group!r}")
    make, low, high = GROUPS[group[0]]
    n = int(group[1:])
    _check(low <= n <= high, f"group {group}: n must be in [{low}, {high}], got {n}")
    elements = make(n)
    index = {g: i for i, g in enumerate(elements)}
    return np.array([[index[tuple(g[h[x]] for x in range(n))] for h in elements] for g in elements], dtype=np.int64)


@register_dataset("group_arithmetic")
def group_arithmetic(group: str = "S3", train_fraction: float = 0.5, seed: int = 0) -> DatasetDict:
    """All pairs (a, b) of a finite non-abelian group with label a ∘ b, split at random into train
    and test: "S<n>" (symmetric group, n ≤ 5) or "D<n>" (dihedral group of order 2n).

    Columns as in `modular_arithmetic`: input_features (one-hot a ‖ one-hot b, length 2|G|), a, b,
    labels (element indices; 0 is the identity). Z_M itself is `modular_arithmetic`.
    """
    table = group_table(group)
    _check(0 < train_fraction < 1, f"train_fraction must be in (0, 1), got {train_fraction!r}")
    a, b = (g.ravel() for g in np.meshgrid(np.arange(len(table)), np.arange(len(table)), indexing="ij"))
    return _pairs_split(a, b, table[a, b], len(table), train_fraction, seed, f"group {group}")


@register_dataset("geometry_task")
def geometry_task(
    n_vars: int = 3,
    alignment: float = 0.5,
    target: str = "low",
    input_dim: int = 32,
    noise: float = 0.1,
    n_train_per_condition: int = 32,
    n_test_per_condition: int = 32,
    seed: int = 0,
) -> DatasetDict:
    """Parameterised tasks in the style of Alleman, Lindsey & Fusi (2024): input geometry more or
    less aligned with the label geometry, one knob.

    There are 2^n_vars conditions, the combinations z ∈ {±1}^n_vars of binary latent variables.
    Targets (`labels`, 0/1 floats, a multi-label problem): `target="low"`, the n_vars latent
    variables themselves (a low-dimensional, factorised target); `"high"`, all 2^n_vars − 1
    parities ∏_{i∈S} z_i (a high-dimensional target under which all conditions are equidistant).
    Each condition's input prototype is α·A z/√n + √(1 − α²)·B r_c, with α = `alignment`, r_c a
    random unit-norm Gaussian vector per condition (a geometry unrelated to the labels) and A, B
    random orthonormal frames of orthogonal subspaces of R^input_dim; examples add N(0, noise²·I).
    α = 1: inputs are the latent cube (aligned with the low target); α = 0: the labels play no
    part in the input geometry. Columns: input_features, labels, latents (0/1), condition.
    """
    _check(isinstance(n_vars, int) and 1 <= n_vars <= 6, f"n_vars must be an integer in [1, 6], got {n_vars!r}")
    _check(isinstance(alignment, (int, float)) and 0 <= alignment <= 1, f"alignment must be in [0, 1], got {alignment!r}")
    _check(target in ("low", "high"), f"target must be 'low' or 'high', got {target!r}")
    n_cond = 2**n_vars
    _check(isinstance(input_dim, int) and input_dim >= n_vars + n_cond,
           f"input_dim must be an integer >= n_vars + 2^n_vars = {n_vars + n_cond}, got {input_dim!r}")
    _check(noise >= 0, f"noise must be >= 0, got {noise!r}")
    for name, value in (("n_train_per_condition", n_train_per_condition), ("n_test_per_condition", n_test_per_condition)):
        _check(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    latents = np.array(list(np.ndindex(*(2,) * n_vars)), dtype=np.int64)  # (n_cond, n_vars) 0/1
    z = 2.0 * latents - 1.0
    if target == "low":
        targets = latents.astype(np.float32)
    else:
        subsets = [s for s in np.ndindex(*(2,) * n_vars) if any(s)]
        targets = np.stack([(np.prod(z[:, np.array(s, bool)], axis=1) > 0) for s in subsets], 1).astype(np.float32)
    frame, _ = np.linalg.qr(rng.standard_normal((input_dim, n_vars + n_cond)))
    a_frame, b_frame = frame[:, :n_vars], frame[:, n_vars:]
    r = rng.standard_normal((n_cond, n_cond))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    prototypes = alignment * (z / np.sqrt(n_vars)) @ a_frame.T + np.sqrt(1 - alignment**2) * r @ b_frame.T

    def sample(per_condition: int) -> Dataset:
        condition = np.repeat(np.arange(n_cond), per_condition)
        x = prototypes[condition] + noise * rng.standard_normal((len(condition), input_dim))
        features = Features({
            "input_features": Sequence(Value("float32"), length=input_dim),
            "labels": Sequence(Value("float32"), length=targets.shape[1]),
            "latents": Sequence(Value("int64"), length=n_vars),
            "condition": Value("int64"),
        })
        return Dataset.from_dict({"input_features": x.astype(np.float32), "labels": targets[condition],
                                  "latents": latents[condition], "condition": condition}, features=features)

    return DatasetDict({"train": sample(n_train_per_condition), "test": sample(n_test_per_condition)})
