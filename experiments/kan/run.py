"""D1 accuracy table: each KAN basis and the parameter-matched MLP trained by the zoo's own loop.

One cell = (model, seed): a recipe trained with the same settings for all (Adam lr 1e-3,
batch 128, constant schedule, --epochs epochs, the first --train examples of Fashion-MNIST,
the full 10k test set), its metrics.json reduced to one JSON under
experiments/results/kan/<model>-e<epochs>-n<train>-seed<seed>.json. Finished cells are skipped (resumable);
--summary aggregates them into experiments/results/kan/summary-e<epochs>-n<train>.json.

    OMP_NUM_THREADS=1 python experiments/kan/run.py --epochs 2 --train 10000 --seeds 0
    OMP_NUM_THREADS=1 python experiments/kan/run.py --epochs 2 --train 10000 --summary
    OMP_NUM_THREADS=1 python experiments/kan/run.py --epochs 2 --train 10000 --seeds 0 --models kan-bspline-g3 kan-bspline-g10 kan-af-sum kan-af-prod kan-af-cubic1
    # full size (the issue): --epochs 2 --train 60000 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "kan"
SAME = ["training.optimizer=adam", "training.lr=0.001", "training.batch_size=128", "training.scheduler=constant",
        "training.weight_decay=0.0", "training.checkpoint_every=never"]
MODELS = {  # name -> (recipe, extra overrides)
    "mlp-575": ("mlp-fashion-mnist", ["config.hidden_sizes=[575]", "config.dropout=0.0"]),
    "kan-bspline": ("kan-bspline-fashion-mnist", []),
    "kan-relu": ("kan-relu-fashion-mnist", []),
    "kan-af": ("kan-af-fashion-mnist", []),
    # ablations (one seed): grid size of the B-spline KAN, AF-KAN's function combination
    "kan-bspline-g3": ("kan-bspline-fashion-mnist", ["config.grid_size=3"]),
    "kan-bspline-g10": ("kan-bspline-fashion-mnist", ["config.grid_size=10"]),
    "kan-af-sum": ("kan-af-fashion-mnist", ["config.af_function=sum"]),
    "kan-af-prod": ("kan-af-fashion-mnist", ["config.af_function=prod"]),
    "kan-af-cubic1": ("kan-af-fashion-mnist", ["config.af_function=cubic1"]),
}
MAIN = ["mlp-575", "kan-bspline", "kan-relu", "kan-af"]


def forward_flops(model: str) -> float:
    """Matrix-product FLOPs of one forward pass per example (torch.utils.flop_counter; the
    elementwise basis evaluation is not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import zoo
    from zoo.recipes import load_recipe

    recipe, overrides = MODELS[model]
    r = load_recipe(recipe, overrides)
    net = zoo.create_model(r.architecture, **r.config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(pixel_values=torch.rand(8, 1, 28, 28))
    return counter.get_total_flops() / 8


def parameters(output_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(output_dir / "model.safetensors"), "pt") as f:
        return sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())


def _prod(shape) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


def run_cell(model: str, seed: int, epochs: int, train: int, extra: list[str] | None = None) -> dict:
    from zoo.training import train as train_recipe

    recipe, overrides = MODELS[model]
    overrides = [*SAME, *overrides, *(extra or []), f"training.seed={seed}", f"training.epochs={epochs}",
                 f"data.limit_train={train}"]
    with tempfile.TemporaryDirectory() as out:
        result = train_recipe(recipe, overrides, output_dir=out)
        metrics = result.metrics
        return {"model": model, "recipe": recipe, "seed": seed, "epochs": epochs, "train_examples": train,
                "overrides": overrides, "eval_accuracy": metrics["final"]["eval_accuracy"],
                "eval_loss": metrics["final"]["eval_loss"], "train_time_s": metrics["train_time_s"],
                "train_samples_per_s": train * epochs / metrics["train_time_s"], "parameters": parameters(Path(out))}


def summary(epochs: int, train: int) -> dict:
    cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"*-e{epochs}-n{train}-seed*.json"))]
    out = {}
    for model in MODELS:
        mine = [c for c in cells if c["model"] == model]
        if mine:
            acc = [c["eval_accuracy"] for c in mine]
            out[model] = {"seeds": [c["seed"] for c in mine], "eval_accuracy_mean": statistics.mean(acc),
                          "eval_accuracy_min": min(acc), "eval_accuracy_max": max(acc),
                          "parameters": mine[0]["parameters"], "epochs": mine[0]["epochs"],
                          "forward_matmul_flops_per_example": forward_flops(model),
                          "train_examples": mine[0]["train_examples"],
                          "train_samples_per_s_mean": statistics.mean(c["train_samples_per_s"] for c in mine)}
    (RESULTS / f"summary-e{epochs}-n{train}.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MAIN, choices=list(MODELS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=10000, help="training examples (first N of 60k)")
    parser.add_argument("--summary", action="store_true", help="only aggregate the finished cells")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        for seed in args.seeds:
            for model in args.models:
                path = RESULTS / f"{model}-e{args.epochs}-n{args.train}-seed{seed}.json"
                if path.exists():
                    continue
                cell = run_cell(model, seed, args.epochs, args.train)
                path.write_text(json.dumps(cell, indent=2) + "\n")
                print(model, seed, round(cell["eval_accuracy"], 4), round(cell["train_samples_per_s"]))
    print(json.dumps(summary(args.epochs, args.train), indent=2))


if __name__ == "__main__":
    main()
