#!/usr/bin/env python
"""C1 finding: G2GNet (static, DST, DST + Hebbian) against the dense MLP and a random-sparse MLP
of the same widths and density, on Fashion-MNIST, at several sparsities and seeds.

    OMP_NUM_THREADS=1 python experiments/g2gnet/run.py                      # the sized-down sweep
    OMP_NUM_THREADS=1 python experiments/g2gnet/run.py --limit-train 60000 --limit-test 10000 \\
        --epochs 10 --hidden 512,256 --seeds 0,1,2,3,4                       # the full-size sweep
    python experiments/g2gnet/run.py --summary                              # aggregate + figure

Every cell trains through the zoo's own trainers (zoo.training.train: sgd, dst, static-sparse)
and writes one JSON under experiments/results/g2gnet/<tag>/; cells already there are skipped,
so an interrupted or extended sweep resumes. --summary writes summary.json (mean ± spread over
seeds per method and sparsity) and docs/figures/g2gnet/accuracy.png.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "g2gnet"
METHODS = ("dense", "random-sparse", "g2g-static", "g2g-dst", "g2g-hebbian")


def actual_sparsity(sparsity: float, ensembles: int) -> float:
    k = max(1, min(ensembles, round((1 - sparsity) * ensembles)))
    return 1 - k / ensembles


def recipe_for(method: str, sparsity: float, seed: int, args) -> dict:
    hidden = [int(h) for h in args.hidden.split(",")]
    training = {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": "adamw", "lr": 1e-3,
                "weight_decay": 1e-4, "scheduler": "cosine", "seed": seed, "checkpoint_every": 0}
    if method in ("dense", "random-sparse"):
        config = {"hidden_sizes": hidden, "num_labels": 10}
        architecture = "mlp"
        if method == "random-sparse":  # the same density as G2GNet's hidden layers
            training |= {"trainer": "static-sparse",
                         "trainer_options": {"sparsity": actual_sparsity(sparsity, args.ensembles), "seed": seed}}
    else:
        architecture = "g2gnet"
        config = {"hidden_sizes": hidden, "num_ensembles": args.ensembles, "input_ensembles": args.ensembles,
                  "sparsity": sparsity, "layout": "modular", "num_labels": 10}
        if method != "g2g-static":
            training |= {"trainer": "dst", "trainer_options": {
                "update_every": args.update_every, "prune_fraction": 0.3,
                "regrow": "hebbian" if method == "g2g-hebbian" else "random", "seed": seed}}
    return {"id": f"c1-{method}", "architecture": architecture, "config": config,
            "data": {"name": "fashion_mnist", "limit_train": args.limit_train, "limit_test": args.limit_test},
            "training": training}


def tag(args) -> str:
    return f"n{args.limit_train}-e{args.epochs}-h{args.hidden.replace(',', 'x')}-E{args.ensembles}"


def run_sweep(args) -> None:
    import yaml
    from tqdm.auto import tqdm

    from zoo.data import register_dataset
    from zoo.data.images import fashion_mnist
    from zoo.training import train

    # One read of Fashion-MNIST for the whole sweep (the loader re-reads the files on every call).
    register_dataset("fashion_mnist")(functools.lru_cache(maxsize=2)(fashion_mnist))
    out_dir = RESULTS / tag(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = [(m, s, seed) for seed in args.seed_list for s in args.sparsity_list for m in METHODS
             if not (m == "dense" and s != args.sparsity_list[0])]  # dense: once per seed
    for method, sparsity, seed in tqdm(cells, desc="C1 cells"):
        name = f"{method}-s{0.0 if method == 'dense' else sparsity}-seed{seed}.json"
        if (out_dir / name).exists():
            continue
        recipe = recipe_for(method, sparsity, seed, args)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "recipe.yaml"
            path.write_text(yaml.safe_dump(recipe))
            metrics = train(path, output_dir=Path(tmp) / "out").metrics
        cell = {"method": method, "sparsity": 0.0 if method == "dense" else sparsity,
                "actual_sparsity": 0.0 if method == "dense" else actual_sparsity(sparsity, args.ensembles),
                "seed": seed, "recipe": recipe, "eval_accuracy": metrics["final"]["eval_accuracy"],
                "eval_loss": metrics["final"]["eval_loss"], "train_time_s": metrics["train_time_s"],
                "dst": metrics.get("dst"), "static_sparsity": metrics.get("sparsity")}
        (out_dir / name).write_text(json.dumps(cell, indent=2))


def summarise(args) -> None:
    out_dir = RESULTS / tag(args)
    cells = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*-seed*.json"))]
    groups: dict[tuple, list] = {}
    for c in cells:
        groups.setdefault((c["method"], c["sparsity"]), []).append(c)
    rows = []
    for (method, sparsity), group in sorted(groups.items(), key=lambda kv: (kv[0][1], METHODS.index(kv[0][0]))):
        acc = [c["eval_accuracy"] for c in group]
        rows.append({"method": method, "sparsity": sparsity, "actual_sparsity": group[0]["actual_sparsity"],
                     "seeds": len(acc), "mean": statistics.mean(acc), "min": min(acc), "max": max(acc),
                     "std": statistics.stdev(acc) if len(acc) > 1 else 0.0})
    dense = next((r["mean"] for r in rows if r["method"] == "dense"), None)
    for r in rows:
        r["vs_dense"] = None if dense is None else r["mean"] - dense
    summary = {"tag": tag(args), "rows": rows, "dense_mean": dense,
               "cells": len(cells), "settings": {k: v for k, v in vars(args).items() if k not in ("summary",)}}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for method in METHODS[1:]:
            pts = [r for r in rows if r["method"] == method]
            ax.errorbar([r["actual_sparsity"] for r in pts], [r["mean"] for r in pts],
                        yerr=[[r["mean"] - r["min"] for r in pts], [r["max"] - r["mean"] for r in pts]],
                        marker="o", capsize=3, label=method)
        if dense is not None:
            ax.axhline(dense, color="k", ls="--", label="dense")
        ax.set_xlabel("sparsity of the hidden layers")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"Fashion-MNIST ({tag(args)})")
        ax.legend()
        fig_dir = ROOT / "docs" / "figures" / "g2gnet"
        fig_dir.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(fig_dir / "accuracy.png", dpi=100)
    except ImportError:
        pass
    print(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit-train", type=int, default=10000)
    parser.add_argument("--limit-test", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", default="256,128")
    parser.add_argument("--ensembles", type=int, default=16)
    parser.add_argument("--update-every", type=int, default=20)
    parser.add_argument("--sparsities", default="0.5,0.75,0.9")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--summary", action="store_true", help="aggregate the finished cells; train nothing")
    args = parser.parse_args()
    args.sparsity_list = [float(s) for s in args.sparsities.split(",")]
    args.seed_list = [int(s) for s in args.seeds.split(",")]
    summarise(args) if args.summary else run_sweep(args)


if __name__ == "__main__":
    main()
