"""Pattern sources of the convex program against Adam at the same width (issue 12, RESEARCH.md B1).

The problem: relu_teacher (n = 500, d = 20, 5 % flipped training labels), β = 1e-3, squared loss
on ±1 targets; every objective is the non-convex one of the net the method returns,
1/(2n)‖f(X) − y‖² + β/2 (‖W₁‖² + ‖w₂‖²). Cells (one JSON each under --out, skipped when present):

- source-<random|pairs|adaptive>: the convex program over P sampled patterns by ADMM;
- source-gated-random: the gated-ReLU program over the same random gates by FISTA, converted to
  ReLU and polished by ADMM (--sources item gated:random);
- adam-s<seed>: full-batch Adam at the width of the random source's solution;
- net-s<seed>: the convex refinement over the patterns of adam-s<seed> (warm-started from it).

    OMP_NUM_THREADS=1 python experiments/convex_patterns/run.py            # the cells
    OMP_NUM_THREADS=1 python experiments/convex_patterns/run.py --summary  # summary.json + figure
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from zoo import data
from zoo.training.convex import PatternSolver
from zoo.training.convex_patterns import train_relu_net
from zoo.training.convex_solvers import relu_objective, relu_predict

ROOT = Path(__file__).resolve().parents[2]


def problem(args):
    d = data.load("relu_teacher", dim=args.d, n_train=args.n, n_test=2000, label_noise=args.noise, seed=args.data_seed)
    tr, te = d["train"][:], d["test"][:]
    X, y = tr["input_features"].double().numpy(), tr["labels"].numpy() * 2.0 - 1
    return X, y, te["input_features"].double().numpy(), te["labels"].numpy()


def accuracy(X, labels, U, alpha):
    return float(((relu_predict(X, U, alpha) > 0).astype(int) == labels).mean())


def write(path: Path, payload: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def convex_cell(args, X, y, Xt, lt, source, net=None, seed=0):
    from zoo.training.convex_solvers import recover_neurons

    solver, _, source = source.rpartition(":")
    options = {"beta": args.beta, "patterns": source, "num_patterns": args.P, "max_iter": args.max_iter,
               "gap_tol": 1e-4, "tol": 1e-6, "solver": solver or "admm", "cone_scale": args.cone_scale}
    start = time.process_time()
    solution, info = PatternSolver(X, options).solve(np.random.default_rng(seed), y, 0, net=net)
    U, alpha = recover_neurons(solution.V, solution.W)
    return {**info, "objective": solution.objective, "lower_bound": solution.lower_bound,
            "iterations": solution.iterations, "converged": solution.converged, "cpu_s": time.process_time() - start,
            "neurons": len(alpha), "train_accuracy": accuracy(X, (y > 0).astype(int), U, alpha),
            "test_accuracy": accuracy(Xt, lt, U, alpha), "history": solution.history}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--d", type=int, default=20)
    p.add_argument("--beta", type=float, default=1e-3)
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument("--P", type=int, default=100)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=2000)
    p.add_argument("--cone-scale", type=float, default=3.0, help="ADMM's cone scaling c (κ = c/√n)")
    p.add_argument("--sources", default="random,pairs,adaptive,gated:random")
    p.add_argument("--adam-seeds", type=int, default=5)
    p.add_argument("--adam-steps", type=int, default=3000)
    p.add_argument("--adam-lr", type=float, default=1e-2)
    p.add_argument("--out", default=str(ROOT / "experiments/results/convex_patterns"))
    p.add_argument("--summary", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.summary:
        return summarise(out)
    X, y, Xt, lt = problem(args)
    for source in args.sources.split(","):
        path = out / f"source-{source.replace(':', '-')}.json"
        if not path.exists():
            write(path, {"args": vars(args), **convex_cell(args, X, y, Xt, lt, source)})
            print(path, json.loads(path.read_text())["objective"])
    width = json.loads((out / "source-random.json").read_text())["neurons"]
    for seed in range(args.adam_seeds):
        path = out / f"adam-s{seed}.json"
        stale = path.exists() and json.loads(path.read_text())["width"] != width  # the random source's width changed
        if stale:
            (out / f"net-s{seed}.json").unlink(missing_ok=True)
        if not path.exists() or stale:
            start = time.process_time()
            U, alpha, curve = train_relu_net(X, y, width, args.beta, steps=args.adam_steps, lr=args.adam_lr, seed=seed)
            write(path, {"args": vars(args), "width": width, "objective": relu_objective(X, y, U, alpha, args.beta),
                         "train_accuracy": accuracy(X, (y > 0).astype(int), U, alpha), "test_accuracy": accuracy(Xt, lt, U, alpha),
                         "cpu_s": time.process_time() - start, "curve": curve, "U": U.tolist(), "alpha": alpha.tolist()})
            print(path, json.loads(path.read_text())["objective"])
        net_path = out / f"net-s{seed}.json"
        if not net_path.exists():
            cell = json.loads(path.read_text())
            net = (np.array(cell["U"]), np.array(cell["alpha"]))
            write(net_path, {"args": vars(args), **convex_cell(args, X, y, Xt, lt, "net", net=net, seed=seed)})
            print(net_path, json.loads(net_path.read_text())["objective"])


def summarise(out: Path):
    cells = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.name != "summary.json"}
    keep = ("objective", "lower_bound", "neurons", "num_patterns", "iterations", "converged", "cpu_s",
            "train_accuracy", "test_accuracy", "net_objective", "kept_net", "grown_to", "width",
            "gated_objective", "gated_lower_bound", "converted_objective")
    summary = {"cells": {k: {f: v[f] for f in keep if f in v} for k, v in cells.items()}}
    adam = [v["objective"] for k, v in cells.items() if k.startswith("adam-")]
    nets = [v["objective"] for k, v in cells.items() if k.startswith("net-")]
    if adam:
        summary["adam"] = {"seeds": len(adam), "best": min(adam), "median": float(np.median(adam)), "worst": max(adam)}
    if nets:
        summary["net_refined"] = {"seeds": len(nets), "best": min(nets), "median": float(np.median(nets)), "worst": max(nets)}
    for k, v in cells.items():
        if k.startswith("source-"):
            summary[k] = {"objective": v["objective"], "neurons": v["neurons"]}
            if adam:
                summary[k]["over_best_adam"] = v["objective"] / min(adam)
    write(out / "summary.json", summary)
    plot(cells, ROOT / "docs/figures/convex_patterns")
    print(json.dumps({k: v for k, v in summary.items() if k != "cells"}, indent=1))


def plot(cells, folder: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, v in cells.items():
        if k.startswith("source-") or k == "net-s0":
            h = v["history"]
            # |net objective − dual bound|: the iterate's net can sit below the bound while its cones are violated
            a.semilogy([r["iteration"] for r in h], [max(abs(r["objective"] - r["lower_bound"]), 1e-12) / r["objective"] for r in h], label=k)
    a.set(xlabel="ADMM iteration", ylabel="|objective − dual bound| / objective", title="ADMM convergence")
    a.legend(fontsize=7)
    names = [k for k in cells if not k.startswith("adam-")]
    b.bar(range(len(names)), [cells[k]["objective"] for k in names])
    adam = [v["objective"] for k, v in cells.items() if k.startswith("adam-")]
    if adam:
        b.axhspan(min(adam), max(adam), color="C3", alpha=0.3, label=f"Adam, {len(adam)} seeds")
        b.legend(fontsize=7)
    b.set_yscale("log")
    b.set_xticks(range(len(names)), names, rotation=30, fontsize=7)
    b.set(ylabel="objective F", title="objective by pattern source")
    fig.tight_layout()
    fig.savefig(folder / "objectives.png", dpi=120)


if __name__ == "__main__":
    main()
