"""Benign overfitting and grokking on XOR clusters (Xu, Wang, Frei, Vardi, Hu 2023), at CPU scale.

The theorem's regime: dimension d ≫ n, small initialisation, a fixed second layer a_j = ±1/√m
(half each sign), full-batch GD with a constant step on the logistic loss. The zoo's
two_layer_mlp (relu, fixed_second_layer) is that network when its two fixed output rows are
(−a/2, a/2): the 2-class cross-entropy is then the logistic loss of f(x) = Σ_j a_j relu(⟨w_j, x⟩)
(class 1 = clusters ±μ₂ is the positive label).

Per cell (d, n, flip rate, seed): per-step curves of the training accuracy on the noisy labels,
the share of the flipped examples fitted (predicted with their flipped label), the clean test
accuracy, and the first-layer feature picture of the proof: each neuron's weight projected on
span{μ₁, μ₂}: the share of the weight's norm there, and whether it points along the axis its
output sign calls for (a_j > 0 → ±μ₂, a_j < 0 → ±μ₁). One JSON per cell under
experiments/results/xor_grokking/ (existing cells are skipped); ``--summarise`` writes
summary.json and the figures in docs/figures/xor_grokking/.

    python experiments/xor_grokking/run.py --curves            # the curve cells (d/n = 100)
    python experiments/xor_grokking/run.py --grid              # the d/n × flip-rate heat map
    python experiments/xor_grokking/run.py --grid --separation 16.44 --flips 0.1 0.2   # ‖μ‖ fixed
    python experiments/xor_grokking/run.py --summarise
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
RESULTS = os.path.join(ROOT, "experiments", "results", "xor_grokking")
FIGURES = os.path.join(ROOT, "docs", "figures", "xor_grokking")


def cluster_axes(x, cluster):
    """μ₁, μ₂ as unit vectors, from the training inputs' cluster means (±μ pairs averaged)."""
    import torch

    means = torch.stack([x[cluster == c].mean(0) if (cluster == c).any() else torch.zeros(x.shape[1]) for c in range(4)])
    mu1, mu2 = (means[0] - means[1]) / 2, (means[2] - means[3]) / 2
    return mu1 / mu1.norm(), mu2 / mu2.norm()


def true_axes(dim: int, seed: int):
    """The data set's own μ₁, μ₂ directions (zoo.data.synthetic.xor_cluster draws them first from
    its seeded generator: a QR of a dim × 2 Gaussian)."""
    import numpy as np
    import torch

    basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, 2)))
    return torch.tensor(basis[:, 0], dtype=torch.float32), torch.tensor(basis[:, 1], dtype=torch.float32)


