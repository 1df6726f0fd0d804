"""Robust (ℓ∞) convex training against PGD adversarial training by SGD at the same width (issue 12,
RESEARCH.md B1; Bai, Gautam & Sojoudi 2022 §4).

The problem: relu_teacher (d = 10 Gaussian inputs, clean labels), a two-layer ReLU net with a
first-layer bias, hinge loss on ±1 targets with weight β/2 (‖W₁‖² + ‖b₁‖² + ‖w₂‖²) — the same
objective for every method. Cells (one JSON each under --out, skipped when present):

- convex-eps<ε>: the robust convex program (P random gates, solver cvxpy + Clarabel); ε = 0 is
  the ordinary convex program with the hinge loss;
- pgdat-eps<ε>-s<seed>: mini-batch SGD (momentum 0.9) on PGD adversarial examples (Madry et al.:
  random start, `--train-pgd-steps` steps of 2.5ε/steps) at the width of convex-eps<ε>.

Every net is evaluated on the test set: clean accuracy, accuracy under FGSM and under PGD
(`--pgd-steps` steps, `--restarts` starts; analysis/attacks.py), and certified accuracy
(zoo.training.convex_robust.certify: a lower bound of the worst-case margin, exact where no
neuron can change sign on the ball — a proof, not an attack).

    OMP_NUM_THREADS=1 python experiments/convex_robust/run.py            # the cells
    OMP_NUM_THREADS=1 python experiments/convex_robust/run.py --summary  # summary.json + figure
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from analysis.attacks import pgd, robust_accuracy
from zoo import data
from zoo.training.convex import PatternSolver
from zoo.training.convex_robust import certify, margin_bound
from zoo.training.convex_solvers import recover_neurons

ROOT = Path(__file__).resolve().parents[2]


def problem(args):
    d = data.load("relu_teacher", dim=args.d, n_train=args.n, n_test=args.n_test, label_noise=0.0, seed=args.data_seed)
    tr, te = d["train"][:], d["test"][:]
    with_bias = lambda x: np.concatenate([x.double().numpy(), np.ones((len(x), 1))], 1)  # noqa: E731
    return with_bias(tr["input_features"]), tr["labels"].numpy(), with_bias(te["input_features"]), te["labels"].numpy()


def torch_net(U, alpha):
    """logits (−f/2, f/2) of f(x) = Σ_j α_j relu(u_j·x), x with its bias column."""
    U, alpha = torch.as_tensor(U), torch.as_tensor(alpha)
    return lambda x: (lambda f: torch.stack([-f / 2, f / 2], 1))(torch.relu(x @ U.T) @ alpha)


def evaluate(args, U, alpha, X, labels, eps):
    model, x, lab = torch_net(U, alpha), torch.as_tensor(X), torch.as_tensor(labels)
    m = X.shape[1] - 1  # the bias column is not perturbed
    y = labels * 2.0 - 1
    out = {"clean": robust_accuracy(model, x, lab, eps, "none")}
    if eps > 0:
        out["fgsm"] = robust_accuracy(model, x, lab, eps, "fgsm", columns=m)
        out["pgd"] = robust_accuracy(model, x, lab, eps, "pgd", steps=args.pgd_steps, restarts=args.restarts, columns=m)
        out["certified"] = float(certify(X, y, U, alpha, eps, m).mean())
    return out


def write(path: Path, payload: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def convex_cell(args, X, labels, Xt, lt, eps):
    y = labels * 2.0 - 1
    options = {"beta": args.beta, "patterns": "random", "num_patterns": args.P, "solver": "cvxpy", "loss": "hinge", "epsilon": eps}
    start = time.process_time()
    solution, info = PatternSolver(X, options, perturbed=X.shape[1] - 1).solve(np.random.default_rng(args.seed), y, 0)
    U, alpha = recover_neurons(solution.V, solution.W)
    return {"method": "convex", "epsilon": eps, "cpu_s": time.process_time() - start, "neurons": len(alpha),
            "num_patterns": info["num_patterns"], "objective": solution.objective, "program_value": info["program_value"],
            "train": evaluate(args, U, alpha, X, labels, eps), "test": evaluate(args, U, alpha, Xt, lt, eps),
            "U": U.tolist(), "alpha": alpha.tolist()}


def pgd_at(args, X, labels, width, eps, seed):
    """SGD on PGD adversarial examples; returns (U, alpha) in float64."""
    gen = torch.Generator().manual_seed(seed)
    x, lab = torch.as_tensor(X), torch.as_tensor(labels)
    y = lab * 2.0 - 1
    n, d = x.shape
    U = (torch.randn(width, d, generator=gen, dtype=torch.float64) / np.sqrt(d)).requires_grad_()
    alpha = (torch.randn(width, generator=gen, dtype=torch.float64) / np.sqrt(width)).requires_grad_()
    opt = torch.optim.SGD([U, alpha], lr=args.lr, momentum=0.9)
    m = d - 1
    for epoch in range(args.epochs):
        order = torch.randperm(n, generator=gen)
        for b in range(0, n, args.batch):
            idx = order[b:b + args.batch]
            model = torch_net(U.detach(), alpha.detach())
            xa = pgd(model, x[idx], lab[idx], eps, steps=args.train_pgd_steps, restarts=1, columns=m,
                     seed=seed * 100003 + epoch * 1000 + b) if eps > 0 else x[idx]
            f = torch.relu(xa @ U.T) @ alpha
            loss = torch.relu(1 - y[idx] * f).mean() + 0.5 * args.beta * ((U * U).sum() + (alpha * alpha).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return U.detach().numpy(), alpha.detach().numpy()


def pgdat_cell(args, X, labels, Xt, lt, eps, width, seed):
    start = time.process_time()
    U, alpha = pgd_at(args, X, labels, width, eps, seed)
    return {"method": "pgd-at" if eps > 0 else "sgd", "epsilon": eps, "seed": seed, "width": width, "cpu_s": time.process_time() - start,
            # PGD's view of the robust objective: a lower bound of it (upper bound: summarise's bound_objective)
            "pgd_objective": pgd_objective(args, U, alpha, X, labels, eps),
            "train": evaluate(args, U, alpha, X, labels, eps), "test": evaluate(args, U, alpha, Xt, lt, eps),
            "U": U.tolist(), "alpha": alpha.tolist()}


def pgd_objective(args, U, alpha, X, labels, eps):
    """Mean hinge loss at PGD's attack + β/2‖θ‖²: what the attack shows of the robust objective."""
    model, x, lab = torch_net(U, alpha), torch.as_tensor(X), torch.as_tensor(labels)
    xa = pgd(model, x, lab, eps, steps=args.pgd_steps, restarts=args.restarts, columns=X.shape[1] - 1) if eps > 0 else x
    f = model(xa)[:, 1].detach().numpy() * 2
    return float(np.maximum(1 - (labels * 2.0 - 1) * f, 0).mean() + 0.5 * args.beta * ((U * U).sum() + (alpha * alpha).sum()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--beta", type=float, default=1e-3)
    p.add_argument("--P", type=int, default=40)
    p.add_argument("--eps", default="0,0.01,0.03,0.1", help="comma list of ℓ∞ radii (0 = no attack in training)")
    p.add_argument("--seeds", type=int, default=3, help="PGD-AT initialisations per ε")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--train-pgd-steps", type=int, default=7)
    p.add_argument("--pgd-steps", type=int, default=20)
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "experiments/results/convex_robust"))
    p.add_argument("--summary", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.summary:
        return summarise(out)
    X, labels, Xt, lt = problem(args)
    for eps in map(float, args.eps.split(",")):
        path = out / f"convex-eps{eps:g}.json"
        if not path.exists():
            write(path, {"args": vars(args), **convex_cell(args, X, labels, Xt, lt, eps)})
        cell = json.loads(path.read_text())
        print(path.name, cell["neurons"], cell["test"], flush=True)
        for seed in range(args.seeds):
            spath = out / f"pgdat-eps{eps:g}-s{seed}.json"
            if not spath.exists():
                # the width of the convex net; where its optimum is the zero net, the program's 2P blocks
                width = cell["neurons"] or 2 * cell["num_patterns"]
                write(spath, {"args": vars(args), **pgdat_cell(args, X, labels, Xt, lt, eps, width, seed)})
            print(spath.name, json.loads(spath.read_text())["test"], flush=True)


def bound_objective(X, labels, U, alpha, beta, eps):
    """A certified upper bound of the net's robust training objective: the hinge loss at the
    margin bound (certify's), + β/2‖θ‖². For a solution of the robust program it is its value."""
    U, alpha = np.asarray(U, float).reshape(-1, X.shape[1]), np.asarray(alpha, float)
    bound = margin_bound(X, labels * 2.0 - 1, U, alpha, eps, X.shape[1] - 1)
    return float(np.maximum(1 - bound, 0).mean() + 0.5 * beta * ((U * U).sum() + (alpha * alpha).sum()))


def summarise(out: Path):
    cells = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.name != "summary.json"}
    first = next(iter(cells.values()))["args"]
    X, labels, _, _ = problem(argparse.Namespace(**first))
    for v in cells.values():
        v["bound_objective"] = bound_objective(X, labels, v["U"], v["alpha"], v["args"]["beta"], v["epsilon"])
    summary = {"cells": {k: {f: v[f] for f in ("method", "epsilon", "neurons", "width", "cpu_s", "objective", "pgd_objective",
                                               "bound_objective", "train", "test") if f in v} for k, v in cells.items()}}
    for eps in sorted({v["epsilon"] for v in cells.values()}):
        tag = f"eps{eps:g}"
        convex = cells.get(f"convex-{tag}")
        at = [v for k, v in cells.items() if k.startswith(f"pgdat-{tag}-")]
        row = {}
        if convex:
            row["convex"] = convex["test"]
            row["convex_train"] = convex["train"]
        if at:
            row["pgd_at_seeds"] = len(at)
            row["pgd_at_mean"] = {m: float(np.mean([v["test"][m] for v in at])) for m in at[0]["test"]}
            row["pgd_at_best_pgd"] = max(v["test"].get("pgd", v["test"]["clean"]) for v in at)
            row["pgd_at_train_mean"] = {m: float(np.mean([v["train"][m] for v in at])) for m in at[0]["train"]}
            row["pgd_at_bound_objective"] = [v["bound_objective"] for v in at]
            row["pgd_at_pgd_objective"] = [v["pgd_objective"] for v in at]
        if convex:
            row["convex_objective"] = convex["objective"]
            row["convex_bound_objective"] = convex["bound_objective"]
        summary[tag] = row
    write(out / "summary.json", summary)
    plot(summary, ROOT / "docs/figures/convex_robust")
    print(json.dumps({k: v for k, v in summary.items() if k != "cells"}, indent=1))


def plot(summary, folder: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    tags = [k for k in summary if k.startswith("eps") and k != "eps0"]
    fig, axes = plt.subplots(1, max(1, len(tags)), figsize=(5 * max(1, len(tags)), 3.4), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        metrics = ["clean", "fgsm", "pgd", "certified"]
        row = summary[tag]
        for k, (name, values) in enumerate((("robust convex", row.get("convex")), ("PGD-AT (mean)", row.get("pgd_at_mean")))):
            if values:
                ax.bar(np.arange(4) + 0.4 * k, [values.get(m, np.nan) for m in metrics], width=0.4, label=name)
        ax.set_xticks(np.arange(4) + 0.2, metrics)
        ax.set(ylim=(0, 1), ylabel="test accuracy", title=f"ℓ∞ ε = {tag[3:]}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "accuracy.png", dpi=120)


if __name__ == "__main__":
    main()
