#!/usr/bin/env python
"""C2 finding: iterative magnitude pruning with rewinding, plain vs + AP, with the dynamic dead
neuron rate (analysis.dnr.DNRMeter) of every training phase.

    OMP_NUM_THREADS=1 python experiments/pruning/run.py --epochs 12        # FINDINGS C2: 5 cycles to 90 %, 3 seeds
    OMP_NUM_THREADS=1 python experiments/pruning/run.py --data digits --hidden 64,32 --epochs 6 --seeds 0   # smoke
    python experiments/pruning/run.py --epochs 12 --summary               # summary.json + docs/figures/pruning/

Each cell trains through the zoo's `imp` trainer, extended here (not in zoo: zoo never imports
analysis) by a DNRMeter on the training passes, one point per phase: phase c is trained at the
sparsity reached after c cycles. One JSON per cell under experiments/results/pruning/<tag>/;
finished cells are skipped. Paper (Liu et al., AP): the more a net is pruned, the smaller its
dynamic DNR; AP lowers it and improves pruned accuracy by 3-4 % (CIFAR-10/100).
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "pruning"
# method: (ap_fraction, prune_fraction); None: the command line's. "imp-matched" is plain IMP at
# IMP + AP's sparsity every cycle (prune 1 - (1 - p)(1 - ap)): AP's effect apart from pruning more.
METHODS = {"imp": (0.0, None), "imp-ap": (None, None), "imp-matched": (0.0, "matched")}


def register_dnr_trainer():
    from analysis.dnr import DNRMeter
    from zoo.training import register_trainer
    from zoo.training.pruning import IMPTrainer

    @register_trainer("imp-dnr")
    class IMPWithDNR(IMPTrainer):
        """The imp trainer with the dynamic DNR of every training phase (the callback use of DNRMeter)."""

        options = IMPTrainer.options

        def setup(self, run):
            super().setup(run)
            self.meter = DNRMeter(run.unwrapped_model)

        def on_step_end(self, run):
            if run.state["step"] % self.phase == 0:  # before the cycle's evaluation (eval passes do not count anyway)
                self.meter.record(run.state["step"])
            super().on_step_end(run)

        def train(self, run):
            outcome = super().train(run)
            self.meter.close()
            outcome.metrics["dnr_per_phase"] = self.meter.curve
            return outcome


def run_sweep(args) -> None:
    import yaml
    from tqdm.auto import tqdm

    from zoo.data import register_dataset
    from zoo.data.images import fashion_mnist
    from zoo.training import train

    register_dataset("fashion_mnist")(functools.lru_cache(maxsize=2)(fashion_mnist))
    register_dnr_trainer()
    out_dir = RESULTS / tag(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"name": args.data} | ({"limit_train": args.limit_train, "limit_test": args.limit_test}
                                  if args.data == "fashion_mnist" else {})
    for seed in tqdm(args.seed_list, desc="C2 seeds"):
        for method, (ap, prune) in METHODS.items():
            name = out_dir / f"{method}-seed{seed}.json"
            if name.exists():
                continue
            recipe = {"id": f"c2-{method}", "architecture": "mlp",
                      "config": {"hidden_sizes": [int(h) for h in args.hidden.split(",")], "num_labels": 10,
                                 **({"image_size": 8} if args.data == "digits" else {})},
                      "data": data,
                      "training": {"trainer": "imp-dnr", "epochs": args.epochs, "batch_size": 128, "optimizer": "adam",
                                   "lr": 1.2e-3, "scheduler": "cosine", "seed": seed, "checkpoint_every": 0,
                                   "trainer_options": {"cycles": args.cycles, "prune_fraction": prune_fraction(args, prune),
                                                       "ap_fraction": args.ap_fraction if ap is None else ap}}}
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "recipe.yaml"
                path.write_text(yaml.safe_dump(recipe))
                metrics = train(path, output_dir=Path(tmp) / "out").metrics
            name.write_text(json.dumps({"method": method, "seed": seed, "recipe": recipe, "imp": metrics["imp"],
                                        "dnr_per_phase": metrics["dnr_per_phase"],
                                        "final": metrics["final"]}, indent=2))


def prune_fraction(args, prune) -> float:
    if prune == "matched":
        return round(1 - (1 - args.prune_fraction) * (1 - args.ap_fraction), 6)
    return args.prune_fraction


def tag(args) -> str:
    return f"{args.data}-n{args.limit_train}-e{args.epochs}-c{args.cycles}-h{args.hidden.replace(',', 'x')}"


def summarise(args) -> None:
    out_dir = RESULTS / tag(args)
    rows = []
    for method in METHODS:
        cells = [json.loads(p.read_text()) for p in sorted(out_dir.glob(f"{method}-seed*.json"))]
        if not cells:
            continue
        for c in range(len(cells[0]["imp"]["cycles"])):
            acc = [cell["imp"]["cycles"][c]["eval_accuracy"] for cell in cells]
            dnr = [cell["dnr_per_phase"][c]["rate"] for cell in cells]
            rows.append({"method": method, "cycle": c, "sparsity": cells[0]["imp"]["cycles"][c]["sparsity"],
                         "accuracy_mean": statistics.mean(acc), "accuracy_min": min(acc), "accuracy_max": max(acc),
                         "dnr_mean": statistics.mean(dnr), "seeds": len(cells)})
    (out_dir / "summary.json").write_text(json.dumps({"tag": tag(args), "rows": rows}, indent=2))
    print(json.dumps(rows, indent=1))
    plot(rows, ROOT / "docs" / "figures" / "pruning" / f"{tag(args)}.png")


def plot(rows: list[dict], path: Path) -> None:
    """Test accuracy and dynamic DNR against the sparsity each phase was trained at, per method."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6), dpi=100)
    for i, (key, label) in enumerate((("accuracy_mean", "test accuracy (mean of seeds)"),
                                      ("dnr_mean", "dynamic DNR of the phase (mean of seeds)"))):
        axes = figure.add_subplot(1, 2, i + 1)
        for method in METHODS:
            points = [(100 * r["sparsity"], r[key]) for r in rows if r["method"] == method]
            if points:
                axes.plot(*zip(*points), marker="o", label=method)
        axes.set_xlabel("sparsity of the phase (%)")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion_mnist", choices=["fashion_mnist", "digits"])
    parser.add_argument("--limit-train", type=int, default=10000)
    parser.add_argument("--limit-test", type=int, default=5000)
    parser.add_argument("--hidden", default="300,100")
    parser.add_argument("--epochs", type=int, default=6, help="in all: split into cycles + 1 phases")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--prune-fraction", type=float, default=0.37)
    parser.add_argument("--ap-fraction", type=float, default=0.05)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    args.seed_list = [int(s) for s in args.seeds.split(",")]
    summarise(args) if args.summary else run_sweep(args)


if __name__ == "__main__":
    main()