def run_cell(dim, n, flip, seed, args) -> dict:
    import torch

    import zoo
    from zoo import data as zoo_data

    separation = args.separation if args.separation else args.snr * dim ** 0.25 * n ** 0.26
    data = zoo_data.load("xor_cluster", dim=dim, n_train=n, n_test=args.n_test, label_noise=flip,
                         separation=separation, seed=seed)
    train, test = data["train"][:], data["test"][:]
    x, y, flipped = train["input_features"], train["labels"], train["flipped"].bool()
    xt, yt = test["input_features"], test["labels"]
    mu1, mu2 = true_axes(dim, seed)
    est1, est2 = cluster_axes(torch.cat([x, xt]), torch.cat([train["cluster"], test["cluster"]]))
    axes_check = float(min(abs(est1 @ mu1), abs(est2 @ mu2)))
    torch.manual_seed(seed)
    m = args.width
    model = zoo.create_model("two_layer_mlp", input_dim=dim, hidden_dim=m, num_labels=2, activation="relu",
                             fixed_second_layer=True, initializer_range=args.init)
    signs = torch.tensor([1.0, -1.0]).repeat(m // 2 + 1)[:m]
    a = signs / math.sqrt(m)
    with torch.no_grad():
        model.output_weight.copy_(torch.stack([-a / 2, a / 2]))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    w0 = model.hidden.weight.detach().clone()
    record_at = sorted(set(list(range(0, min(args.steps, 20) + 1)) + list(range(0, args.steps + 1, max(1, args.steps // 100)))))
    curves = {k: [] for k in ("step", "train_acc", "flipped_fit", "clean_train_acc", "test_acc", "loss",
                              "signal_share", "aligned_share")}

    def record(step):
        with torch.no_grad():
            out = model(input_features=x, labels=y)
            pred = out.logits.argmax(-1)
            pred_t = model(input_features=xt).logits.argmax(-1)
            w = model.hidden.weight
            proj1, proj2 = w @ mu1, w @ mu2
            signal = (proj1 ** 2 + proj2 ** 2).sqrt()
            right = torch.where(a > 0, proj2.abs(), proj1.abs())
            curves["step"].append(step)
            curves["loss"].append(float(out.loss))
            curves["train_acc"].append(float((pred == y).float().mean()))
            curves["flipped_fit"].append(float((pred[flipped] == y[flipped]).float().mean()) if flipped.any() else float("nan"))
            curves["clean_train_acc"].append(float((pred[~flipped] == y[~flipped]).float().mean()))
            curves["test_acc"].append(float((pred_t == yt).float().mean()))
            curves["signal_share"].append(float((signal / w.norm(dim=1)).mean()))  # ‖P w_j‖ / ‖w_j‖, mean over j
            curves["aligned_share"].append(float((right / signal.clamp_min(1e-12) > 0.9).float().mean()))

    start = time.perf_counter()
    record(0)
    for step in range(1, args.steps + 1):
        loss = model(input_features=x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in record_at:
            record(step)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        drift = float((model.hidden.weight - w0).norm() / w0.norm())
    i1 = curves["step"].index(1)
    return {"dim": dim, "n": n, "flip": flip, "seed": seed, "separation": separation, "d_over_n": dim / n,
            "fixed_separation": bool(args.separation), "width": m, "lr": args.lr, "init": args.init, "steps": args.steps, "n_test": args.n_test,
            "flipped": int(flipped.sum()), "axes_check": axes_check, "seconds": seconds, "weight_drift": drift,
            "step1": {k: curves[k][i1] for k in curves},
            "final": {k: curves[k][-1] for k in curves},
            "best_test_acc": max(curves["test_acc"]),
            "optimal_test_acc": optimal_accuracy(separation),
            "curves": curves}


def optimal_accuracy(separation: float) -> float:
    """The Bayes accuracy of the clean XOR mixture (clusters ±μ₁ vs ±μ₂, N(0, I) noise): the two
    coordinates along μ₁, μ₂ carry all the information; Monte Carlo with 200 000 draws."""
    import numpy as np

    rng = np.random.default_rng(0)
    k = 200_000
    c = rng.integers(0, 4, k)
    z = rng.standard_normal((k, 2))
    z[c == 0, 0] += separation
    z[c == 1, 0] -= separation
    z[c == 2, 1] += separation
    z[c == 3, 1] -= separation
    # likelihood ratio of class 1 (±μ₂) against class 0 (±μ₁): cosh(s z₂) vs cosh(s z₁)
    pred = np.abs(z[:, 1]) > np.abs(z[:, 0])
    return float((pred == (c >= 2)).mean())


def cell_path(dim, n, flip, seed, separation=None) -> str:
    tail = f"-mu{separation:g}" if separation else ""
    return os.path.join(RESULTS, f"d{dim}-n{n}-flip{flip:g}-seed{seed}{tail}.json")


def sweep(cells, args) -> None:
    from tqdm import tqdm

    os.makedirs(RESULTS, exist_ok=True)
    for dim, n, flip, seed in tqdm(cells, desc="cells", disable=args.quiet):
        path = cell_path(dim, n, flip, seed, args.separation)
        if os.path.exists(path):
            continue
        cell = run_cell(dim, n, flip, seed, args)
        with open(path + ".tmp", "w") as handle:
            json.dump(cell, handle)
        os.replace(path + ".tmp", path)
        s1, fin = cell["step1"], cell["final"]
        if not args.quiet:
            tqdm.write(f"d={dim} n={n} flip={flip}: step 1 train {s1['train_acc']:.2f} test {s1['test_acc']:.2f}; "
                       f"final train {fin['train_acc']:.2f} flipped fit {fin['flipped_fit']:.2f} test {fin['test_acc']:.2f} "
                       f"(best {cell['best_test_acc']:.2f}, optimal {cell['optimal_test_acc']:.3f}); aligned {fin['aligned_share']:.2f}")


def summarise() -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cells = [json.load(open(os.path.join(RESULTS, f))) for f in sorted(os.listdir(RESULTS))
             if f.endswith(".json") and f != "summary.json"]
    os.makedirs(FIGURES, exist_ok=True)
    summary = {"cells": []}
    for c in cells:
        benign = (c["step1"]["train_acc"] == 1.0 and c["final"]["flipped_fit"] == 1.0 and c["final"]["train_acc"] == 1.0)
        summary["cells"].append({k: c[k] for k in ("dim", "n", "flip", "seed", "separation", "d_over_n", "best_test_acc",
                                                   "optimal_test_acc", "flipped")}
                                | {"fixed_separation": c.get("fixed_separation", False)}
                                | {"step1_train_acc": c["step1"]["train_acc"], "step1_test_acc": c["step1"]["test_acc"],
                                   "final_train_acc": c["final"]["train_acc"], "final_flipped_fit": c["final"]["flipped_fit"],
                                   "final_test_acc": c["final"]["test_acc"], "final_aligned_share": c["final"]["aligned_share"],
                                   "benign_overfit": benign,
                                   "first_step_test_95": next((st for st, t in zip(c["curves"]["step"], c["curves"]["test_acc"])
                                                               if t >= 0.95), None),
                                   "aligned_share_step0": c["curves"]["aligned_share"][0],
                                   "signal_share_step0": c["curves"]["signal_share"][0],
                                   "final_signal_share": c["final"]["signal_share"],
                                   "grokking": benign and c["step1"]["test_acc"] < 0.65 and c["final"]["test_acc"] >= 0.9})
    # curves of the largest-d/n cells
    curve_cells = sorted([c for c in cells if c["d_over_n"] >= 100 and not c.get("fixed_separation")],
                         key=lambda c: (c["flip"], c["seed"]))
    if curve_cells:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for c in curve_cells[:3]:
            s = c["curves"]["step"]
            lab = f"d={c['dim']}, n={c['n']}, flip {c['flip']:g}, seed {c['seed']}"
            axes[0].plot(s, c["curves"]["train_acc"], label=f"train (noisy labels) {lab}")
            axes[0].plot(s, c["curves"]["test_acc"], "--", label=f"test (clean) {lab}")
            axes[0].plot(s, c["curves"]["flipped_fit"], ":", label=f"flipped fitted {lab}")
            axes[1].plot(s, c["curves"]["aligned_share"], label=f"aligned with its ±μ {lab}")
            axes[1].plot(s, c["curves"]["signal_share"], "--", label=f"‖P_μ w‖/‖w‖ {lab}")
        for ax in axes:
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel("GD step")
            ax.legend(fontsize=6)
        axes[0].set_ylabel("accuracy")
        axes[0].axhline(0.5, color="0.7", lw=0.8)
        axes[1].set_ylabel("share of neurons / of weight norm")
        fig.tight_layout()
        fig.savefig(os.path.join(FIGURES, "curves.png"), dpi=110)
        plt.close(fig)
    # the main grid (‖μ‖ from the d-dependent rule) and the fixed-‖μ‖ grid, one heat map each
    for tag, fixed in (("heatmap", False), ("heatmap-fixed-mu", True)):
        grid = [c for c in summary["cells"] if c["seed"] == 0 and c["fixed_separation"] == fixed]
        ratios = sorted({c["d_over_n"] for c in grid})
        flips = sorted({c["flip"] for c in grid})
        if len(ratios) > 1 and len(flips) > 1:
            heatmap(plt, np, grid, ratios, flips, os.path.join(FIGURES, f"{tag}.png"))
            summary[tag.replace("-", "_")] = {"d_over_n": ratios, "flip": flips}
    with open(os.path.join(RESULTS, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    return summary


def heatmap(plt, np, grid, ratios, flips, path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, key, title in zip(axes, ("step1_test_acc", "final_test_acc", "final_flipped_fit"),
                              ("test accuracy after step 1", "final test accuracy", "flipped labels fitted (final)")):
        mat = np.full((len(flips), len(ratios)), np.nan)
        for c in grid:
            mat[flips.index(c["flip"]), ratios.index(c["d_over_n"])] = c[key]
        im = ax.imshow(mat, origin="lower", vmin=0.4 if "test" in key else 0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(len(flips)):
            for j in range(len(ratios)):
                if not np.isnan(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
        ax.set_yticks(range(len(flips)), [f"{f:g}" for f in flips])
        ax.set_xlabel("d / n")
        ax.set_ylabel("flip rate")
        ax.set_title(f"{title} (‖μ‖ = {grid[0]['separation']:.1f})" if grid[0]["fixed_separation"] else title, fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--curves", action="store_true", help="the per-step curve cells (d = 100 n, flip rate 0.1)")
    parser.add_argument("--grid", action="store_true", help="the d/n × flip-rate grid")
    parser.add_argument("--ratios", nargs="+", type=float, default=[1, 5, 25, 100])
    parser.add_argument("--flips", nargs="+", type=float, default=[0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--init", type=float, default=1e-4, help="std of the first layer's init (small)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--snr", type=float, default=1.0, help="‖μ‖ = snr · d^(1/4) · n^0.26 unless --separation")
    parser.add_argument("--separation", type=float, default=None)
    parser.add_argument("--summarise", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.summarise:
        s = summarise()
        print(json.dumps(s, indent=1)[:4000])
        return 0
    cells = []
    if args.curves:
        cells += [(100 * args.n, args.n, 0.1, seed) for seed in args.seeds]
    if args.grid:
        cells += [(int(r * args.n), args.n, f, seed) for r in args.ratios for f in args.flips for seed in args.seeds]
    if not cells:
        parser.error("say --curves, --grid or --summarise")
    sweep(cells, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
