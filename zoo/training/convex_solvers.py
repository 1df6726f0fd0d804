"""The convex programs of a two-layer ReLU network and their solvers (numpy, float64).

For data X (n × d), targets y (n) and a set of activation patterns D_i = diag(1[X g_i ≥ 0])
(columns of the boolean matrix ``D``, n × P), the sampled convex program (Pilanci & Ergen 2020;
Bai, Gautam & Sojoudi 2022) is

    min  1/(2n) ‖Σ_i D_i X (v_i − w_i) − y‖² + β Σ_i (‖v_i‖ + ‖w_i‖)
    s.t. (2D_i − I) X v_i ≥ 0,  (2D_i − I) X w_i ≥ 0.

A feasible point is a ReLU net of 2P neurons with the same objective: u = v/√‖v‖, α = √‖v‖
(and −w likewise), under the non-convex objective 1/(2n)‖Σ_j relu(X u_j) α_j − y‖² +
β/2 Σ_j (‖u_j‖² + α_j²); with every pattern of X the two optima coincide.

- `admm_relu`: ADMM on the constrained program, splitting u = z (group norm) and G u = s ≥ 0 (the
  cones). The u-step is a linear system whose matrix never changes: by the Woodbury identity it
  needs one n × n Cholesky factor, (n I + (2/ρ) (X B Xᵀ) ⊙ (D Dᵀ)) with B = (I + XᵀX)⁻¹, after
  which each iteration costs O(n d P + n²). Stops on primal/dual residuals and the duality gap
  (the scaled duals of the cone constraints give a dual-feasible point).
- `fista_gated`: the gated-ReLU program (the same without cones, patterns fixed by the gates),
  by accelerated proximal gradient, stopping on its exact duality gap; `gated_to_relu` turns its
  solution into a ReLU net by decomposing each w_i through its gate's interior direction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_factor, cho_solve


# --- patterns ------------------------------------------------------------------------------------

def patterns_from_gates(X: np.ndarray, gates: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(D, gates): the distinct non-empty patterns 1[X g ≥ 0] of `gates` (rows) in first-seen
    order, with the gate that made each. `keep` (patterns already held) are dropped too."""
    D = (X @ gates.T) >= 0
    seen = set() if keep is None else {np.packbits(col).tobytes() for col in keep.T}
    chosen = []
    for j in range(D.shape[1]):
        key = np.packbits(D[:, j]).tobytes()
        if D[:, j].any() and key not in seen:
            seen.add(key)
            chosen.append(j)
    return D[:, chosen], gates[chosen]


def group_norms(M: np.ndarray) -> np.ndarray:
    return np.sqrt((M * M).sum(1))


def convex_predict(X, D, V, W) -> np.ndarray:
    return ((X @ (V - W).T) * D).sum(1)


def convex_objective(X, y, D, V, W, beta) -> float:
    r = convex_predict(X, D, V, W) - y
    return float(0.5 / len(y) * r @ r + beta * (group_norms(V).sum() + group_norms(W).sum()))


def cone_violation(X, D, V, W) -> float:
    """The largest violation of (2D_i − I) X v_i ≥ 0 (and for w), 0 when feasible."""
    S = 2.0 * D - 1.0
    return float(max(0.0, -(S * (X @ V.T)).min(initial=0.0), -(S * (X @ W.T)).min(initial=0.0)))


