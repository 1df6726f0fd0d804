"""Tanh vs ReLU representational geometry (Alleman, Lindsey & Fusi 2024) at CPU scale.

One-hidden-layer nets (the zoo's two_layer_mlp, first-layer bias, trained output layer) learn the
zoo's `geometry_task` (2^3 conditions of three binary latent variables; inputs whose geometry is
more or less aligned with the targets, knob `alignment`; low-dimensional targets = the three
latent variables, high-dimensional = all seven parities) with full-batch Adam and binary
cross-entropy. For each (activation, target, alignment, seed) cell one JSON under
experiments/results/geometry_tanh_relu/ holds the hidden layer's geometry on the test split,
at initialisation and after training (analysis.geometry): kernel–target alignment, CKA with
the targets and with the input, and the parallelism score and CCGP of the latent variables.

    python experiments/geometry_tanh_relu/run.py --seeds 0 1 2
    python experiments/geometry_tanh_relu/run.py --summary
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "geometry_tanh_relu"
FIGURES = ROOT / "docs" / "figures" / "geometry_tanh_relu"


def hidden_geometry(model, x, table) -> dict:
    from analysis.geometry import metrics

    with torch.no_grad():
        h = model.hidden(input_features=x).last_hidden_state.double().numpy()
    targets, latents, inputs = table["labels"].numpy(), table["latents"].numpy(), x.double().numpy()
    relu_active = (h > 0).mean(0)  # per unit: the share of test examples it is active on
    return {"kta": metrics.kernel_target_alignment(h, targets),
            "cka_target": metrics.linear_cka(h, targets), "cka_input": metrics.linear_cka(h, inputs),
            "parallelism": float(np.mean(metrics.parallelism_score(h, latents))),
            "ccgp": float(np.mean(metrics.ccgp(h, latents))),
            "active_share_mean": float(relu_active.mean())}


def task_and_net(activation, target, alignment, seed, hidden):
    """(train table, test table, the seeded untrained net) of one cell (shared with dynamics.py)."""
    import zoo
    from zoo import data

    splits = data.load("geometry_task", alignment=alignment, target=target, seed=seed)
    train, test = splits["train"][:], splits["test"][:]
    torch.manual_seed(seed)
    model = zoo.create_model("two_layer_mlp", input_dim=train["input_features"].shape[1], hidden_dim=hidden,
                             num_labels=train["labels"].shape[1], activation=activation, first_layer_bias=True,
                             second_layer_bias=True, initializer_range=0.1, problem_type="multi_label_classification")
    return train, test, model


def add_grid_arguments(parser, alignments) -> None:
    """The sweep's options (shared with dynamics.py)."""
    parser.add_argument("--alignments", type=float, nargs="+", default=list(alignments))
    parser.add_argument("--targets", nargs="+", default=["low", "high"])
    parser.add_argument("--activations", nargs="+", default=["tanh", "relu"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--summary", action="store_true")


def grid(args, folder: Path):
    """(activation, target, alignment, seed, out path) of every cell not yet written under `folder`."""
    for seed in args.seeds:
        for target in args.targets:
            for alignment in args.alignments:
                for activation in args.activations:
                    out = folder / f"cell_{target}_a{alignment:.2f}_{activation}_K{args.hidden}_s{seed}.json"
                    if not out.exists():
                        yield activation, target, alignment, seed, out


def run_cell(activation, target, alignment, seed, hidden, steps, lr, out: Path) -> dict:
    train, test, model = task_and_net(activation, target, alignment, seed, hidden)
    cpu0 = time.process_time()
    before = hidden_geometry(model, test["input_features"], test)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = model(input_features=train["input_features"], labels=train["labels"]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model(input_features=test["input_features"]).logits
    after = hidden_geometry(model, test["input_features"], test)
    result = {"activation": activation, "target": target, "alignment": alignment, "seed": seed, "hidden_dim": hidden,
              "steps": steps, "lr": lr, "train_loss": loss.item(),
              "test_accuracy": ((logits > 0) == (test["labels"] > 0.5)).double().mean().item(),
              "init": before, "trained": after, "cpu_s": time.process_time() - cpu0}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
    out.with_suffix(".tmp").replace(out)
    return result


def summarise() -> dict:
    cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("cell_*.json"))]
    groups = defaultdict(list)
    for c in cells:
        groups[(c["target"], c["activation"], c["alignment"])].append(c)
    rows = []
    for (target, activation, alignment), runs in sorted(groups.items()):
        row = {"target": target, "activation": activation, "alignment": alignment, "seeds": len(runs),
               "test_accuracy": statistics.mean(r["test_accuracy"] for r in runs)}
        for key in ("kta", "cka_target", "cka_input", "parallelism", "ccgp", "active_share_mean"):
            row[key] = statistics.mean(r["trained"][key] for r in runs)
            row[f"{key}_init"] = statistics.mean(r["init"][key] for r in runs)
        rows.append(row)
    summary = {"rows": rows, "cells": len(cells), "cpu_s_total": sum(c["cpu_s"] for c in cells)}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1))
    if rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        FIGURES.mkdir(parents=True, exist_ok=True)
        keys = ("kta", "cka_input", "parallelism", "ccgp")
        fig, axes = plt.subplots(2, len(keys), figsize=(3.2 * len(keys), 5.5), sharex=True)
        for i, target in enumerate(("low", "high")):
            for j, key in enumerate(keys):
                ax = axes[i, j]
                for activation, color in (("tanh", "C0"), ("relu", "C3")):
                    pts = [(r["alignment"], r[key], r[f"{key}_init"]) for r in rows if r["target"] == target and r["activation"] == activation]
                    if pts:
                        a, v, v0 = zip(*pts)
                        ax.plot(a, v, "o-", color=color, label=f"{activation} trained")
                        ax.plot(a, v0, ":", color=color, label=f"{activation} init")
                ax.set_title(f"{key} ({target}-dim target)", fontsize=9)
                if i == 1:
                    ax.set_xlabel("input-target alignment")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(FIGURES / "geometry.png", dpi=110)
        plt.close(fig)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_grid_arguments(parser, [0.0, 0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.summary:
        print(json.dumps(summarise(), indent=1)[:4000])
        return 0
    for activation, target, alignment, seed, out in grid(args, RESULTS):
        r = run_cell(activation, target, alignment, seed, args.hidden, args.steps, args.lr, out)
        print(f"{out.name}: acc {r['test_accuracy']:.3f} kta {r['init']['kta']:.3f}->{r['trained']['kta']:.3f} "
              f"cka_in {r['trained']['cka_input']:.3f} ps {r['trained']['parallelism']:.3f} "
              f"ccgp {r['trained']['ccgp']:.3f} ({r['cpu_s']:.1f} CPU-s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
