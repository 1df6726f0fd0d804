"""Representational-geometry measures as pure functions of arrays (numpy, float64).

A representation is an (n, d) array: n examples (or conditions) by d units. Conventions:

- `linear_cka(X, Y)`: centred kernel alignment of the linear kernels XXᵀ, YYᵀ (Kornblith et al.
  2019), with the unbiased HSIC estimator of Song et al. (2012) by default (`unbiased=False`:
  the biased tr(KHLH)/(n−1)² form). 1 for identical representations; invariant to orthogonal
  transforms and isotropic scaling of either side.
- `rdm` / `rsa`: representational dissimilarity matrices and their (Spearman or Pearson)
  correlation over the off-diagonal upper triangle (Kriegeskorte et al. 2008).
- `kernel_target_alignment`: cosine between the (centred) kernel of a representation and the
  target kernel YYᵀ (Cristianini et al. 2002; centred: Cortes et al. 2012).
- `parallelism_score` and `ccgp`: abstraction measures of Bernardi et al. (2020) for conditions
  that are the combinations of binary variables (a full factorial design): coding directions of
  one variable across the settings of the others, and decoders trained on some settings and
  tested on held-out ones.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import rankdata

from ..errors import UserError

__all__ = ["hsic_unbiased", "hsic_biased", "linear_cka", "kernel_cka", "rdm", "rsa", "kernel_target_alignment",
           "target_matrix", "condition_means", "parallelism_score", "ccgp"]


def _matrix(x, name: str = "representation", min_rows: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        a = a.reshape(a.shape[0], -1)
    if a.shape[0] < min_rows:
        raise UserError(f"{name} needs at least {min_rows} examples, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise UserError(f"{name} has non-finite values")
    return a


def _same_rows(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[0] != y.shape[0]:
        raise UserError(f"the two representations must hold the same examples: {x.shape[0]} rows against {y.shape[0]}")


def hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012)'s unbiased HSIC estimator of two n × n kernel matrices (n ≥ 4):
    [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3)), K̃, L̃ with zeroed diagonals."""
    n = K.shape[0]
    if n < 4:
        raise UserError(f"the unbiased HSIC needs at least 4 examples, got {n}")
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    ones_K, ones_L = Kt.sum(axis=0), Lt.sum(axis=0)
    term = (Kt * Lt).sum() + ones_K.sum() * ones_L.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * ones_K @ ones_L
    return float(term / (n * (n - 3)))


def hsic_biased(K: np.ndarray, L: np.ndarray) -> float:
    """The biased (V-statistic) HSIC tr(KHLH)/(n−1)², H = I − 11ᵀ/n."""
    n = K.shape[0]
    Kc = K - K.mean(0, keepdims=True) - K.mean(1, keepdims=True) + K.mean()
    return float((Kc * L).sum() / (n - 1) ** 2)


def kernel_cka(K: np.ndarray, L: np.ndarray, unbiased: bool = True) -> float:
    """CKA of two kernel matrices: HSIC(K, L) / √(HSIC(K, K) HSIC(L, L))."""
    hsic = hsic_unbiased if unbiased else hsic_biased
    kk, ll = hsic(K, K), hsic(L, L)
    if kk <= 0 or ll <= 0:  # a constant representation (or, unbiased, an estimate at or below 0)
        return float("nan")
    return float(hsic(K, L) / np.sqrt(kk * ll))


def linear_cka(x, y, unbiased: bool = True) -> float:
    """Linear CKA of two (n, d₁), (n, d₂) representations of the same n examples (features centred)."""
    x, y = _matrix(x, "first representation", 4 if unbiased else 2), _matrix(y, "second representation", 4 if unbiased else 2)
    _same_rows(x, y)
    x, y = x - x.mean(0), y - y.mean(0)
    return kernel_cka(x @ x.T, y @ y.T, unbiased=unbiased)


def rdm(x, metric: str = "correlation") -> np.ndarray:
    """The n × n dissimilarity matrix of the rows of `x`: "correlation" (1 − Pearson r of two
    rows' unit patterns), "euclidean" or "sqeuclidean"."""
    x = _matrix(x)
    if metric == "correlation":
        z = x - x.mean(1, keepdims=True)
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        if (norms == 0).any():
            raise UserError("correlation RDM: a row is constant (zero variance across units); use metric='euclidean'")
        z = z / norms
        return np.clip(1.0 - z @ z.T, 0.0, 2.0)
    if metric in ("euclidean", "sqeuclidean"):
        sq = (x**2).sum(1)
        d = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
        np.fill_diagonal(d, 0.0)
        return d if metric == "sqeuclidean" else np.sqrt(d)
    raise UserError(f"unknown RDM metric {metric!r}; choose correlation, euclidean or sqeuclidean")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def rsa(x, y, metric: str = "correlation", compare: str = "spearman") -> float:
    """Correlation (Spearman or Pearson) of the upper triangles of the RDMs of `x` and `y`."""
    x, y = _matrix(x, "first representation", 3), _matrix(y, "second representation", 3)
    _same_rows(x, y)
    iu = np.triu_indices(x.shape[0], k=1)
    a, b = rdm(x, metric)[iu], rdm(y, metric)[iu]
    if compare == "spearman":
        a, b = rankdata(a), rankdata(b)
    elif compare != "pearson":
        raise UserError(f"unknown RDM comparison {compare!r}; choose spearman or pearson")
    return _corr(a, b)


