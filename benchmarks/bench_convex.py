"""Convex training of a two-layer ReLU net (RESEARCH.md B1): our ADMM against cvxpy + Clarabel and
pyscnn's augmented-Lagrangian ReLU solver, on the same sampled program, in one run.

The problem: relu_teacher (n = 500, d = 20, 5 % flipped labels), β = 1e-3, P random Gaussian gates
(deduplicated patterns, the same for every solver). Clarabel's optimum (its default tolerances)
is the reference; each solver's objective is ours evaluated at its solution. Reported: CPU time
to a 1e-3 relative gap to that optimum (ADMM: its first logged iterate within 1e-3, setup
included; Clarabel: its whole solve, cvxpy's compile time beside it; pyscnn: its whole run and
where it ends), then the time per ADMM iteration over P and n (the claim: O(n d P + n²)).
Times are CPU seconds of this process (time.process_time, one thread): the machine is shared, and
wall time there measures the neighbours. ADMM's time to 1e-3 is the first logged iterate from
which on every logged iterate's net stays within 1e-3 of the optimum (its net can pass through
the optimum's value from below while the cones are still violated).

    OMP_NUM_THREADS=1 python benchmarks/bench_convex.py --out benchmarks/results/convex.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from zoo.training.convex_solvers import ReluADMM, convex_objective, patterns_from_gates, recover_neurons, relu_objective


def problem(n, d=20, noise=0.05, seed=0):
    from zoo import data

    tr = data.load("relu_teacher", dim=d, n_train=n, n_test=1, label_noise=noise, seed=seed)["train"][:]
    return tr["input_features"].double().numpy(), tr["labels"].numpy() * 2.0 - 1


def clarabel(X, y, D, beta):
    import cvxpy as cp

    n, d = X.shape
    P = D.shape[1]
    start = time.process_time()
    V, W = cp.Variable((P, d)), cp.Variable((P, d))
    S = 2.0 * D - 1.0
    XV, XW = X @ V.T, X @ W.T  # n × P
    pred = cp.sum(cp.multiply(D.astype(float), XV - XW), axis=1)
    constraints = [cp.multiply(S, XV) >= 0, cp.multiply(S, XW) >= 0]
    reg = cp.sum(cp.norm(V, axis=1)) + cp.sum(cp.norm(W, axis=1))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(pred - y) / (2 * n) + beta * reg), constraints)
    problem.solve(solver="CLARABEL")
    return {"objective": convex_objective(X, y, D, V.value, W.value, beta), "cvxpy_value": float(problem.value),
            "cpu_s": time.process_time() - start, "solver_wall_s": float(problem.solver_stats.solve_time)}


def pyscnn(X, y, gates, beta):
    from scnn.metrics import Metrics
    from scnn.models import ConvexReLU
    from scnn.optimize import optimize_model
    from scnn.regularizers import NeuronGL1
    from scnn.solvers import AL

    model = ConvexReLU(gates.T.copy(), c=1)
    start = time.process_time()
    fitted, _ = optimize_model(model, AL(model), Metrics(), X, y.reshape(-1, 1), regularizer=NeuronGL1(beta),
                               unitize_data=False, dtype="float64", return_convex=True)
    cpu = time.process_time() - start
    V, W = (np.asarray(p)[0] for p in fitted.parameters)  # (c, P, d) each
    D = (X @ gates.T) >= 0
    # objective: its ReLU net's (what it returns without return_convex); convex_objective: at its
    # (v, w) with our patterns, which differs where its cone constraints are violated
    return {"objective": relu_objective(X, y, *recover_neurons(V, W), beta),
            "convex_objective": convex_objective(X, y, D, V, W, beta), "cpu_s": cpu}


def admm(X, y, D, gates, beta, exact, max_iter, cone_scale):
    start = time.process_time()
    solver = ReluADMM(X, y, D, gates, beta, cone_scale=cone_scale / np.sqrt(len(y)))
    setup = time.process_time() - start
    solution = solver.solve(max_iter=max_iter, gap_tol=1e-5, tol=1e-7, log_every=10)
    hit = None
    for h in reversed(solution.history):  # the first iterate from which on all stay within 1e-3
        if abs(h["objective"] - exact) > 1e-3 * exact:
            break
        hit = h
    return {"setup_cpu_s": setup, "cpu_to_1e-3_s": None if hit is None else setup + hit["cpu_s"],
            "iterations_to_1e-3": None if hit is None else hit["iteration"],
            "final_objective": solution.objective, "final_relative_gap_to_exact": (solution.objective - exact) / exact,
            "final_dual_gap": solution.relative_gap, "iterations": solution.iterations,
            "cpu_s": setup + solution.history[-1]["cpu_s"],
            "log_gap": [[h["iteration"], (h["objective"] - exact) / exact, (h["objective"] - h["lower_bound"]) / h["objective"]]
                        for h in solution.history]}


def per_iteration(n, P, beta, cone_scale, iterations=30, seed=0):
    X, y = problem(n)
    D, gates = patterns_from_gates(X, np.random.default_rng(seed).standard_normal((P, X.shape[1])))
    start = time.process_time()
    solver = ReluADMM(X, y, D, gates, beta, cone_scale=cone_scale / np.sqrt(n))
    setup = time.process_time() - start
    solution = solver.solve(max_iter=iterations, tol=0.0, log_every=iterations, adapt_rho=False)
    return {"n": n, "P": int(D.shape[1]), "setup_cpu_s": setup, "iteration_cpu_s": solution.history[-1]["cpu_s"] / iterations}


def fit_exponent(xs, ts):
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--P", default="50,100")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--beta", type=float, default=1e-3)
    p.add_argument("--max-iter", type=int, default=3000)
    p.add_argument("--cone-scale", type=float, default=3.0, help="ADMM's cone scaling c (κ = c/√n)")
    p.add_argument("--scale-P", default="25,50,100,200,400")
    p.add_argument("--scale-n", default="250,500,1000,2000")
    p.add_argument("--peer-scale-P", default="25", help="extra sizes (at --n) where the peers run too")
    p.add_argument("--peer-scale-n", default="250", help="extra n (at P = --peer-n-P) where the peers run too")
    p.add_argument("--peer-n-P", type=int, default=100)
    p.add_argument("--skip", default="", help="comma list of peers to leave out: clarabel, pyscnn")
    p.add_argument("--reuse-peers", help="take Clarabel's and pyscnn's rows from this earlier output (CPU budget)")
    p.add_argument("--out", default="benchmarks/results/convex.json")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    earlier = {r["P_sampled"]: r for r in json.loads(Path(args.reuse_peers).read_text())["rows"]} if args.reuse_peers else {}
    data = {}

    def one_row(n, P):
        if n not in data:
            data[n] = problem(n)
        X, y = data[n]
        D, gates = patterns_from_gates(X, np.random.default_rng(P).standard_normal((P, X.shape[1])))
        row = {"P_sampled": P, "P": int(D.shape[1]), "n": n}
        reuse = earlier.get(P) if n == args.n else None
        row["clarabel"] = reuse["clarabel"] if reuse else clarabel(X, y, D, args.beta)
        exact = row["clarabel"]["objective"]
        row["admm"] = admm(X, y, D, gates, args.beta, exact, args.max_iter, args.cone_scale)
        if reuse and "pyscnn" in reuse:
            row["pyscnn"] = reuse["pyscnn"]
        elif "pyscnn" not in skip:
            row["pyscnn"] = pyscnn(X, y, gates, args.beta)
            row["pyscnn"]["relative_gap_to_exact"] = (row["pyscnn"]["objective"] - exact) / exact
        if "pyscnn" in row:  # a run that ends above 1e-3 never reached it: its time is a lower bound
            row["pyscnn"]["reached_1e-3"] = bool(row["pyscnn"]["relative_gap_to_exact"] <= 1e-3)
        t = row["admm"]["cpu_to_1e-3_s"]
        peers = [row["clarabel"]["cpu_s"]] + ([row["pyscnn"]["cpu_s"]] if "pyscnn" in row else [])
        row["speedup_vs_fastest_peer"] = None if t is None else min(peers) / t
        print(json.dumps({k: (v if not isinstance(v, dict) else {a: b for a, b in v.items() if a != "log_gap"}) for k, v in row.items()}), flush=True)
        return row

    rows = [one_row(args.n, P) for P in map(int, args.P.split(","))]
    # the peers over P and n too (time to 1e-3 at each size, the main rows included)
    peer_sizes = [(args.n, P) for P in map(int, filter(None, args.peer_scale_P.split(",")))]
    peer_sizes += [(n, args.peer_n_P) for n in map(int, filter(None, args.peer_scale_n.split(",")))]
    peer_rows = [one_row(n, P) for n, P in peer_sizes if not (n == args.n and str(P) in args.P.split(","))]
    scale_P = [per_iteration(args.n, P, args.beta, args.cone_scale) for P in map(int, args.scale_P.split(","))]
    scale_n = [per_iteration(n, 100, args.beta, args.cone_scale) for n in map(int, args.scale_n.split(","))]
    out = {"machine": platform.processor() or platform.machine(), "threads": 1, "beta": args.beta, "rows": rows, "peer_rows": peer_rows,
           "peers_from": args.reuse_peers, "cone_scale": args.cone_scale,
           "scaling_P": scale_P, "scaling_n": scale_n,
           "iteration_exponent_P": fit_exponent([r["P"] for r in scale_P], [r["iteration_cpu_s"] for r in scale_P]),
           "iteration_exponent_n": fit_exponent([r["n"] for r in scale_n], [r["iteration_cpu_s"] for r in scale_n])}
    every = rows + peer_rows
    for peer in ("clarabel", "pyscnn", "admm"):  # the peers' growth: time exponents over P (at --n) and n (at --peer-n-P)
        key = "cpu_to_1e-3_s" if peer == "admm" else "cpu_s"
        over_P = sorted((r["P"], r[peer][key]) for r in every if r["n"] == args.n and peer in r and r[peer][key])
        over_n = sorted((r["n"], r[peer][key]) for r in every if r["P_sampled"] == args.peer_n_P and peer in r and r[peer][key])
        out[f"{peer}_time_exponent_P"] = fit_exponent(*zip(*over_P)) if len(over_P) > 1 else None
        out[f"{peer}_time_exponent_n"] = fit_exponent(*zip(*over_n)) if len(over_n) > 1 else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k not in ("rows", "peer_rows")}, indent=1))


if __name__ == "__main__":
    main()
