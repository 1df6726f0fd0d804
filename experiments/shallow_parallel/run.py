"""Deep (sequential) vs shallow-parallel residual CNNs (Bermeitinger et al., "Make Deep Networks Shallow Again").

The zoo's `residual_cnn` in its two layouts — z ← z + F_i(z) for i = 1..depth against
z ← z + Σ_i F_i(z) — over a grid of depth × filters × kernel size, each trained briefly on a
Fashion-MNIST subset (average-pooled 2× to 14×14, the stem stride 2: a 7×7 residual stream, so the
grid fits a CPU budget). Per cell: the final training loss (eval mode, over the training subset)
and the validation loss and accuracy (test split subset).

The truncation argument measured directly: Π(I + F_i) = I + Σ F_i + (higher-order terms). For each
sequential cell, the same weights are run in the parallel layout (the first-order expansion) and
    distance = ‖z_seq − z_par‖ / ‖z_seq − z_0‖
over the validation images (z_0 the stem's output, z the stream at the end of the stage), at
initialisation and after training, with the truncated net's validation accuracy.

One JSON per finished cell under experiments/results/shallow_parallel/ (skipped when present,
so the grid resumes); `--summarize` aggregates into summary.json and plots.

    python experiments/shallow_parallel/run.py                 # the 48-configuration grid
    python experiments/shallow_parallel/run.py --summarize
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "experiments" / "results" / "shallow_parallel"
FIGURES = ROOT / "docs" / "figures" / "shallow_parallel"
LAYOUTS = ("sequential", "parallel")


def load_data(train_size: int, test_size: int):
    from zoo import data as zoo_data

    splits = zoo_data.load("fashion_mnist", limit_train=train_size, limit_test=test_size)
    out = []
    for split in ("train", "test"):
        table = splits[split].with_format("torch", columns=["pixel_values", "labels"])[:]
        out.append((F.avg_pool2d(table["pixel_values"].float(), 2), table["labels"].long()))
    return out


def build(depth: int, filters: int, kernel: int, layout: str, seed: int):
    import zoo

    torch.manual_seed(seed)
    return zoo.create_model("residual_cnn", image_size=14, num_channels=1, filters=filters, depth=depth,
                            kernel_size=kernel, stem_stride=2, layout=layout, num_labels=10)


@torch.no_grad()
def evaluate(model, x, y, batch: int = 1000) -> tuple[float, float]:
    model.eval()
    logits = torch.cat([model(pixel_values=x[i:i + batch]).logits for i in range(0, len(x), batch)])
    loss = float(F.cross_entropy(logits, y))
    return (loss if math.isfinite(loss) else None), float((logits.argmax(1) == y).float().mean())


@torch.no_grad()
def truncation(model, x, batch: int = 1000) -> dict:
    """‖z_seq − z_par‖ / ‖z_seq − z_0‖ of a (sequential) model's residual stage, same weights."""
    backbone = model.backbone
    num, den = 0.0, 0.0
    for i in range(0, len(x), batch):
        z0 = backbone.stem_act(backbone.stem(x[i:i + batch]))
        z_seq = z0
        for branch in backbone.branches:
            z_seq = z_seq + branch(z_seq)
        z_par = z0 + backbone.parallel_branches(z0)
        num += float(((z_seq - z_par) ** 2).sum())
        den += float(((z_seq - z0) ** 2).sum())
    return {"distance": (num / den) ** 0.5 if den > 0 else 0.0}


def train_cell(depth, filters, kernel, layout, seed, args, data) -> dict:
    (x_train, y_train), (x_test, y_test) = data
    model = build(depth, filters, kernel, layout, seed)
    result = {"depth": depth, "filters": filters, "kernel_size": kernel, "layout": layout, "seed": seed,
              "parameters": sum(p.numel() for p in model.parameters()), "epochs": args.epochs,
              "train_size": len(x_train), "test_size": len(x_test), "lr": args.lr, "batch_size": args.batch_size}
    if layout == "sequential":
        result["truncation_init"] = truncation(model, x_test)["distance"]
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(seed)
    start = time.process_time()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            index = order[i:i + args.batch_size]
            loss = model(pixel_values=x_train[index], labels=y_train[index]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    result["train_cpu_s"] = round(time.process_time() - start, 2)
    result["train_loss"], result["train_accuracy"] = evaluate(model, x_train, y_train)
    result["val_loss"], result["val_accuracy"] = evaluate(model, x_test, y_test)
    if layout == "sequential":
        result["truncation_trained"] = truncation(model, x_test)["distance"]
        model.config.layout = "parallel"  # the same weights, first-order expansion
        result["truncated_val_loss"], result["truncated_val_accuracy"] = evaluate(model, x_test, y_test)
        model.config.layout = "sequential"
    return result


def cell_path(depth, filters, kernel, layout, seed, args) -> Path:
    return RESULTS / f"{layout}_d{depth}_f{filters}_k{kernel}_e{args.epochs}_n{args.train_size}_seed{seed}.json"


def sweep(args) -> None:
    from tqdm import tqdm

    cells = list(itertools.product(args.depths, args.filters, args.kernels, LAYOUTS, range(args.seeds)))
    # cheap cells first: a budget cut leaves the expensive end for the next session
    cells.sort(key=lambda c: c[0] * c[1] ** 2 * c[2] ** 2)
    todo = [c for c in cells if not cell_path(*c, args).exists()]
    print(f"{len(cells) - len(todo)} of {len(cells)} cells done; running {len(todo)}")
    if not todo:
        return
    data = load_data(args.train_size, args.test_size)
    RESULTS.mkdir(parents=True, exist_ok=True)
    budget_end = time.process_time() + args.cpu_budget_s if args.cpu_budget_s else None
    for cell in tqdm(todo):
        if budget_end is not None and time.process_time() > budget_end:
            print(f"CPU budget of {args.cpu_budget_s} s spent; rerun to continue")
            break
        result = train_cell(*cell, args, data)
        path = cell_path(*cell, args)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)


