"""Quadratic nets with plain training vs ReLinear vs conventional nets of the same parameter count.

Fan et al. ("On Expressivity and Trainability of Quadratic Networks"): quadratic nets trained
plainly collapse more often than conventional ones; ReLinear (W_g = 0, b_g = 1, W_b = 0, c = 0 at
the start; the quadratic terms at a much smaller learning rate) stabilises them and gives higher
accuracy. Three variants of the zoo's `mlp` on Fashion-MNIST:

- linear:    conventional neurons, hidden widths chosen so the net has (nearly) the quadratic
             net's parameter count;
- plain:     quadratic neurons, every term drawn at random (quadratic_init: random), one learning rate;
- relinear:  quadratic neurons, quadratic_init: relinear, the quadratic terms at lr × 1e-4
             (zoo.training.relinear's parameter groups, the reference's ratio 1e-5 / 0.1).

Each variant is trained under each optimiser setting (`--settings`) for every seed. A run
**collapses** when its training loss becomes non-finite at any step, or when its final test
accuracy is below 0.2 (twice chance on 10 classes: the net has stopped learning the task).

One JSON per finished cell under experiments/results/quadratic_relinear/ (cells already there
are skipped, so the sweep resumes); `--summarize` aggregates them into summary.json and a plot.

    python experiments/quadratic_relinear/run.py --seeds 10 --epochs 3 --train-size 10000
    python experiments/quadratic_relinear/run.py --summarize
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "experiments" / "results" / "quadratic_relinear"
FIGURES = ROOT / "docs" / "figures" / "quadratic_relinear"
VARIANTS = ("linear", "plain", "relinear")
SETTINGS = {  # optimiser settings, fixed before any run (not tuned)
    "sgd": dict(optimizer="sgd", lr=0.05, momentum=0.9),
    "adam": dict(optimizer="adam", lr=1e-3),
}
QUADRATIC_LR_SCALE = 1e-4
COLLAPSE_ACCURACY = 0.2


def parameter_count(hidden_sizes, neuron: str, inputs: int = 784, labels: int = 10) -> int:
    widths = [inputs, *hidden_sizes]
    per = 3 if neuron == "quadratic" else 1  # W_r, W_g, W_b (and b_r, b_g, c)
    hidden = sum(per * (a * b + b) for a, b in zip(widths[:-1], widths[1:]))
    return hidden + hidden_sizes[-1] * labels + labels


def matched_width(width: int, depth: int) -> int:
    """The linear MLP width (depth equal layers) whose parameter count is closest to the quadratic one."""
    target = parameter_count([width] * depth, "quadratic")
    return min(range(1, 20 * width), key=lambda w: abs(parameter_count([w] * depth, "linear") - target))


def model_config(variant: str, width: int, depth: int) -> dict:
    if variant == "linear":
        return dict(hidden_sizes=[matched_width(width, depth)] * depth, neuron="linear")
    return dict(hidden_sizes=[width] * depth, neuron="quadratic",
                quadratic_init="random" if variant == "plain" else "relinear")


def load_data(train_size: int, test_size: int):
    from zoo import data as zoo_data

    splits = zoo_data.load("fashion_mnist", limit_train=train_size, limit_test=test_size)
    out = []
    for split in ("train", "test"):
        table = splits[split].with_format("torch", columns=["pixel_values", "labels"])[:]
        out.append((table["pixel_values"].float(), table["labels"].long()))
    return out


def train_cell(variant: str, setting: str, seed: int, args, data) -> dict:
    import zoo
    from zoo.training.relinear import relinear_parameter_groups

    (x_train, y_train), (x_test, y_test) = data
    torch.manual_seed(seed)
    config = model_config(variant, args.width, args.depth)
    model = zoo.create_model("mlp", num_labels=10, **config)
    s = SETTINGS[setting]
    if variant == "relinear":
        params = relinear_parameter_groups(model, s["lr"], args.quadratic_lr_scale)
    else:
        params = [{"params": list(model.parameters()), "lr": s["lr"]}]
    if s["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(params, lr=s["lr"], momentum=s["momentum"])
    else:
        optimizer = torch.optim.Adam(params, lr=s["lr"])
    generator = torch.Generator().manual_seed(seed)
    losses, non_finite_step = [], None
    start = time.process_time()
    model.train()
    step = 0
    for _ in range(args.epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            index = order[i:i + args.batch_size]
            loss = model(pixel_values=x_train[index], labels=y_train[index]).loss
            step += 1
            if not torch.isfinite(loss):
                non_finite_step = step
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        if non_finite_step is not None:
            break
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(pixel_values=x_test[i:i + 2048]).logits for i in range(0, len(x_test), 2048)])
    finite = bool(torch.isfinite(logits).all())
    accuracy = float((logits.argmax(1) == y_test).float().mean()) if finite else 0.1
    test_loss = float(torch.nn.functional.cross_entropy(logits, y_test)) if finite else float("nan")
    collapsed = non_finite_step is not None or not finite or accuracy < COLLAPSE_ACCURACY
    tail = losses[-20:]
    return {
        "variant": variant, "setting": setting, "seed": seed, "optimizer": s, "config": config,
        "quadratic_lr_scale": args.quadratic_lr_scale if variant == "relinear" else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": args.epochs, "batch_size": args.batch_size, "train_size": len(x_train), "test_size": len(x_test),
        "steps": step, "non_finite_step": non_finite_step,
        "first_loss": losses[0] if losses else None, "final_train_loss": sum(tail) / len(tail) if tail else None,
        "max_train_loss": max(losses) if losses else None,
        "test_accuracy": accuracy, "test_loss": test_loss if math.isfinite(test_loss) else None,
        "collapsed": collapsed, "cpu_s": round(time.process_time() - start, 2),
    }


def cell_path(variant: str, setting: str, seed: int, args) -> Path:
    scale = f"_q{args.quadratic_lr_scale:g}" if variant == "relinear" and args.quadratic_lr_scale != QUADRATIC_LR_SCALE else ""
    return RESULTS / f"{setting}_{variant}{scale}_w{args.width}_d{args.depth}_e{args.epochs}_n{args.train_size}_seed{seed}.json"


def sweep(args) -> None:
    from tqdm import tqdm

    cells = [(s, v, seed) for s in args.settings for seed in range(args.seeds) for v in args.variants]
    todo = [c for c in cells if not cell_path(c[1], c[0], c[2], args).exists()]
    print(f"{len(cells) - len(todo)} of {len(cells)} cells done; running {len(todo)}")
    if not todo:
        return
    data = load_data(args.train_size, args.test_size)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for setting, variant, seed in tqdm(todo):
        result = train_cell(variant, setting, seed, args, data)
        path = cell_path(variant, setting, seed, args)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)


def summarize() -> dict:
    cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*_seed*.json"))]
    groups: dict[tuple, list] = {}
    for c in cells:
        variant = c["variant"]
        if c.get("quadratic_lr_scale") not in (None, QUADRATIC_LR_SCALE):
            variant = f"relinear_q{c['quadratic_lr_scale']:g}"  # the default scale keeps the plain name
        key = (c["setting"], variant, c["config"]["hidden_sizes"][0], len(c["config"]["hidden_sizes"]), c["epochs"], c["train_size"])
        groups.setdefault(key, []).append(c)
    rows = []
    for (setting, variant, width, depth, epochs, n), runs in sorted(groups.items()):
        ok = [r["test_accuracy"] for r in runs if not r["collapsed"]]
        accs = [r["test_accuracy"] for r in runs]
        mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
        std = lambda v: (sum((a - mean(v)) ** 2 for a in v) / max(1, len(v) - 1)) ** 0.5 if len(v) > 1 else None  # noqa: E731
        rows.append({
            "setting": setting, "variant": variant, "hidden_width": width, "depth": depth, "epochs": epochs,
            "train_size": n, "parameters": runs[0]["parameters"], "runs": len(runs),
            "collapsed": sum(r["collapsed"] for r in runs), "collapse_rate": sum(r["collapsed"] for r in runs) / len(runs),
            "accuracy_mean": mean(accs), "accuracy_std": std(accs), "accuracy_min": min(accs), "accuracy_max": max(accs),
            "accuracy_mean_not_collapsed": mean(ok),
            "cpu_s": round(sum(r["cpu_s"] for r in runs), 1),
        })
    summary = {"collapse_definition": f"non-finite training loss at any step, or final test accuracy < {COLLAPSE_ACCURACY}",
               "quadratic_lr_scale": QUADRATIC_LR_SCALE, "settings": SETTINGS, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(cells, rows)
    return summary


def plot(cells, rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["setting"], r["epochs"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (setting, epochs) in zip(axes[0], panels):
        for i, variant in enumerate(VARIANTS):
            accs = [c["test_accuracy"] for c in cells if (c["setting"], c["epochs"], c["variant"]) == (setting, epochs, variant)]
            ax.scatter([i + (j % 5 - 2) * 0.04 for j in range(len(accs))], accs, s=14, alpha=0.7)
            row = next((r for r in rows if (r["setting"], r["epochs"], r["variant"]) == (setting, epochs, variant)), None)
            if row:
                ax.text(i, 0.05, f"collapse {row['collapsed']}/{row['runs']}", ha="center", fontsize=8)
        ax.axhline(COLLAPSE_ACCURACY, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(VARIANTS)), VARIANTS)
        ax.set_ylim(0, 1)
        ax.set_title(f"{setting} (lr {SETTINGS[setting]['lr']:g}), {epochs} epochs")
        ax.set_ylabel("test accuracy")
    fig.suptitle("Fashion-MNIST MLP: linear (same #params) vs quadratic plain vs ReLinear", fontsize=9)
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "accuracy_by_seed.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--test-size", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=32, help="hidden width of the quadratic nets")
    parser.add_argument("--depth", type=int, default=3, help="hidden layers")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--quadratic-lr-scale", type=float, default=QUADRATIC_LR_SCALE,
                        help="ReLinear's learning-rate factor for the quadratic terms (cells of other values are kept apart)")
    parser.add_argument("--summarize", action="store_true", help="aggregate the finished cells and plot")
    args = parser.parse_args(argv)
    if args.summarize:
        print(json.dumps(summarize()["rows"], indent=1))
    else:
        sweep(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
