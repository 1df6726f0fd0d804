"""Hourglass vs conventional residual MLPs on Fashion-MNIST denoising: the performance-parameter frontier.

Chen et al. 2025 ("Rethinking the shape convention of an MLP"): wide-narrow-wide (Hourglass)
blocks on a wide stream lifted by a fixed random projection reach a better Pareto frontier than
narrow-wide-narrow blocks, and the best Hourglass nets get deeper, with wider streams and
narrower bottlenecks, as the budget grows. Here: the zoo's `hourglass_mlp` in both block shapes
on `fashion_mnist_denoising` (σ = 0.5), a grid of stream width × hidden width × depth per
family, each trained briefly; plus the Hourglass grid with a learned lift (does the fixed lift
match a trained one?). Parameters are the trained ones (the fixed lift is a buffer; the learned
lift counts). Metric: test MSE per pixel.

One JSON per finished cell under experiments/results/hourglass_pareto/ (skipped when present);
`--summarize` writes summary.json (frontiers, best per budget) and the frontier plot.

    python experiments/hourglass_pareto/run.py
    python experiments/hourglass_pareto/run.py --summarize
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "experiments" / "results" / "hourglass_pareto"
FIGURES = ROOT / "docs" / "figures" / "hourglass_pareto"
BUDGETS = (1e5, 2e5, 4e5, 8e5, 1.6e6)  # upper bounds of the parameter budgets


def grid(args) -> list[tuple]:
    cells = [("hourglass", s, h, d, "fixed") for s, h, d in itertools.product(args.hg_streams, args.hg_hidden, args.depths)]
    cells += [("conventional", s, h, d, "learned") for s, h, d in itertools.product(args.cv_streams, args.cv_hidden, args.depths)]
    if args.learned_lift:
        cells += [("hourglass", s, h, d, "learned") for s, h, d in itertools.product(args.hg_streams, args.hg_hidden, args.depths)]
    # the config refuses a bottleneck as wide as the stream (and a conventional hidden layer as narrow)
    return [c for c in cells if (c[2] < c[1]) == (c[0] == "hourglass")]


def load_data(args):
    from zoo import data as zoo_data

    splits = zoo_data.load("fashion_mnist_denoising", noise_std=args.noise_std, limit_train=args.train_size,
                           limit_test=args.test_size)
    out = []
    for split in ("train", "test"):
        table = splits[split].with_format("torch", columns=["pixel_values", "labels"])[:]
        out.append((table["pixel_values"].float(), table["labels"].float()))
    return out


def train_cell(shape, stream, hidden, depth, lift, args, data) -> dict:
    import zoo

    (x_train, y_train), (x_test, y_test) = data
    torch.manual_seed(args.seed)
    model = zoo.create_model("hourglass_mlp", block_shape=shape, stream_size=stream, hidden_size=hidden, depth=depth,
                             lift=lift, num_labels=784, problem_type="regression")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
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
    model.eval()
    with torch.no_grad():
        mse = float(sum(((model(pixel_values=x_test[i:i + 1000]).logits - y_test[i:i + 1000]) ** 2).sum()
                        for i in range(0, len(x_test), 1000)) / y_test.numel())
    return {"block_shape": shape, "stream_size": stream, "hidden_size": hidden, "depth": depth, "lift": lift,
            "parameters": sum(p.numel() for p in model.parameters()), "test_mse": mse,
            "noisy_input_mse": float(((x_test.flatten(1) - y_test) ** 2).mean()),
            "epochs": args.epochs, "train_size": len(x_train), "test_size": len(x_test), "lr": args.lr,
            "seed": args.seed, "train_cpu_s": round(time.process_time() - start, 2)}


def cell_path(cell, args) -> Path:
    shape, stream, hidden, depth, lift = cell
    return RESULTS / f"{shape}_{lift}_s{stream}_h{hidden}_d{depth}_e{args.epochs}_n{args.train_size}_seed{args.seed}.json"


def sweep(args) -> None:
    from tqdm import tqdm

    cells = sorted(grid(args), key=lambda c: c[1] * c[2] * c[3] + c[1] * 784 * 2)  # cheap first
    todo = [c for c in cells if not cell_path(c, args).exists()]
    print(f"{len(cells) - len(todo)} of {len(cells)} cells done; running {len(todo)}")
    if not todo:
        return
    data = load_data(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    budget_end = time.process_time() + args.cpu_budget_s if args.cpu_budget_s else None
    for cell in tqdm(todo):
        if budget_end is not None and time.process_time() > budget_end:
            print(f"CPU budget of {args.cpu_budget_s} s spent; rerun to continue")
            break
        result = train_cell(*cell, args, data)
        path = cell_path(cell, args)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)


def frontier(rows: list[dict]) -> list[dict]:
    """The cells no other cell beats with fewer (or as many) parameters: sorted by parameters."""
    out, best = [], float("inf")
    for row in sorted(rows, key=lambda r: (r["parameters"], r["test_mse"])):
        if row["test_mse"] < best:
            out.append(row)
            best = row["test_mse"]
    return out


def summarize() -> dict:
    cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*_seed*.json"))]
    families = {"hourglass": [c for c in cells if c["block_shape"] == "hourglass" and c["lift"] == "fixed"],
                "conventional": [c for c in cells if c["block_shape"] == "conventional"],
                "hourglass_learned_lift": [c for c in cells if c["block_shape"] == "hourglass" and c["lift"] == "learned"]}
    summary = {"cells": len(cells), "budgets": list(BUDGETS), "frontiers": {}, "best_per_budget": {},
               "train_cpu_s": round(sum(c["train_cpu_s"] for c in cells), 1)}
    for name, rows in families.items():
        summary["frontiers"][name] = frontier(rows)
        summary["best_per_budget"][name] = {
            f"{budget:g}": min((r for r in rows if r["parameters"] <= budget), key=lambda r: r["test_mse"], default=None)
            for budget in BUDGETS}
    pairs = []
    for fixed in families["hourglass"]:
        learned = [c for c in families["hourglass_learned_lift"]
                   if (c["stream_size"], c["hidden_size"], c["depth"]) == (fixed["stream_size"], fixed["hidden_size"], fixed["depth"])]
        if learned:
            pairs.append({"stream_size": fixed["stream_size"], "hidden_size": fixed["hidden_size"], "depth": fixed["depth"],
                          "fixed_mse": fixed["test_mse"], "learned_mse": learned[0]["test_mse"],
                          "learned_over_fixed": learned[0]["test_mse"] / fixed["test_mse"]})
    summary["lift_pairs"] = pairs
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(families, summary)
    return summary


def plot(families, summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (name, rows), color in zip(families.items(), ("C0", "C1", "C2")):
        if not rows:
            continue
        ax.scatter([r["parameters"] for r in rows], [r["test_mse"] for r in rows], s=12, alpha=0.5, color=color)
        front = summary["frontiers"][name]
        ax.plot([r["parameters"] for r in front], [r["test_mse"] for r in front], marker="o", color=color, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("trained parameters")
    ax.set_ylabel("test MSE per pixel (denoising, σ = 0.5)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURES / "frontiers.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hg-streams", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--hg-hidden", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--cv-streams", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--cv-hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--learned-lift", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--noise-std", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-budget-s", type=float, default=None, help="stop starting new cells after this much CPU time")
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args(argv)
    if args.summarize:
        s = summarize()
        print(json.dumps({k: v for k, v in s.items() if k != "frontiers"}, indent=1))
    else:
        sweep(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