def target_matrix(targets) -> np.ndarray:
    """Targets as an (n, k) float matrix: integer class labels (1-D integer array) become one-hot
    columns; anything else is taken as given (regression targets, ±1 or 0/1 binary outputs)."""
    t = np.asarray(targets)
    if t.ndim == 1 and np.issubdtype(t.dtype, np.integer):
        classes, index = np.unique(t, return_inverse=True)
        return np.eye(len(classes))[index]
    return _matrix(t, "targets")


def kernel_target_alignment(x, targets, centered: bool = True) -> float:
    """⟨K, T⟩_F / (‖K‖_F ‖T‖_F) for K = XXᵀ, T = YYᵀ (both centred, HKH and HTH, when `centered`)."""
    x, y = _matrix(x), target_matrix(targets)
    _same_rows(x, y)
    if centered:
        x, y = x - x.mean(0), y - y.mean(0)
    K, T = x @ x.T, y @ y.T
    denom = np.linalg.norm(K) * np.linalg.norm(T)
    return float((K * T).sum() / denom) if denom > 0 else float("nan")


def _binary_variables(variables, n: int | None = None) -> np.ndarray:
    v = np.asarray(variables)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or (n is not None and v.shape[0] != n):
        raise UserError(f"variables must be an (examples, variables) array with one row per example, got shape {v.shape}")
    values = np.unique(v)
    if len(values) > 2 or not set(values.tolist()) <= {-1, 0, 1}:
        raise UserError(f"variables must be binary (0/1 or ±1), got values {values[:6].tolist()}")
    return (v > 0).astype(np.int64)


def condition_means(x, variables) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct conditions as 0/1 rows, the mean representation of each) for per-example
    binary `variables`; every one of the 2^k combinations must occur."""
    x = _matrix(x)
    v = _binary_variables(variables, x.shape[0])
    conditions, index = np.unique(v, axis=0, return_inverse=True)
    k = v.shape[1]
    if len(conditions) != 2**k:
        raise UserError(f"parallelism and CCGP need every combination of the {k} binary variables; "
                        f"{len(conditions)} of {2**k} occur")
    means = np.stack([x[index.ravel() == c].mean(0) for c in range(len(conditions))])
    return conditions, means


def parallelism_score(x, variables) -> list[float]:
    """Per variable, the mean cosine similarity between its coding vectors μ(v=1, c) − μ(v=0, c)
    over all pairs of settings c of the other variables (Bernardi et al. 2020's parallelism
    score, in the factorised form: the pairing of conditions is the one the variables give)."""
    conditions, means = condition_means(x, variables)
    lookup = {tuple(c): m for c, m in zip(conditions.tolist(), means)}
    k = conditions.shape[1]
    if k < 2:
        raise UserError("the parallelism score needs at least two binary variables")
    scores = []
    for var in range(k):
        coding = []
        for c in itertools.product((0, 1), repeat=k - 1):
            hi, lo = list(c), list(c)
            hi.insert(var, 1)
            lo.insert(var, 0)
            coding.append(lookup[tuple(hi)] - lookup[tuple(lo)])
        coding = np.stack(coding)
        norms = np.linalg.norm(coding, axis=1)
        if (norms == 0).any():
            scores.append(float("nan"))
            continue
        unit = coding / norms[:, None]
        cos = unit @ unit.T
        scores.append(float(cos[np.triu_indices(len(unit), k=1)].mean()))
    return scores


def _ridge_classifier(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    mean = x.mean(0)
    xc = x - mean
    target = np.where(y > 0, 1.0, -1.0)
    offset = target.mean()
    d = x.shape[1]
    if d <= x.shape[0]:
        w = np.linalg.solve(xc.T @ xc + l2 * np.eye(d), xc.T @ (target - offset))
    else:  # the dual form: fewer examples than units
        w = xc.T @ np.linalg.solve(xc @ xc.T + l2 * np.eye(len(xc)), target - offset)
    return w, offset - mean @ w


def ccgp(x, variables, l2: float = 1e-3) -> list[float]:
    """Per variable, cross-condition generalisation performance (Bernardi et al. 2020): a linear
    decoder of the variable (ridge least squares, penalty `l2` relative to the mean squared unit
    activity) is trained on the examples of all settings of the other variables but one and
    tested on the held-out setting's examples; the test accuracies are averaged over settings."""
    x = _matrix(x)
    v = _binary_variables(variables, x.shape[0])
    condition_means(x, v)  # checks the factorial design
    k = v.shape[1]
    if k < 2:
        raise UserError("CCGP needs at least two binary variables (one to decode, one to hold out across)")
    scale = l2 * max(float((x - x.mean(0)).var(0).sum()), 1e-12) * len(x)
    scores = []
    for var in range(k):
        others = np.delete(v, var, axis=1)
        contexts = np.unique(others, axis=0)
        accuracies = []
        for context in contexts:
            test = (others == context).all(1)
            w, b = _ridge_classifier(x[~test], v[~test, var], scale)
            predicted = (x[test] @ w + b) > 0
            accuracies.append(float((predicted == (v[test, var] > 0)).mean()))
        scores.append(float(np.mean(accuracies)))
    return scores