def recover_neurons(V, W, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(U, alpha): the ReLU neurons of a convex solution, u = v/√‖v‖, α = ±√‖v‖, zero blocks dropped."""
    rows, alphas = [], []
    for M, sign in ((V, 1.0), (W, -1.0)):
        norms = group_norms(M)
        for j in np.flatnonzero(norms > threshold):
            rows.append(M[j] / np.sqrt(norms[j]))
            alphas.append(sign * np.sqrt(norms[j]))
    d = V.shape[1]
    return (np.array(rows).reshape(-1, d), np.array(alphas))


def relu_predict(X, U, alpha) -> np.ndarray:
    return np.maximum(X @ U.T, 0.0) @ alpha


def relu_objective(X, y, U, alpha, beta) -> float:
    """The non-convex objective of the ReLU net x ↦ Σ_j α_j relu(u_j·x)."""
    r = relu_predict(X, U, alpha) - y
    return float(0.5 / len(y) * r @ r + 0.5 * beta * ((U * U).sum() + (alpha * alpha).sum()))


def net_to_convex(X, U, alpha) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ReLU net as a feasible point of the convex program over its own patterns: (D, V, W).
    Its convex objective is at most the net's (‖u‖|α| ≤ (‖u‖² + α²)/2)."""
    D = (X @ U.T) >= 0
    scaled = U * np.abs(alpha)[:, None]
    V = np.where((alpha > 0)[:, None], scaled, 0.0)
    W = np.where((alpha < 0)[:, None], scaled, 0.0)
    return D, V, W


def dual_value(y, mu, scale_max) -> float:
    """The best dual objective s μᵀy − (n/2) s²‖μ‖² over the dual-feasible scalings s ∈ [0, scale_max]."""
    n, mm = len(y), float(mu @ mu)
    if mm == 0:
        return 0.0
    s = float(np.clip((mu @ y) / (n * mm), 0.0, scale_max))
    return s * float(mu @ y) - 0.5 * n * s * s * mm


# --- ADMM for the constrained (ReLU) program ----------------------------------------------------

@dataclass
class ConvexSolution:
    V: np.ndarray  # ADMM's z (cone constraints hold to the primal residual)
    W: np.ndarray
    # the objective of the ReLU net recovered from (V, W): what the trained model scores. It
    # equals the convex objective at (V, W) when the cones hold; the net is feasible for the
    # program over its own activation patterns, so it never pretends more than a net achieves
    objective: float
    lower_bound: float  # a dual objective: the optimum lies in [lower_bound, objective]
    iterations: int
    converged: bool
    seconds: float
    history: list = field(default_factory=list)  # [{iteration, seconds, objective, gap, ...}]
    state: dict = field(default_factory=dict)  # what a warm start continues from

    @property
    def relative_gap(self) -> float:
        return (self.objective - self.lower_bound) / max(abs(self.objective), 1e-300)


class ReluADMM:
    """ADMM on the sampled ReLU program for fixed X, y, D, β (the factorisation is cached)."""

    def __init__(self, X, y, D, gates, beta: float, rho: float | None = None, cone_scale: float | None = None):
        self.X, self.y, self.beta = np.asarray(X, float), np.asarray(y, float), float(beta)
        self.gates = np.asarray(gates, float)
        n, d = self.X.shape
        self.D = np.asarray(D, bool)
        self.D2 = np.concatenate([self.D, self.D], 1).astype(float)  # blocks: v_1..v_P, w_1..w_P
        self.S2 = 2.0 * self.D2 - 1.0
        P = self.D.shape[1]
        self.c = np.concatenate([np.ones(P), -np.ones(P)])
        # the cone constraints enter as κ G u = κ s; κ = c/√n puts κ²XᵀX at the identity's scale,
        # c = 3 converged fastest of 1, 2, 3, 5, 10 at n = 500 (c = 1 left the cones violated)
        self.kappa = float(cone_scale) if cone_scale else 3.0 / np.sqrt(n)
        self.B = np.linalg.inv(np.eye(d) + self.kappa**2 * (self.X.T @ self.X))
        self.XBX = self.X @ self.B @ self.X.T
        self.DDt = self.D.astype(float) @ self.D.T.astype(float)
        self.Fty = self.Ft(self.y) / n
        # ρ = 10/n: the best of 0.1/n…10/n on two problems (n = 30 and 200); residual balancing adapts it
        self.rho = float(rho) if rho else 10.0 / n
        self.factor()

    def factor(self):
        n = len(self.y)
        K = n * np.eye(n) + (2.0 / self.rho) * self.XBX * self.DDt  # n I + F A⁻¹ Fᵀ
        self.chol = cho_factor(K, lower=True)

    def F(self, U):  # Σ_j c_j D_j X u_j
        return ((self.X @ U.T) * self.D2) @ self.c

    def Ft(self, r):
        return self.c[:, None] * ((self.D2 * r[:, None]).T @ self.X)

    def G(self, U):
        return self.kappa * self.S2 * (self.X @ U.T)

    def Gt(self, Q):
        return self.kappa * ((self.S2 * Q).T @ self.X)

    def solve_u(self, R):
        """(A + (1/n)FᵀF)⁻¹ R with A = ρ blockdiag(I + κ²XᵀX), by Woodbury."""
        T = (R @ self.B) / self.rho
        return T - (self.Ft(cho_solve(self.chol, self.F(T))) @ self.B) / self.rho

    def lower_bound(self, U, N):
        """A dual objective from the residual μ and the cone multipliers γ = −ρN ≥ 0."""
        n = len(self.y)
        mu = (self.y - self.F(U)) / n
        gamma = np.maximum(-self.rho * N, 0.0)
        H = self.Ft(mu) + self.Gt(gamma)  # per block: ±XᵀD_jμ + XᵀS_jγ_j must have norm ≤ β
        worst = group_norms(H).max(initial=0.0)
        return dual_value(self.y, mu, self.beta / worst if worst > 0 else np.inf)

    def solve(self, warm: dict | None = None, max_iter: int = 10000, tol: float = 1e-6, gap_tol: float | None = None,
              log_every: int = 10, adapt_rho: bool = True, relax: float = 1.6, callback=None, time_limit: float | None = None) -> ConvexSolution:
        """Iterate until the primal and dual residuals are below `tol` (relative to the iterates'
        scale) and, when `gap_tol` is given, the relative duality gap is below it."""
        n, d = self.X.shape
        P2 = self.D2.shape[1]
        if warm and warm.get("Z") is not None and warm["Z"].shape == (P2, d):
            Z = warm["Z"].copy()
            Lam = warm.get("Lam", np.zeros_like(Z)).copy()
            N = warm.get("N", np.zeros((n, P2))).copy()
            if warm.get("rho") and warm["rho"] != self.rho:
                self.rho_rescale(warm["rho"], Lam, N)
        else:
            Z, Lam, N = np.zeros((P2, d)), np.zeros((P2, d)), np.zeros((n, P2))
        Svar = np.maximum(self.G(Z), 0.0)
        U = Z.copy()
        start, cpu, history, converged, it = time.perf_counter(), time.process_time(), [], False, 0
        for it in range(1, max_iter + 1):
            U = self.solve_u(self.Fty + self.rho * (Z - Lam) + self.rho * self.Gt(Svar - N))
            GU = self.G(U)
            Z_old, S_old = Z, Svar
            # over-relaxation (Boyd et al. 2011, §3.4.3): the u-step's output mixed with the old z, s
            Uh = relax * U + (1 - relax) * Z
            GUh = relax * GU + (1 - relax) * Svar
            Z = group_shrink(Uh + Lam, self.beta / self.rho)
            Svar = np.maximum(GUh + N, 0.0)
            Lam += Uh - Z
            N += GUh - Svar
            check = it % log_every == 0 or it == max_iter
            if not check:
                continue
            r_pri = np.sqrt(((U - Z) ** 2).sum() + ((GU - Svar) ** 2).sum())
            r_dual = self.rho * np.linalg.norm((Z - Z_old) + self.Gt(Svar - S_old))
            scale_pri = max(np.linalg.norm(U), np.linalg.norm(Z), 1e-12)
            scale_dual = max(self.rho * np.linalg.norm(Lam + self.Gt(N)), 1e-12)
            V_, W_ = Z[: P2 // 2], Z[P2 // 2:]
            objective = relu_objective(self.X, self.y, *recover_neurons(V_, W_), self.beta)
            bound = self.lower_bound(U, N)
            gap = (objective - bound) / max(abs(objective), 1e-300)
            history.append({"iteration": it, "seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                            "objective": objective, "lower_bound": bound, "primal_residual": float(r_pri / scale_pri),
                            "dual_residual": float(r_dual / scale_dual)})
            if callback is not None:
                callback(it, V_, W_, history[-1])
            if r_pri <= tol * scale_pri and r_dual <= tol * scale_dual and (gap_tol is None or abs(gap) <= gap_tol):
                converged = True
                break
            if time_limit is not None and time.perf_counter() - start > time_limit:
                break
            if adapt_rho and it % (10 * log_every) == 0:  # residual balancing (Boyd et al. 2011, §3.4.1)
                ratio = (r_pri / scale_pri) / max(r_dual / scale_dual, 1e-300)
                if ratio > 10 or ratio < 0.1:
                    old = self.rho
                    self.rho = old * (2.0 if ratio > 10 else 0.5)
                    self.rho_rescale(old, Lam, N)
                    self.factor()
        V, W = Z[: P2 // 2].copy(), Z[P2 // 2:].copy()
        return ConvexSolution(
            V=V, W=W, objective=relu_objective(self.X, self.y, *recover_neurons(V, W), self.beta),
            lower_bound=self.lower_bound(U, N), iterations=it, converged=converged,
            seconds=time.perf_counter() - start, history=history,
            state={"Z": Z, "Lam": Lam, "N": N, "rho": self.rho})

    def rho_rescale(self, old_rho, Lam, N):
        """Scaled duals are y/ρ: keep the unscaled duals when ρ changes."""
        Lam *= old_rho / self.rho
        N *= old_rho / self.rho


def group_shrink(M: np.ndarray, threshold: float) -> np.ndarray:
    """The prox of threshold·Σ_j ‖m_j‖: each row shrunk towards 0 by `threshold` in norm."""
    norms = group_norms(M)
    return M * (np.maximum(1.0 - threshold / np.maximum(norms, 1e-300), 0.0))[:, None]


def extend_warm(state: dict, P_old: int, P_new: int, n: int) -> dict:
    """A warm start for ADMM after patterns were appended (new blocks start at zero)."""
    Z, Lam, N = state["Z"], state["Lam"], state["N"]
    d = Z.shape[1]

    def blocks(M, axis):
        parts = np.split(M, [P_old], axis=axis)
        pad_shape = (P_new - P_old, d) if axis == 0 else (n, P_new - P_old)
        zeros = np.zeros(pad_shape)
        return np.concatenate([parts[0], zeros, parts[1], zeros], axis=axis)

    return {"Z": blocks(Z, 0), "Lam": blocks(Lam, 0), "N": blocks(N, 1), "rho": state["rho"]}


# --- the gated-ReLU program by FISTA ------------------------------------------------------------

def fista_gated(X, y, D, beta, max_iter: int = 20000, gap_tol: float = 1e-6, log_every: int = 10,
                warm: np.ndarray | None = None, time_limit: float | None = None) -> ConvexSolution:
    """min 1/(2n)‖Σ_i D_i X w_i − y‖² + β Σ‖w_i‖ (no cones) by FISTA with restarts; stops on
    the exact relative duality gap (dual point: the scaled residual). V holds the solution, W = 0."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    n, d = X.shape
    Df = np.asarray(D, float)
    P = Df.shape[1]

    def A(Wg):
        return ((X @ Wg.T) * Df).sum(1)

    def At(r):
        return (Df * r[:, None]).T @ X

    # Lipschitz constant of the smooth part: λ_max(AᵀA)/n by power iteration (+10 %)
    rng = np.random.default_rng(0)
    Q = rng.standard_normal((P, d))
    for _ in range(50):
        Q = At(A(Q))
        Q /= np.linalg.norm(Q)
    L = 1.1 * np.linalg.norm(At(A(Q))) / n
    Wk = np.zeros((P, d)) if warm is None else warm.copy()
    Yk, t, prev_obj = Wk.copy(), 1.0, np.inf
    start, cpu, history, converged, it = time.perf_counter(), time.process_time(), [], False, 0
    for it in range(1, max_iter + 1):
        grad = At(A(Yk) - y) / n
        W_next = group_shrink(Yk - grad / L, beta / L)
        t_next = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        Yk = W_next + ((t - 1) / t_next) * (W_next - Wk)
        Wk, t = W_next, t_next
        if it % log_every and it != max_iter:
            continue
        r = A(Wk) - y
        objective = float(0.5 / n * r @ r + beta * group_norms(Wk).sum())
        if objective > prev_obj:  # adaptive restart (O'Donoghue & Candès 2015)
            Yk, t = Wk.copy(), 1.0
        prev_obj = objective
        mu = -r / n
        worst = group_norms(At(mu)).max(initial=0.0)
        bound = dual_value(y, mu, beta / worst if worst > 0 else np.inf)
        gap = (objective - bound) / max(abs(objective), 1e-300)
        history.append({"iteration": it, "seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                        "objective": objective, "lower_bound": bound})
        if gap <= gap_tol:
            converged = True
            break
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
    r = A(Wk) - y
    objective = float(0.5 / n * r @ r + beta * group_norms(Wk).sum())
    return ConvexSolution(V=Wk, W=np.zeros_like(Wk), objective=objective, lower_bound=history[-1]["lower_bound"],
                          iterations=it, converged=converged, seconds=time.perf_counter() - start, history=history)


def cone_steps(X, D, gates, M) -> np.ndarray:
    """For each row m_i, the smallest t ≥ 0 with m_i + t g_i in the cone (2D_i − I) X v ≥ 0 of its
    gate g_i (which lies in it); inf where a violated row sits on the gate's hyperplane."""
    S = 2.0 * np.asarray(D, float) - 1.0
    A = S * (X @ M.T)  # need A + t B ≥ 0 column-wise
    B = S * (X @ gates.T)
    bad = A < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bad, np.where(B > 0, -A / np.where(B > 0, B, 1.0), np.inf), 0.0)
    return ratio.max(0, initial=0.0)


def gated_to_relu(X, D, gates, Wg) -> tuple[np.ndarray, np.ndarray]:
    """(V, W) feasible for the ReLU program with D_i X (v_i − w_i) = D_i X w_i for every i: the
    gated prediction is kept exactly. w_i is kept as v_i when it lies in its cone, as −w_i when
    −w_i does, else split as (w + t g) − t g with g the gate (inside its cone) and t the smallest
    step that puts w + t g in the cone."""
    S = 2.0 * np.asarray(D, float) - 1.0
    V, W = np.zeros_like(Wg), np.zeros_like(Wg)
    a = S * (X @ Wg.T)
    plus = (a >= 0).all(0) & (group_norms(Wg) > 0)
    minus = (a <= 0).all(0) & ~plus & (group_norms(Wg) > 0)
    rest = (group_norms(Wg) > 0) & ~plus & ~minus
    V[plus], W[minus] = Wg[plus], -Wg[minus]
    t = cone_steps(X, D, gates, Wg)
    split = rest & np.isfinite(t)  # the others (a violated point on the gate's hyperplane) are dropped
    V[split] = Wg[split] + t[split, None] * gates[split]
    W[split] = t[split, None] * gates[split]
    return V, W


def gated_by_sign(X, D, Wg) -> tuple[np.ndarray, np.ndarray]:
    """(V, W): each gated neuron w_i as v_i = w_i or as w_i' = −w_i, whichever cone it violates
    on fewer points: not feasible, a warm start for ADMM on the ReLU program (the exact split of
    `gated_to_relu` can cost far more norm than it keeps prediction)."""
    S = 2.0 * np.asarray(D, float) - 1.0
    a = S * (X @ Wg.T)
    plus = (a < 0).sum(0) <= (a > 0).sum(0)
    return np.where(plus[:, None], Wg, 0.0), np.where(plus[:, None], 0.0, -Wg)


def prune_blocks(X, D, V, W) -> tuple[np.ndarray, np.ndarray]:
    """The same prediction and the same Σ(‖v_i‖ + ‖w_i‖) (so the same objective, and still
    feasible) on at most n + 1 non-zero blocks: while there are more, the n + 1 conditions
    Σ_k λ_k s_k D_k X û_k = 0, Σ_k λ_k = 0 on the block norms c_k have a solution λ ≠ 0, and
    c − tλ with the largest t keeping c ≥ 0 zeroes a block (Carathéodory; Pilanci & Ergen 2020)."""
    V, W = np.array(V, float), np.array(W, float)
    n, P = len(X), V.shape[0]
    Mall = np.concatenate([V, W])  # blocks 0..P−1 are v (sign +), P..2P−1 are w (sign −)
    sign = np.concatenate([np.ones(P), -np.ones(P)])
    Dall = np.concatenate([D, D], 1).astype(float)
    while True:
        c = group_norms(Mall)
        live = np.flatnonzero(c > 0)
        if len(live) <= n + 1:
            break
        sub = live[np.argsort(c[live])[: n + 2]]  # the n + 2 smallest blocks: a null vector exists among them
        A = np.vstack([sign[sub] * Dall[:, sub] * (X @ (Mall[sub] / c[sub, None]).T), np.ones(len(sub))])
        lam = np.linalg.svd(A)[2][-1]
        if lam.max() <= 0:
            lam = -lam
        pos = lam > 1e-12 * np.abs(lam).max()
        k = np.argmin(c[sub][pos] / lam[pos])
        t = (c[sub][pos] / lam[pos])[k]
        new = np.maximum(c[sub] - t * lam, 0.0)
        new[np.flatnonzero(pos)[k]] = 0.0
        Mall[sub] *= (new / c[sub])[:, None]
    return Mall[:P], Mall[P:]
