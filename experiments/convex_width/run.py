"""Adam and SGD from many initialisations at the width of the exact convex optimum (issue 12,
RESEARCH.md B1: "SGD/Adam at small width land above the convex optimum for the same width").

The problem: relu_teacher in d = 2 (n points, 5 % flipped labels) with a bias column, squared
loss on ±1 targets, β. With every activation pattern of the data (patterns: all, n² − n + 1 of
them) the convex program is exact: its optimum F* is the global minimum of the non-convex
objective 1/(2n)‖f(X) − y‖² + β/2 (‖W₁‖² + ‖b₁‖² + ‖w₂‖²) over nets of any width ≥ m*, and
its solution, pruned to at most n + 1 neurons with the same objective, is a net of width m*.
Cells (one JSON each under --out, skipped when present):

- exact: the program over all patterns by cvxpy + Clarabel, pruned (zoo.training.convex_solvers.prune_blocks);
- <adam|sgd>-s<seed>: full-batch Adam (lr --adam-lr) or SGD with momentum 0.9 (lr --sgd-lr),
  --steps steps from the seed's initialisation, at width m*.

    OMP_NUM_THREADS=1 python experiments/convex_width/run.py            # the cells
    OMP_NUM_THREADS=1 python experiments/convex_width/run.py --summary  # summary.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from zoo import data
from zoo.training.convex_patterns import all_gates, train_relu_net
from zoo.training.convex_robust import solve_robust
from zoo.training.convex_solvers import patterns_from_gates, prune_blocks, recover_neurons, relu_objective

ROOT = Path(__file__).resolve().parents[2]


def problem(args):
    d = data.load("relu_teacher", dim=2, n_train=args.n, n_test=1, label_noise=args.noise, seed=args.data_seed)["train"][:]
    X = np.concatenate([d["input_features"].double().numpy(), np.ones((args.n, 1))], 1)
    return X, d["labels"].numpy() * 2.0 - 1


def write(path: Path, payload: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def exact_cell(args, X, y):
    start = time.process_time()
    D, _ = patterns_from_gates(X, all_gates(X))
    solution = solve_robust(X, y, D, args.beta, 0.0, "squared")
    V, W = prune_blocks(X, D, solution.V, solution.W)
    U, alpha = recover_neurons(V, W)
    return {"patterns": int(D.shape[1]), "program_value": solution.state["program_value"],
            "unpruned_neurons": len(recover_neurons(solution.V, solution.W)[1]), "neurons": len(alpha),
            "objective": relu_objective(X, y, U, alpha, args.beta), "cpu_s": time.process_time() - start}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--beta", type=float, default=1e-2)
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--adam-lr", type=float, default=1e-2)
    p.add_argument("--sgd-lr", type=float, default=0.05)
    p.add_argument("--optimizers", default="adam,sgd")
    p.add_argument("--out", default=str(ROOT / "experiments/results/convex_width"))
    p.add_argument("--summary", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.summary:
        return summarise(out)
    X, y = problem(args)
    path = out / "exact.json"
    if not path.exists():
        write(path, {"args": vars(args), **exact_cell(args, X, y)})
    exact = json.loads(path.read_text())
    print(path.name, exact["objective"], exact["neurons"], flush=True)
    for opt in args.optimizers.split(","):
        for seed in range(args.seeds):
            cell = out / f"{opt}-s{seed}.json"
            if cell.exists():
                continue
            start = time.process_time()
            lr = args.adam_lr if opt == "adam" else args.sgd_lr
            U, alpha, curve = train_relu_net(X, y, exact["neurons"], args.beta, steps=args.steps, lr=lr, seed=seed, optimizer=opt)
            F = relu_objective(X, y, U, alpha, args.beta)
            write(cell, {"args": vars(args), "optimizer": opt, "seed": seed, "width": exact["neurons"], "objective": F,
                         "relative_gap": (F - exact["objective"]) / exact["objective"], "cpu_s": time.process_time() - start,
                         "curve": curve})
            print(cell.name, F, flush=True)


def summarise(out: Path):
    exact = json.loads((out / "exact.json").read_text())
    summary = {"exact": {k: v for k, v in exact.items() if k != "args"}}
    for opt in ("adam", "sgd"):
        cells = [json.loads(p.read_text()) for p in sorted(out.glob(f"{opt}-s*.json"))]
        if not cells:
            continue
        gaps = np.array([c["relative_gap"] for c in cells])
        summary[opt] = {"seeds": len(cells), "width": cells[0]["width"], "steps": cells[0]["args"]["steps"],
                        "best_objective": min(c["objective"] for c in cells), "worst_objective": max(c["objective"] for c in cells),
                        "best_gap": float(gaps.min()), "median_gap": float(np.median(gaps)), "worst_gap": float(gaps.max()),
                        "within_1e-3": int((gaps <= 1e-3).sum()), "below_optimum": int((gaps < -1e-6).sum()),
                        # still moving? relative decrease over the last 1000 steps (curve: every 100th objective)
                        "median_last_1000_decrease": float(np.median([(c["curve"][-11] - c["curve"][-1]) / c["curve"][-1] for c in cells]))}
    write(out / "summary.json", summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
