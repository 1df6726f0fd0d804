"""D3: standard vs magnitude-invariant (MIP) hypernetworks on a γ-conditioned Fashion-MNIST task.

The task: γ ∈ [0, 1] sets the label-smoothing strength of the loss, ε = γ/2 (targets
(1 − ε)·one-hot + ε·uniform); every step draws one γ ~ U(0, 1) for the batch, the hypernet
predicts the target MLP's weights θ(γ) (784-32-10), Adam lr --lr, batch 128, the first --train
images. Recorded every --every steps: the mean training loss since the last record. Per
(parametrization, seed) one JSON under experiments/results/hypernet/ (finished cells skipped);
the summary (summary-<activation>-lr<lr>-s<steps>.json) gives, per parametrization, the steps
to reach --target loss (per seed, median; computed from the stored curves, so any target can be
read off the same cells) and the final loss (mean, min, max over seeds).

    OMP_NUM_THREADS=1 python experiments/hypernet/run.py --steps 300 --seeds 0 1 2 3 4
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "hypernet"


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    eps = gamma / 2
    target = torch.full_like(logits, eps / logits.shape[-1])
    target.scatter_add_(1, labels[:, None], torch.full((len(labels), 1), 1 - eps))
    return -(target * logits.log_softmax(-1)).sum(-1).mean()


def run_cell(parametrization: str, seed: int, args, images, labels) -> dict:
    import zoo

    torch.manual_seed(seed)
    model = zoo.create_model("hypernet", parametrization=parametrization, activation=args.activation, num_labels=10).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(1000 + seed)
    curve, running = [], []
    for step in range(1, args.steps + 1):
        index = torch.randint(len(images), (128,), generator=generator)
        gamma = torch.rand((), generator=generator).item()
        loss = smoothed_loss(model(pixel_values=images[index], gamma=gamma).logits, labels[index], gamma)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running.append(loss.item())
        if step % args.every == 0:
            curve.append({"step": step, "train_loss": statistics.mean(running)})
            running = []
    return {"parametrization": parametrization, "seed": seed, "activation": args.activation, "lr": args.lr,
            "steps": args.steps, "final_loss": curve[-1]["train_loss"], "curve": curve}


def steps_to(curve: list[dict], target: float) -> int | None:
    """The first recorded step whose mean training loss is at or below `target` (None: never)."""
    return next((p["step"] for p in curve if p["train_loss"] <= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--target", type=float, default=1.25, help="training loss that counts as reached")
    parser.add_argument("--train", type=int, default=10000)
    args = parser.parse_args()
    import zoo

    data = zoo.data.load("fashion_mnist", limit_train=args.train, limit_test=1)["train"].with_format("torch")[:]
    images, labels = data["pixel_values"].float(), data["labels"].long()
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = f"{args.activation}-lr{args.lr:g}-s{args.steps}"
    for seed in args.seeds:
        for parametrization in ("standard", "mip"):
            path = RESULTS / f"{parametrization}-{tag}-seed{seed}.json"
            if not path.exists():
                cell = run_cell(parametrization, seed, args, images, labels)
                path.write_text(json.dumps(cell, indent=2) + "\n")
                print(parametrization, seed, steps_to(cell["curve"], args.target), round(cell["final_loss"], 4))
    summary = {}
    for parametrization in ("standard", "mip"):
        cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{parametrization}-{tag}-seed*.json"))]
        steps = [steps_to(c["curve"], args.target) for c in cells]
        reached = [s for s in steps if s is not None]
        finals = [c["final_loss"] for c in cells]
        summary[parametrization] = {
            "seeds": [c["seed"] for c in cells], "steps_to_target": steps,
            "steps_to_target_median": statistics.median(reached) if reached else None,
            "reached": len(reached), "final_loss_mean": statistics.mean(finals),
            "final_loss_min": min(finals), "final_loss_max": max(finals), "target_loss": args.target}
    (RESULTS / f"summary-{tag}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
