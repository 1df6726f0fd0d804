"""The dynamical stability of SGD (Wu & Su 2023), at CPU scale.

Two-layer ReLU nets (both layers trained) and diagonal linear nets (β = u⊙u − v⊙v) are trained on
sparse linear regression with n < parameters (so interpolating global minima exist) by full-batch
GD and by SGD with batch size 1, over a grid of learning rates, until the training loss (mean
squared error) is below --tol. At the minimum reached, analysis.sharpness measures the Hessian of
the training loss exactly (tiny models): λ_max, tr(H), ‖H‖_F. The claims checked:

* GD: a linearly stable minimum has λ_max ≤ 2/η, i.e. η·λ_max/2 ≤ 1;
* SGD (batch 1): tr(H) ≤ 2/η, i.e. η·tr(H)/2 ≤ 1 (a much stronger constraint: tr ≥ λ_max);
* sharpness equals parameter norms (diagonal net: tr(H) = (8/n) Σ_j (u_j² + v_j²) Σ_i x_ij², which
  is ≈ 8·‖β‖₁·(mean x²) when u⊙v → 0; ReLU net: tr(H) against the path norm Σ_k |a_k|·‖w_k‖);
* test error against η: larger η regularises more, for SGD more than for GD.

One JSON per cell under experiments/results/stability/ (a cell that exists is skipped, so the
sweep can be extended); ``--summarise`` writes summary.json and the figures in docs/figures/stability/.

    python experiments/stability/run.py                  # the sweep (resumable)
    python experiments/stability/run.py --summarise      # summary.json + figures
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

RESULTS = os.path.join(ROOT, "experiments", "results", "stability")
FIGURES = os.path.join(ROOT, "docs", "figures", "stability")
# per optimizer: up to and past where the start's sharpness breaks the bound (λ_max ≈ 10, tr ≈ 50 at init)
DEFAULT_LRS = {"gd": [0.01, 0.03, 0.1, 0.2, 0.3, 0.4], "sgd": [0.005, 0.01, 0.02, 0.04, 0.06, 0.08]}


def make_model(kind: str, dim: int, width: int, init_scale: float, seed: int):
    import torch

    import zoo

    torch.manual_seed(seed)
    if kind == "diag":
        model = zoo.create_model("diagonal_linear", input_dim=dim, num_labels=1, problem_type="regression",
                                 init_scale=init_scale)
    else:
        model = zoo.create_model("two_layer_mlp", input_dim=dim, hidden_dim=width, num_labels=1,
                                 problem_type="regression", activation="relu", initializer_range=1 / math.sqrt(dim))
        torch.nn.init.normal_(model.output.weight, std=1 / math.sqrt(width))
    return model.double()


def norms(kind: str, model, x) -> dict:
    import torch

    with torch.no_grad():
        if kind == "diag":
            u, v = model.diagonal.u[0], model.diagonal.v[0]
            beta = u * u - v * v
            col = (x * x).mean(0)
            return {"beta_l1": float(beta.abs().sum()), "beta_l2": float(beta.norm()),
                    "weighted_norm": float(8 * ((u * u + v * v) * col).sum()),  # = tr(H) at interpolation
                    "theta_sq": float((u * u + v * v).sum())}
        w, a = model.hidden.weight, model.output.weight[0]
        return {"path_norm": float((a.abs() * w.norm(dim=1)).sum()), "theta_sq": float(w.pow(2).sum() + a.pow(2).sum())}


def train_cell(kind, optimizer, lr, args) -> dict:
    import torch

    from analysis.sharpness import measure_sharpness
    from zoo import data as zoo_data

    data = zoo_data.load("sparse_regression", dim=args.dim, n_train=args.n, n_test=args.n_test,
                         sparsity=args.sparsity, seed=args.data_seed)
    train, test = data["train"][:], data["test"][:]
    x, y = train["input_features"].double(), train["labels"].double()
    xt, yt = test["input_features"].double(), test["labels"].double()
    model = make_model(kind, args.dim, args.width, args.init_scale, args.seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    status, steps, loss = "max_steps", 0, math.inf
    for steps in range(1, args.max_steps + 1):
        if optimizer == "gd":
            batch_x, batch_y = x, y
        else:
            i = torch.randint(0, args.n, (args.batch_size,), generator=generator)
            batch_x, batch_y = x[i], y[i]
        out = model(input_features=batch_x, labels=batch_y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if steps % 50 == 0 or optimizer == "gd":
            with torch.no_grad():
                loss = float(model(input_features=x, labels=y).loss)
            if not math.isfinite(loss) or loss > 1e6:
                status = "diverged"
                break
            if loss < args.tol:
                status = "converged"
                break
    seconds = time.perf_counter() - start
    cell = {"model": kind, "optimizer": optimizer, "lr": lr, "batch_size": args.n if optimizer == "gd" else args.batch_size,
            "status": status, "steps": steps, "train_loss": loss, "seconds": seconds,
            "settings": {k: getattr(args, k) for k in ("dim", "n", "n_test", "sparsity", "width", "init_scale", "seed",
                                                       "data_seed", "tol", "max_steps")}}
    if status != "diverged":
        report = measure_sharpness(model, [{"input_features": x, "labels": y}], probes=32, top_k=1, exact=True)
        with torch.no_grad():
            test_mse = float(((model(input_features=xt).logits[:, 0] - yt) ** 2).mean())
        cell.update({
            "lambda_max": report.exact.lambda_max, "trace": report.exact.trace, "frobenius": report.exact.frobenius,
            "hutchinson_trace": report.trace.estimate, "lanczos_lambda_max": report.lambda_max,
            "eta_lambda_over_2": lr * report.exact.lambda_max / 2, "eta_trace_over_2": lr * report.exact.trace / 2,
            "test_mse": test_mse, "parameters": report.parameters, **norms(kind, model, x),
        })
    return cell


def cell_path(kind, optimizer, lr, seed) -> str:
    return os.path.join(RESULTS, f"{kind}-{optimizer}-lr{lr:g}-seed{seed}.json")


def sweep(args) -> None:
    from tqdm import tqdm

    os.makedirs(RESULTS, exist_ok=True)
    cells = [(k, o, lr) for k in args.models for o in args.optimizers for lr in (args.lrs or DEFAULT_LRS[o])]
    for kind, optimizer, lr in tqdm(cells, desc="cells", disable=args.quiet):
        path = cell_path(kind, optimizer, lr, args.seed)
        if os.path.exists(path):
            continue
        cell = train_cell(kind, optimizer, lr, args)
        with open(path + ".tmp", "w") as handle:
            json.dump(cell, handle, indent=1)
        os.replace(path + ".tmp", path)
        if not args.quiet:
            tqdm.write(f"{kind} {optimizer} lr={lr:g}: {cell['status']} after {cell['steps']} steps, "
                       f"eta*lmax/2={cell.get('eta_lambda_over_2', float('nan')):.3f} "
                       f"eta*tr/2={cell.get('eta_trace_over_2', float('nan')):.3f} test={cell.get('test_mse', float('nan')):.4f}")


def summarise() -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    every = []
    for name in sorted(os.listdir(RESULTS)):
        if name.endswith(".json") and name != "summary.json":
            every.append(json.load(open(os.path.join(RESULTS, name))))
    # the main summary (groups, figure) is seed 0; the other seeds are checked in "other_seeds"
    cells = [c for c in every if c["settings"]["seed"] == 0]
    done = [c for c in cells if c["status"] == "converged"]
    summary = {"cells": len(cells), "converged": len(done),
               "diverged": sorted(f"{c['model']}-{c['optimizer']}-lr{c['lr']:g}" for c in cells if c["status"] == "diverged"),
               "not_converged": sorted(f"{c['model']}-{c['optimizer']}-lr{c['lr']:g}" for c in cells if c["status"] == "max_steps"),
               "groups": {}}
    for kind in ("diag", "relu"):
        for opt in ("gd", "sgd"):
            group = sorted((c for c in done if c["model"] == kind and c["optimizer"] == opt), key=lambda c: c["lr"])
            if not group:
                continue
            entry = {key: [c[key] for c in group] for key in
                     ("lr", "lambda_max", "trace", "eta_lambda_over_2", "eta_trace_over_2", "test_mse", "steps")}
            entry["max_eta_lambda_over_2"] = max(entry["eta_lambda_over_2"])
            entry["max_eta_trace_over_2"] = max(entry["eta_trace_over_2"])
            norm_key = "weighted_norm" if kind == "diag" else "path_norm"
            entry[norm_key] = [c[norm_key] for c in group]
            if kind == "diag":
                entry["beta_l1"] = [c["beta_l1"] for c in group]
                entry["max_rel_gap_trace_vs_weighted_norm"] = max(abs(c["trace"] - c["weighted_norm"]) / c["trace"] for c in group)
            if len(group) > 2:
                entry["corr_trace_vs_norm"] = float(np.corrcoef(entry["trace"], entry[norm_key])[0, 1])
            summary["groups"][f"{kind}-{opt}"] = entry
    summary["other_seeds"] = {}
    for seed in sorted({c["settings"]["seed"] for c in every} - {0}):
        mine = [c for c in every if c["settings"]["seed"] == seed]
        ok = [c for c in mine if c["status"] == "converged"]
        entry = {"data_seed": mine[0]["settings"]["data_seed"], "cells": len(mine), "converged": len(ok),
                 "diverged": sorted(f"{c['model']}-{c['optimizer']}-lr{c['lr']:g}" for c in mine if c["status"] == "diverged"),
                 "not_converged": sorted(f"{c['model']}-{c['optimizer']}-lr{c['lr']:g}" for c in mine if c["status"] == "max_steps")}
        for kind in ("diag", "relu"):
            for opt in ("gd", "sgd"):
                group = sorted((c for c in ok if c["model"] == kind and c["optimizer"] == opt), key=lambda c: c["lr"])
                if group:
                    entry[f"{kind}-{opt}"] = {
                        "lr": [c["lr"] for c in group], "test_mse": [c["test_mse"] for c in group],
                        "max_eta_lambda_over_2": max(c["eta_lambda_over_2"] for c in group),
                        "max_eta_trace_over_2": max(c["eta_trace_over_2"] for c in group)}
        summary["other_seeds"][str(seed)] = entry
    os.makedirs(FIGURES, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name, entry in summary["groups"].items():
        style = "-o" if name.endswith("-gd") else "--s"
        axes[0].plot(entry["lr"], entry["eta_lambda_over_2"], style, label=name)
        axes[1].plot(entry["lr"], entry["eta_trace_over_2"], style, label=name)
        axes[2].plot(entry["lr"], entry["test_mse"], style, label=name)
    for ax, title in zip(axes, ("η·λ_max(H)/2 (GD bound: ≤ 1)", "η·tr(H)/2 (SGD bound: ≤ 1)", "test MSE")):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate η")
        ax.set_title(title, fontsize=10)
        if "bound" in title:
            ax.axhline(1.0, color="k", lw=1, ls=":")
        ax.legend(fontsize=8)
    axes[2].set_yscale("log")
    fig.tight_layout()
    fig.savefig(os.path.join(FIGURES, "stability.png"), dpi=110)
    plt.close(fig)
    with open(os.path.join(RESULTS, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["diag", "relu"], choices=["diag", "relu"])
    parser.add_argument("--optimizers", nargs="+", default=["gd", "sgd"], choices=["gd", "sgd"])
    parser.add_argument("--lrs", nargs="+", type=float, default=None)
    parser.add_argument("--dim", type=int, default=30)
    parser.add_argument("--n", type=int, default=15)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--sparsity", type=int, default=3)
    parser.add_argument("--width", type=int, default=20)
    parser.add_argument("--init-scale", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=1, help="SGD batch size (the trace bound is for 1)")
    parser.add_argument("--tol", type=float, default=1e-7)
    parser.add_argument("--max-steps", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--summarise", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.summarise:
        print(json.dumps(summarise(), indent=1)[:3000])
        return 0
    sweep(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
