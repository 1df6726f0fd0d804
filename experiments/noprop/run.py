"""D2: NoProp-DT against back-propagation through the same blocks on Fashion-MNIST.

One cell = (method, seed): the noprop-dt-fashion-mnist recipe trained by the noprop trainer
(each block alone) or by the default SGD loop (back-propagation through the whole chain, the
same model and optimiser), --epochs epochs on the first --train examples, the full test set.
One JSON per cell under experiments/results/noprop/ (finished cells are skipped), and
memory.json: the bytes autograd saves for backward in one training step of each method at the
recipe's size (batch 128): NoProp holds one block's graph at a time (its peak is the largest
block's), back-propagation holds the chain's.

    OMP_NUM_THREADS=1 python experiments/noprop/run.py --epochs 2 --train 10000 --seeds 0
    # full size: --epochs 5 --train 60000 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "noprop"
RECIPE = "noprop-dt-fashion-mnist"
METHODS = {"noprop": "training.trainer=noprop", "backprop": "training.trainer=sgd"}


def run_cell(method: str, seed: int, epochs: int, train: int) -> dict:
    from zoo.training import train as train_recipe

    overrides = [METHODS[method], f"training.seed={seed}", f"training.epochs={epochs}", f"data.limit_train={train}",
                 "training.checkpoint_every=never"]
    with tempfile.TemporaryDirectory() as out:
        metrics = train_recipe(RECIPE, overrides, output_dir=out).metrics
    return {"method": method, "seed": seed, "epochs": epochs, "train_examples": train, "overrides": overrides,
            "eval_accuracy": metrics["final"]["eval_accuracy"], "eval_loss": metrics["final"]["eval_loss"],
            "train_time_s": metrics["train_time_s"], "history": metrics["history"]}


def saved_bytes(fn) -> int:
    saved = {}

    def pack(t):
        saved[(t.data_ptr(), t.numel(), t.dtype)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(saved.values())


def memory(batch_size: int = 128) -> dict:
    """Activation memory (bytes saved for backward) of one training step of each method."""
    import zoo
    from zoo.recipes import load_recipe

    recipe = load_recipe(RECIPE)
    torch.manual_seed(0)
    model = zoo.create_model("noprop", **recipe.config).train()
    x, y = torch.rand(batch_size, 1, 28, 28), torch.arange(batch_size) % 10
    per_block = [saved_bytes(lambda i=i: model.local_loss(x, y, i)) for i in range(model.config.num_blocks + 1)]
    chain = saved_bytes(lambda: model(pixel_values=x, labels=y).loss)
    return {"batch_size": batch_size, "num_blocks": model.config.num_blocks, "hidden_size": model.config.hidden_size,
            "noprop_peak_saved_bytes": max(per_block), "noprop_per_module_saved_bytes": per_block,
            "backprop_saved_bytes": chain, "ratio_backprop_over_noprop": chain / max(per_block)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=10000)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(memory(), indent=2) + "\n")
    for seed in args.seeds:
        for method in args.methods:
            path = RESULTS / f"{method}-e{args.epochs}-n{args.train}-seed{seed}.json"
            if not path.exists():
                cell = run_cell(method, seed, args.epochs, args.train)
                path.write_text(json.dumps(cell, indent=2) + "\n")
                print(method, seed, cell["eval_accuracy"], round(cell["train_time_s"], 1))
    summary = {}
    for method in METHODS:
        cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{method}-e{args.epochs}-n{args.train}-seed*.json"))]
        if cells:
            summary[method] = {"seeds": [c["seed"] for c in cells],
                               "eval_accuracy_mean": statistics.mean(c["eval_accuracy"] for c in cells),
                               "train_time_s_mean": statistics.mean(c["train_time_s"] for c in cells),
                               "epochs": args.epochs, "train_examples": args.train}
    (RESULTS / f"summary-e{args.epochs}-n{args.train}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