def summarize() -> dict:
    cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*_seed*.json"))]
    by_key = {}
    for c in cells:
        by_key.setdefault((c["depth"], c["filters"], c["kernel_size"], c["seed"], c["epochs"], c["train_size"]), {})[c["layout"]] = c
    pairs = []
    for key, both in sorted(by_key.items()):
        if set(both) != set(LAYOUTS):
            continue
        s, p = both["sequential"], both["parallel"]
        pairs.append({
            "depth": key[0], "filters": key[1], "kernel_size": key[2], "seed": key[3],
            "train_loss_sequential": s["train_loss"], "train_loss_parallel": p["train_loss"],
            "val_loss_sequential": s["val_loss"], "val_loss_parallel": p["val_loss"],
            "val_accuracy_sequential": s["val_accuracy"], "val_accuracy_parallel": p["val_accuracy"],
            "val_loss_ratio": p["val_loss"] / s["val_loss"], "train_loss_ratio": p["train_loss"] / s["train_loss"],
            "truncation_init": s["truncation_init"], "truncation_trained": s["truncation_trained"],
            "truncated_val_accuracy": s["truncated_val_accuracy"],
        })

    def median(values):
        v = sorted(values)
        return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2 if v else None

    by_depth = {}
    for row in pairs:
        by_depth.setdefault(row["depth"], []).append(row)
    summary = {
        "configurations": len(cells), "pairs": len(pairs),
        "median_val_loss_ratio": median([r["val_loss_ratio"] for r in pairs]),
        "median_train_loss_ratio": median([r["train_loss_ratio"] for r in pairs]),
        "share_val_ratio_within_10pct": sum(abs(r["val_loss_ratio"] - 1) <= 0.1 for r in pairs) / max(1, len(pairs)),
        "share_parallel_val_better": sum(r["val_loss_ratio"] < 1 for r in pairs) / max(1, len(pairs)),
        "train_cpu_s": round(sum(c["train_cpu_s"] for c in cells), 1),
        "by_depth": {str(d): {
            "pairs": len(rows),
            "median_val_loss_ratio": median([r["val_loss_ratio"] for r in rows]),
            "median_truncation_init": median([r["truncation_init"] for r in rows]),
            "median_truncation_trained": median([r["truncation_trained"] for r in rows]),
            "median_val_accuracy_sequential": median([r["val_accuracy_sequential"] for r in rows]),
            "median_val_accuracy_parallel": median([r["val_accuracy_parallel"] for r in rows]),
            "median_truncated_val_accuracy": median([r["truncated_val_accuracy"] for r in rows]),
        } for d, rows in sorted(by_depth.items())},
        "pairs_table": pairs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(pairs, summary)
    return summary


def plot(pairs, summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, split in zip(axes[:2], ("train", "val")):
        s = [r[f"{split}_loss_sequential"] for r in pairs]
        p = [r[f"{split}_loss_parallel"] for r in pairs]
        sc = ax.scatter(s, p, c=[r["depth"] for r in pairs], cmap="viridis", s=18)
        lo, hi = min(s + p), max(s + p)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.set_xlabel(f"sequential {split} loss")
        ax.set_ylabel(f"parallel {split} loss")
        fig.colorbar(sc, ax=ax, label="depth")
    axes[2].hist([r["val_loss_ratio"] for r in pairs], bins=16)
    axes[2].set_xlabel("val loss ratio parallel / sequential")
    fig.tight_layout()
    fig.savefig(FIGURES / "paired_losses.png", dpi=110)
    plt.close(fig)

    depths = [int(d) for d in summary["by_depth"]]
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for key, label in (("median_truncation_init", "at init"), ("median_truncation_trained", "trained")):
        ax.plot(depths, [summary["by_depth"][str(d)][key] for d in depths], marker="o", label=label)
    ax.set_xlabel("depth (residual branches)")
    ax.set_ylabel("‖z_seq − z_par‖ / ‖z_seq − z_0‖")
    ax.legend()
    fig.tight_layout()
    fig.savefig(FIGURES / "truncation.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4, 6, 8, 12])
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--kernels", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--cpu-budget-s", type=float, default=None, help="stop starting new cells after this much CPU time")
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args(argv)
    if args.summarize:
        s = summarize()
        print(json.dumps({k: v for k, v in s.items() if k != "pairs_table"}, indent=1))
    else:
        sweep(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
