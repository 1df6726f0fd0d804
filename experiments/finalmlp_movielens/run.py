"""MLP vs DualMLP vs FinalMLP on movielens_100k (click = rating >= 4): test AUC and log loss.

One JSON per finished (model, seed) cell under experiments/results/finalmlp_movielens/; cells
already there are skipped, so the sweep extends across sessions. Each cell trains with Adam for
--epochs epochs and reports the test metrics at the epoch of best validation AUC (the paper's
protocol: early stopping on validation AUC). `--aggregate` writes summary.json (mean ± std per
model) and a figure under docs/figures/finalmlp_movielens/.

    python experiments/finalmlp_movielens/run.py --seeds 0 1 2 3 4 --epochs 6
    python experiments/finalmlp_movielens/run.py --aggregate
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import log_loss, roc_auc_score
from tqdm import tqdm

import zoo
from zoo import data

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "finalmlp_movielens"
FIGURES = ROOT / "docs" / "figures" / "finalmlp_movielens"
MODELS = ("mlp", "dualmlp", "finalmlp")
# Scaled down from the paper's MovieLens setting (streams 400-400-400 / 800, gates 800, 10 heads)
# to fit a shared 2-core CPU; --width scales every hidden width.
BASE = dict(field_vocab_sizes=[943, 1682, 7, 2, 21, 11, 19], embedding_dim=10, dropout=0.2, batch_norm=True,
            fs1_context=[], fs2_context=[], num_heads=4, num_labels=2)


def model_config(mode: str, width: int) -> dict:
    return {**BASE, "mode": mode, "mlp1_hidden_units": [width] * 3, "mlp2_hidden_units": [2 * width],
            "fs_hidden_units": [width]}


def predict(model, ids: torch.Tensor, batch: int = 8192) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        z = torch.cat([model(ids[i:i + batch]).logits[:, 1] for i in range(0, len(ids), batch)])
    model.train()
    return torch.sigmoid(z).double().numpy()


def metrics(model, split) -> dict:
    p = predict(model, split["input_ids"])
    y = split["labels"].numpy()
    return {"auc": float(roc_auc_score(y, p)), "logloss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))}


def run_cell(mode: str, seed: int, args, splits) -> dict:
    torch.manual_seed(seed)
    config = model_config(mode, args.width)
    model = zoo.create_model("finalmlp", **config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    train = splits["train"]
    n = len(train["labels"])
    generator = torch.Generator().manual_seed(seed)
    history, train_seconds = [], 0.0
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(n, generator=generator)
        start = time.perf_counter()
        for i in range(0, n, args.batch_size):
            idx = order[i:i + args.batch_size]
            loss = model(train["input_ids"][idx], labels=train["labels"][idx]).loss
            optimizer.zero_grad()
            loss.backward()
            if args.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
        train_seconds += time.perf_counter() - start
        history.append({"epoch": epoch, "validation": metrics(model, splits["validation"]), "test": metrics(model, splits["test"])})
    best = max(history, key=lambda h: h["validation"]["auc"])
    return {"model": mode, "seed": seed, "config": config, "epochs": args.epochs, "batch_size": args.batch_size,
            "lr": args.lr, "max_grad_norm": args.max_grad_norm, "parameters": sum(p.numel() for p in model.parameters()),
            "train_examples_per_second": n * args.epochs / train_seconds, "best_epoch": best["epoch"],
            "test_auc": best["test"]["auc"], "test_logloss": best["test"]["logloss"],
            "validation_auc": best["validation"]["auc"], "history": history}


def aggregate() -> dict:
    """summary.json: the cells trained without clipping at its top level, and those trained with
    the gradient norm clipped at G under "clip<G>" (same keys)."""
    cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*_seed*.json"))]
    summary = summarise([c for c in cells if c.get("max_grad_norm") is None])
    for clip in sorted({c["max_grad_norm"] for c in cells if c.get("max_grad_norm") is not None}):
        summary[f"clip{clip:g}"] = {"max_grad_norm": clip,
                                     **summarise([c for c in cells if c.get("max_grad_norm") == clip])}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(cells, summary)
    return summary


def summarise(cells: list[dict]) -> dict:
    summary = {}
    for mode in MODELS:
        mine = [c for c in cells if c["model"] == mode]
        if not mine:
            continue
        auc, ll = np.array([c["test_auc"] for c in mine]), np.array([c["test_logloss"] for c in mine])
        summary[mode] = {"seeds": sorted(c["seed"] for c in mine), "n_seeds": len(mine),
                         "test_auc_mean": float(auc.mean()), "test_auc_std": float(auc.std(ddof=1)) if len(mine) > 1 else 0.0,
                         "test_logloss_mean": float(ll.mean()), "test_logloss_std": float(ll.std(ddof=1)) if len(mine) > 1 else 0.0,
                         "parameters": mine[0]["parameters"],
                         "best_epochs": [c["best_epoch"] for c in sorted(mine, key=lambda c: c["seed"])],
                         "epochs": mine[0]["epochs"],
                         "train_examples_per_second_mean": float(np.mean([c["train_examples_per_second"] for c in mine]))}
    if "finalmlp" in summary:
        for base in ("mlp", "dualmlp"):
            if base in summary:
                summary[f"finalmlp_minus_{base}_auc"] = summary["finalmlp"]["test_auc_mean"] - summary[base]["test_auc_mean"]
    return summary


def plot(cells: list[dict], summary: dict) -> None:
    """Test AUC per model, each seed and the mean ± std; clipped runs beside the unclipped."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3))
    modes = [m for m in MODELS if m in summary]
    groups = [(None, summary, "no clipping", "o")] + [
        (value["max_grad_norm"], value, f"gradient norm clipped at {value['max_grad_norm']:g}", "s")
        for key, value in summary.items() if key.startswith("clip")]
    for g, (clip, part, label, marker) in enumerate(groups):
        for i, mode in enumerate(modes):
            if mode not in part:
                continue
            x = i + 0.35 * g
            values = [c["test_auc"] for c in cells if c["model"] == mode and c.get("max_grad_norm") == clip]
            ax.scatter([x] * len(values), values, alpha=0.5, marker=marker, color=f"C{g}", label=label if i == 0 else None)
            ax.errorbar(x + 0.1, part[mode]["test_auc_mean"], yerr=part[mode]["test_auc_std"], fmt=marker, color="k")
    ax.set_xticks([i + 0.175 * (len(groups) - 1) for i in range(len(modes))], modes)
    ax.set_ylabel("test AUC (movielens_100k)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "auc.png", dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=128, help="stream 1 width (3 layers); stream 2 and gates: 2× / 1×")
    parser.add_argument("--max-grad-norm", type=float, default=None,
                        help="clip the gradient norm (FuxiCTR, the paper's library, clips at 10); its cells are kept apart")
    parser.add_argument("--aggregate", action="store_true", help="only write summary.json and the figure")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.aggregate:
        splits = {s: d[:] for s, d in data.load("movielens_100k").items()}
        cells = [(m, s) for s in args.seeds for m in args.models]
        for mode, seed in tqdm(cells, desc="cells"):
            clip = "" if args.max_grad_norm is None else f"_clip{args.max_grad_norm:g}"
            path = RESULTS / f"{mode}_w{args.width}{clip}_seed{seed}.json"
            if path.exists():
                continue
            result = run_cell(mode, seed, args, splits)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            os.replace(tmp, path)
            tqdm.write(f"{mode} seed {seed}: test AUC {result['test_auc']:.4f} logloss {result['test_logloss']:.4f} "
                       f"(epoch {result['best_epoch']}, {result['train_examples_per_second']:.0f} ex/s)")
    print(json.dumps(aggregate(), indent=2))
    print(f"cells: {RESULTS}; figure: {FIGURES / 'auc.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
