"""The learning-dynamics picture of Alleman, Lindsey & Fusi (2024): do ReLU hidden units
specialise to regions of the input (a few conditions each) while tanh units come to code the
targets?

Same nets, data and training as run.py (the zoo's two_layer_mlp, 100 units with bias, N(0, 0.1²)
init, full-batch Adam lr 1e-2, binary cross-entropy, the `geometry_task` conditions), with the
hidden layer measured on the test split at log-spaced steps. Per unit, its *condition profile*
r_kc (mean activation over the test examples of each of the 8 conditions) gives:

- `active_conditions`: the number of conditions on which the unit is active (h > 0) for more
  than half of the examples (ReLU only; 0 = a dead unit);
- `sparseness`: the Treves–Rolls selectivity 1 − (mean_c r)² / mean_c r², rescaled to [0, 1]
  (0: the same response to every condition, 1: responds to one condition only), on r = h for
  ReLU and on the rate r = (1 + h)/2 for tanh;
- `latent_r2` (low-dimensional targets): the share of the profile's variance across conditions
  that is linear in the three latent variables (= the targets): 1 for a unit that codes a
  mixture of the targets, lower for one tuned to a corner of the cube.

"Feature neurons" are the quarter of the units with the largest readout norm ‖W₂[:, k]‖ (the
units the output actually uses). One JSON per run under
experiments/results/geometry_tanh_relu/dynamics/, aggregated into
experiments/results/geometry_tanh_relu/dynamics_summary.json and
docs/figures/geometry_tanh_relu/dynamics.png:

    python experiments/geometry_tanh_relu/dynamics.py --seeds 0 1 2
    python experiments/geometry_tanh_relu/dynamics.py --summary
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
SNAPSHOTS = (0, 5, 10, 20, 50, 100, 200, 500, 1000)
KEYS = ("active_conditions", "sparseness", "latent_r2")

try:  # imported as a package module (tests) or run as a script from its folder
    from experiments.geometry_tanh_relu.run import add_grid_arguments, grid, task_and_net
except ImportError:
    from run import add_grid_arguments, grid, task_and_net


def condition_profiles(h: np.ndarray, condition: np.ndarray, n_conditions: int) -> np.ndarray:
    """(units, conditions) mean activation of each unit over the examples of each condition."""
    return np.stack([h[condition == c].mean(0) for c in range(n_conditions)], axis=1)


def sparseness(profiles: np.ndarray) -> np.ndarray:
    """Per unit, Treves–Rolls selectivity of a non-negative profile, rescaled to [0, 1]; a unit
    silent on every condition gets 0 (it has no preference)."""
    c = profiles.shape[1]
    mean, mean_sq = profiles.mean(1), (profiles**2).mean(1)
    raw = np.where(mean_sq > 0, 1 - mean**2 / np.where(mean_sq > 0, mean_sq, 1), 0.0)
    return raw / (1 - 1 / c)


def active_conditions(h: np.ndarray, condition: np.ndarray, n_conditions: int) -> np.ndarray:
    """Per unit, the number of conditions on which it is active (h > 0) for over half the examples."""
    return (condition_profiles((h > 0).astype(float), condition, n_conditions) > 0.5).sum(1)


def latent_r2(profiles: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """Per unit, R² of the least-squares fit of its profile (over conditions) by 1 + the latents
    (`latents`: conditions × variables); a unit with a flat profile gets 1 (nothing unexplained)."""
    design = np.column_stack([np.ones(len(latents)), latents])
    coef, *_ = np.linalg.lstsq(design, profiles.T, rcond=None)
    resid = profiles.T - design @ coef
    total = ((profiles.T - profiles.T.mean(0)) ** 2).sum(0)
    return np.where(total > 1e-24, 1 - (resid**2).sum(0) / np.where(total > 1e-24, total, 1), 1.0)


def measure(model, x: torch.Tensor, condition: np.ndarray, cond_latents: np.ndarray, activation: str) -> dict:
    with torch.no_grad():
        h = model.hidden(input_features=x).last_hidden_state.double().numpy()
    readout = model.output.weight.detach().double().norm(dim=0).numpy()
    feature = readout >= np.quantile(readout, 0.75)
    n_cond = len(cond_latents)
    profiles = condition_profiles(h, condition, n_cond)
    rates = profiles if activation == "relu" else (1 + profiles) / 2
    per_unit = {"sparseness": sparseness(rates), "latent_r2": latent_r2(profiles, cond_latents)}
    if activation == "relu":
        per_unit["active_conditions"] = active_conditions(h, condition, n_cond).astype(float)
    row = {}
    for key, values in per_unit.items():
        row[key] = float(values.mean())
        row[f"{key}_feature"] = float(values[feature].mean())
    if activation == "relu":
        row["active_conditions_hist"] = np.bincount(per_unit["active_conditions"].astype(int), minlength=n_cond + 1).tolist()
        row["dead_share"] = float((per_unit["active_conditions"] == 0).mean())
    return row


def run_cell(activation, target, alignment, seed, hidden, steps, lr, out: Path) -> dict:
    train, test, model = task_and_net(activation, target, alignment, seed, hidden)
    condition = test["condition"].numpy()
    n_cond = int(condition.max()) + 1
    cond_latents = np.stack([test["latents"].numpy()[condition == c][0] for c in range(n_cond)]).astype(float)
    cpu0 = time.process_time()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    curves = []
    for step in range(steps + 1):
        if step in SNAPSHOTS or step == steps:
            curves.append({"step": step, **measure(model, test["input_features"], condition, cond_latents, activation)})
        if step == steps:
            break
        loss = model(input_features=train["input_features"], labels=train["labels"]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    result = {"activation": activation, "target": target, "alignment": alignment, "seed": seed, "hidden_dim": hidden,
              "steps": steps, "lr": lr, "train_loss": loss.item(), "curves": curves,
              "cpu_s": time.process_time() - cpu0}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
    out.with_suffix(".tmp").replace(out)
    return result


def summarise() -> dict:
    cells = [json.loads(p.read_text()) for p in sorted((RESULTS / "dynamics").glob("cell_*.json"))]
    groups = defaultdict(list)
    for c in cells:
        groups[(c["target"], c["activation"], c["alignment"])].append(c)
    rows = []
    for (target, activation, alignment), runs in sorted(groups.items()):
        steps = [c["step"] for c in runs[0]["curves"]]
        row = {"target": target, "activation": activation, "alignment": alignment, "seeds": len(runs), "steps": steps}
        for key in runs[0]["curves"][0]:
            if key == "step" or key.endswith("_hist"):
                continue
            row[key] = [statistics.mean(r["curves"][i][key] for r in runs) for i in range(len(steps))]
        if activation == "relu":
            row["active_conditions_hist_init"] = np.sum([r["curves"][0]["active_conditions_hist"] for r in runs], 0).tolist()
            row["active_conditions_hist_final"] = np.sum([r["curves"][-1]["active_conditions_hist"] for r in runs], 0).tolist()
        rows.append(row)
    summary = {"rows": rows, "cells": len(cells), "cpu_s_total": sum(c["cpu_s"] for c in cells)}
    (RESULTS / "dynamics_summary.json").write_text(json.dumps(summary, indent=1))
    if rows:
        plot(rows)
    return summary


def plot(rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    panels = [("low", "active_conditions"), ("low", "sparseness"), ("low", "latent_r2"), ("high", "active_conditions"),
              ("high", "sparseness")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.3))
    styles = {0.0: ":", 0.5: "--", 1.0: "-"}
    for ax, (target, key) in zip(axes, panels):
        for r in rows:
            if r["target"] != target or key not in r or r["alignment"] not in styles:
                continue
            color = "C0" if r["activation"] == "tanh" else "C3"
            x = [max(s, 1) for s in r["steps"]]
            ax.plot(x, r[f"{key}_feature"], styles[r["alignment"]], color=color,
                    label=f"{r['activation']} α={r['alignment']:g}")
        ax.set_xscale("log")
        ax.set_xlabel("Adam step (0 plotted at 1)")
        ax.set_title(f"{key} of feature neurons\n({target}-dim target)", fontsize=9)
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(FIGURES / "dynamics.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_grid_arguments(parser, [0.0, 0.5, 1.0])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.summary:
        print(json.dumps(summarise(), indent=1)[:3000])
        return 0
    for activation, target, alignment, seed, out in grid(args, RESULTS / "dynamics"):
        r = run_cell(activation, target, alignment, seed, args.hidden, args.steps, args.lr, out)
        first, last = r["curves"][0], r["curves"][-1]
        print(f"{out.name}: sparseness(feature) {first['sparseness_feature']:.3f}->{last['sparseness_feature']:.3f} "
              f"({r['cpu_s']:.1f} CPU-s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
