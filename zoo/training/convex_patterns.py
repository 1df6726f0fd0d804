"""Where the activation patterns D = diag(1[X g ≥ 0]) of the convex program come from.

- `random_gates`: Gaussian gate vectors (the paper's sampling).
- `pair_gates`: hyperplanes through pairs of data points: g ⟂ x_a, x_b (with a bias column in X,
  the affine hyperplane through both points), pairs of opposite labels first.
- `net_gates`: the neurons of a trained ReLU net (`train_relu_net`: Adam on the non-convex
  objective); the convex program over its patterns holds the net as a feasible point, so its
  optimum is never above the net's objective.
- `all_gates`: one gate per activation pattern of X — the exact program (every pattern) for
  small n and d: each pattern's cone has an extreme ray on d − 1 of the data hyperplanes.
- `most_violated`: gates whose dual constraint μᵀ relu(X u) ≤ β (u on the unit sphere, μ the
  scaled residual) is most violated: adding their patterns lowers the objective.
"""
from __future__ import annotations

from itertools import combinations, product
from math import comb

import numpy as np

MAX_HYPERPLANES = 200_000  # all_gates refuses more (d − 1)-subsets of the data than this


def random_gates(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    return rng.standard_normal((count, dim))


def pair_gates(rng: np.random.Generator, X: np.ndarray, y: np.ndarray, count: int) -> np.ndarray:
    """`count` gates, each a random direction orthogonal to two data points (a hyperplane through
    both); half of the pairs have opposite signs of y, so the hyperplane separates classes nearby."""
    n, d = X.shape
    gates = np.empty((count, d))
    pos, neg = np.flatnonzero(y > 0), np.flatnonzero(y <= 0)
    for k in range(count):
        if k % 2 == 0 and len(pos) and len(neg):
            a, b = rng.choice(pos), rng.choice(neg)
        else:
            a, b = rng.choice(n, size=2, replace=False)
        basis, _ = np.linalg.qr(X[[a, b]].T)  # d × 2
        g = rng.standard_normal(d)
        gates[k] = g - basis @ (basis.T @ g)
    return gates


def all_gates(X: np.ndarray) -> np.ndarray:
    """Gates realising every activation pattern 1[X u ≥ 0] of X (n × d of rank d, points in
    general position). Each pattern's cell {u : sign(Xu) fixed} is a pointed cone whose extreme
    rays are null vectors u₀ of d − 1 rows X_S; near u₀ the points of S take any signs while the
    others keep theirs, so u₀ + δ over the 2^(d−1) sign choices for S (and ±u₀) meets every cell.
    Duplicates are left to `patterns_from_gates`."""
    n, d = X.shape
    gates = []
    for S in combinations(range(n), d - 1):
        XS = X[list(S)]
        u0 = np.linalg.svd(XS)[2][-1]  # the null direction of the d − 1 rows
        rest = np.delete(X, list(S), axis=0) @ u0
        room = np.abs(rest).min(initial=np.inf)
        if not room > 0:
            continue  # another point on the same hyperplane (not general position): skip this ray
        for signs in product((-1.0, 1.0), repeat=d - 1):
            delta = np.linalg.lstsq(XS, np.array(signs), rcond=None)[0]
            reach = np.abs(np.delete(X, list(S), axis=0) @ delta).max(initial=0.0)
            step = 0.5 * room / reach if reach > 0 else 1.0
            for sign in (1.0, -1.0):
                gates.append(sign * u0 + step * delta)
    return np.array(gates).reshape(-1, d)


def count_hyperplanes(n: int, d: int) -> int:
    return comb(n, d - 1)


def most_violated(rng: np.random.Generator, X: np.ndarray, mu: np.ndarray, count: int, candidates: int = 1000,
                  steps: int = 20, starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(gates, scores): up to `count` unit gates with the largest |μᵀ relu(X u)|, found by the
    fixed-point ascent u ← Xᵀ(μ ⊙ 1[Xu ≥ 0]) / ‖·‖ (it increases μᵀ relu(Xu) on the sphere) from
    `candidates` random starts (and `starts`), for both signs of μ; sorted, best first."""
    d = X.shape[1]
    U0 = rng.standard_normal((candidates, d))
    if starts is not None:
        U0 = np.concatenate([U0, starts])
    found, scores = [], []
    for sign in (1.0, -1.0):
        m = sign * mu
        U = U0 / np.linalg.norm(U0, axis=1, keepdims=True)
        for _ in range(steps):
            H = ((X @ U.T) >= 0) * m[:, None]  # n × candidates
            U_new = (H.T @ X)
            norms = np.linalg.norm(U_new, axis=1, keepdims=True)
            U = np.where(norms > 0, U_new / np.maximum(norms, 1e-300), U)
        found.append(U)
        scores.append(np.maximum(X @ U.T, 0.0).T @ m)
    U, score = np.concatenate(found), np.concatenate(scores)
    order = np.argsort(-score)[:count]
    return U[order], score[order]


def train_relu_net(X: np.ndarray, y: np.ndarray, width: int, beta: float, steps: int = 2000, lr: float = 1e-2,
                   seed: int = 0, init: tuple[np.ndarray, np.ndarray] | None = None,
                   optimizer: str = "adam") -> tuple[np.ndarray, np.ndarray, list]:
    """(U, alpha, curve): full-batch Adam (or `optimizer="sgd"`: gradient descent with momentum
    0.9) on the non-convex objective 1/(2n)‖relu(X Uᵀ) α − y‖² + β/2 (‖U‖² + ‖α‖²), float64;
    `curve` holds every 100th objective."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    Xt, yt = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    n, d = Xt.shape
    if init is None:
        U = (torch.randn(width, d, generator=gen, dtype=torch.float64) / np.sqrt(d)).requires_grad_()
        alpha = (torch.randn(width, generator=gen, dtype=torch.float64) / np.sqrt(width)).requires_grad_()
    else:
        U = torch.as_tensor(init[0], dtype=torch.float64).clone().requires_grad_()
        alpha = torch.as_tensor(init[1], dtype=torch.float64).clone().requires_grad_()
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be adam or sgd, got {optimizer!r}")
    optimizer = torch.optim.Adam([U, alpha], lr=lr) if optimizer == "adam" else torch.optim.SGD([U, alpha], lr=lr, momentum=0.9)
    curve = []

    def objective():
        r = torch.relu(Xt @ U.T) @ alpha - yt
        return 0.5 / n * (r @ r) + 0.5 * beta * ((U * U).sum() + (alpha * alpha).sum())

    for step in range(steps):
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            curve.append(float(loss.detach()))
    with torch.no_grad():
        curve.append(float(objective()))
    return U.detach().numpy(), alpha.detach().numpy(), curve
