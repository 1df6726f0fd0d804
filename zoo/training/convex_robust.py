"""Adversarially robust convex training of a two-layer ReLU net (Bai, Gautam & Sojoudi 2022, §4;
Bai, Gautam, Gai & Sojoudi, ACC 2022): the robust counterpart of the sampled convex program for
perturbations ‖δ‖∞ ≤ ε of the inputs.

Fix the activation patterns D_i on the whole ball around every training point: the cone
constraint (2D_i − I)(X + Δ) v_i ≥ 0 for every ‖Δ‖∞ ≤ ε is, row by row,

    (2D_i − I) X v_i ≥ ε ‖v_i‖₁          (and the same for w_i)

(ℓ₁ = the dual norm of ℓ∞; only the perturbed columns count: a bias column of ones is not
perturbed). Inside the ball the net is then linear, f(x_k + δ) = f(x_k) + δᵀ z_k with
z_k = Σ_i d_ik (v_i − w_i), so the worst case of a loss is exact and convex:

    hinge:    (1 − y_k f(x_k) + ε‖z_k‖₁)₊
    squared:  (|f(x_k) − y_k| + ε‖z_k‖₁)² / 2

The program (mean worst-case loss + β Σ(‖v_i‖₂ + ‖w_i‖₂) under the robust cones) is convex and,
at its solution, a certificate: a training point with y_k f(x_k) − ε‖z_k‖₁ > 0 keeps its label
under every perturbation in the ball. With ε = 0 it is the ordinary program (the hinge loss then
gives the classification loss of the paper). Solved by cvxpy + Clarabel (an interior-point
method, as the paper's CVX/MOSEK), which must be installed: `pip install cvxpy clarabel`.

`certify` is the same certificate for ANY ReLU net x ↦ Σ_j α_j relu(u_j·x): where no neuron can
change sign on the ball (|u_j·x| ≥ ε‖u_j‖₁), the net is linear there and its worst-case margin
is exact; a neuron that can change sign is bounded on its own (an interval bound), so the
certificate stays sound, only looser.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import UserError
from .convex_solvers import ConvexSolution, recover_neurons

LOSSES = ("squared", "hinge")


def require_cvxpy():
    try:
        import clarabel  # noqa: F401
        import cvxpy
    except ImportError:
        raise UserError("the convex trainer's solver: cvxpy needs cvxpy and clarabel: pip install cvxpy clarabel") from None
    return cvxpy


def worst_loss(margin_or_residual: np.ndarray, shift: np.ndarray, loss: str) -> np.ndarray:
    """Per-point worst-case loss: hinge on the margin y f, squared on the residual f − y; `shift`
    = ε‖z_k‖₁, how far a perturbation can move f."""
    if loss == "hinge":
        return np.maximum(1.0 - margin_or_residual + shift, 0.0)
    return 0.5 * (np.abs(margin_or_residual) + shift) ** 2


def solve_robust(X, y, D, beta: float, epsilon: float, loss: str = "hinge", perturbed: int | None = None) -> ConvexSolution:
    """The robust convex program over the patterns D (n × P) by cvxpy + Clarabel; `perturbed` =
    how many leading columns of X the adversary moves (default: all). V, W are (P × d)."""
    cp = require_cvxpy()
    X, y = np.asarray(X, float), np.asarray(y, float)
    n, d = X.shape
    m = d if perturbed is None else int(perturbed)
    Df = np.asarray(D, float)
    P = Df.shape[1]
    S = 2.0 * Df - 1.0
    start = time.perf_counter()
    V, W = cp.Variable((P, d)), cp.Variable((P, d))
    XV, XW = X @ V.T, X @ W.T  # n × P
    f = cp.sum(cp.multiply(Df, XV - XW), axis=1)
    constraints = [cp.multiply(S, XV) >= 0, cp.multiply(S, XW) >= 0]
    shift = 0
    if epsilon > 0:
        ones = np.ones((n, 1))
        constraints = [cp.multiply(S, XV) >= epsilon * ones @ cp.reshape(cp.norm(V[:, :m], 1, axis=1), (1, P), order="C"),
                       cp.multiply(S, XW) >= epsilon * ones @ cp.reshape(cp.norm(W[:, :m], 1, axis=1), (1, P), order="C")]
        Z = Df @ (V[:, :m] - W[:, :m])  # n × m: row k is z_k, the gradient of f inside the ball
        shift = epsilon * cp.norm(Z, 1, axis=1)
    if loss == "hinge":
        data = cp.sum(cp.pos(1 - cp.multiply(y, f) + shift)) / n
    else:
        t = cp.Variable(n)
        constraints += [t >= cp.abs(f - y) + shift]
        data = cp.sum_squares(t) / (2 * n)
    reg = cp.sum(cp.norm(V, 2, axis=1)) + cp.sum(cp.norm(W, 2, axis=1))
    problem = cp.Problem(cp.Minimize(data + beta * reg), constraints)
    problem.solve(solver="CLARABEL")
    if V.value is None:
        raise UserError(f"the robust convex program was not solved (Clarabel: {problem.status})")
    Vs, Ws = np.asarray(V.value), np.asarray(W.value)
    # blocks at the solver's noise level are no neurons (an interior-point method never returns
    # exact zeros): below 1e-7 of the largest block, or moving f by less than 1e-7 of max|y|
    # anywhere on the data (at ε = 0.1 on the problem the optimum is the zero net)
    norms = np.concatenate([np.linalg.norm(Vs, axis=1), np.linalg.norm(Ws, axis=1)])
    floor = max(1e-7 * norms.max(initial=0.0), 1e-7 * np.abs(y).max() / max(np.linalg.norm(X, axis=1).max(), 1e-300))
    for M in (Vs, Ws):
        M[np.linalg.norm(M, axis=1) < floor] = 0.0
    U, alpha = recover_neurons(Vs, Ws)
    objective = robust_objective(X, y, U, alpha, beta, epsilon, loss, m)
    return ConvexSolution(V=Vs, W=Ws, objective=objective, lower_bound=-np.inf, iterations=int(problem.solver_stats.num_iters or 0),
                          converged=problem.status == "optimal", seconds=time.perf_counter() - start,
                          history=[], state={"program_value": float(problem.value), "status": problem.status})


def linear_parts(X, U, alpha, epsilon: float, perturbed: int):
    """(f, slope_l1, stable): the net's output at each x_k, ε‖∇f(x_k)‖₁ over the perturbed
    columns, and whether no neuron can change sign on the ℓ∞ ball (then f is linear there)."""
    m = perturbed
    pre = X @ U.T  # n × width
    active = pre >= 0
    f = np.maximum(pre, 0.0) @ alpha
    grad = (active * alpha) @ U[:, :m]  # n × m
    reach = epsilon * np.abs(U[:, :m]).sum(1)  # how far each pre-activation can move
    slack = 1e-7 * max(np.abs(pre).max(initial=0.0), 1.0)  # the solver's tolerance on the robust cones
    stable = (np.abs(pre) + slack >= reach).all(1)
    return f, epsilon * np.abs(grad).sum(1), stable


def robust_objective(X, y, U, alpha, beta, epsilon, loss, perturbed) -> float:
    """Mean worst-case loss of the net over the ℓ∞ balls (exact where its patterns are stable on
    the ball, as at a solution of the robust program) + β/2 (‖U‖² + ‖α‖²)."""
    f, shift, _ = linear_parts(X, U, alpha, epsilon, perturbed)
    value = worst_loss(y * f if loss == "hinge" else f - y, shift, loss).mean()
    return float(value + 0.5 * beta * ((U * U).sum() + (alpha * alpha).sum()))


def margin_bound(X, y, U, alpha, epsilon: float, perturbed: int | None = None) -> np.ndarray:
    """Per point (y = ±1): a lower bound of min over ‖δ‖∞ ≤ ε of y f(x + δ). Neurons whose sign
    cannot change on the ball form a linear part, whose worst case is exact; each other neuron
    is bounded on its own: y α_j relu(u_j·(x+δ)) ≥ min(0, y α_j) · (u_j·x + ε‖u_j‖₁). Exact when
    every neuron is stable (as on the training points of the robust program)."""
    X = np.asarray(X, float)
    m = X.shape[1] if perturbed is None else perturbed
    pre = X @ U.T
    reach = epsilon * np.abs(U[:, :m]).sum(1)
    slack = 1e-7 * max(np.abs(pre).max(initial=0.0), 1.0)
    stable = np.abs(pre) + slack >= reach  # n × width
    linear = stable & (pre >= 0)  # active on the whole ball
    grad = (linear * alpha) @ U[:, :m]
    worst_linear = y * (np.where(linear, pre, 0.0) @ alpha) - epsilon * np.abs(grad).sum(1)
    loose = np.where(stable, 0.0, np.minimum(0.0, y[:, None] * alpha) * np.maximum(pre + reach, 0.0))
    return worst_linear + loose.sum(1)


def certify(X, y, U, alpha, epsilon: float, perturbed: int | None = None) -> np.ndarray:
    """Per point (y = ±1): True where the net provably keeps sign(f) = y on the whole ball
    ‖δ‖∞ ≤ ε (`margin_bound` > 0): a proof, where an attack only finds counterexamples."""
    return margin_bound(X, y, U, alpha, epsilon, perturbed) > 0
