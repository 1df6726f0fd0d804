"""D3: standard vs magnitude-invariant (MIP) hypernetworks on a γ-conditioned Fashion-MNIST task.

The task is the `hypernet` trainer's (zoo/training/hypernet.py): γ ∈ [0, 1] sets the
label-smoothing strength ε = γ/2 of the loss; every step draws one γ ~ U(0, 1) for the batch, the
hypernetwork predicts all weights θ(γ) of a 784-32-10 target MLP (hypernetwork 1|2 → 16 → 64 →
θ), Adam lr --lr, batch 128, the first --train training images. Per seed, every variant sees
the same γ and batch sequence (paired comparison) and starts from torch.manual_seed(seed).

Variants (one JSON per (variant, activation, norm, seed) under experiments/results/hypernet/,
finished cells skipped):
- zoo-standard, zoo-mip: the `hypernet` architecture with hyper_init pytorch (nn.Linear's default
  init; MIP's θ₀ starts as the target's default init); zoo-fanout-standard, zoo-fanout-mip: the
  same with hyper_init fan_out (the reference library's init). --activations and --norms
  (none | layernorm) are the ablations;
- hyperlight-* (the paper's own library, `pip install hyperlight`), its HyperNet and its init:
  standard = encoding None, no independent weights (θ = h(γ)); mip = encoding "cos|sin" + θ₀
  (its default); additive = encoding None + θ₀ (MIP without the encoding: an ablation).
  No normalisation layers in hyperlight: norm none only.
Recorded every --every steps: the mean training loss and the mean training KL (the loss minus
the smoothed target's entropy, so that the γ drawn does not move the number); at the end the
test loss/accuracy (unsmoothed) at γ = 0 and γ = 1 on the full test set. The summary
(summary-lr<lr>-s<steps>-n<train>.json) gives, per variant × activation × norm, the steps to
reach each --targets KL (per seed, median, min–max; read off the stored curves, so other
targets need no rerun: --summary) and the final KL (mean of the last 5 records; mean, min, max
over seeds).

    OMP_NUM_THREADS=1 python experiments/hypernet/run.py --steps 600 --seeds 0 1 2 3 4
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "hypernet"
VARIANTS = ("zoo-standard", "zoo-mip", "zoo-fanout-standard", "zoo-fanout-mip",
            "hyperlight-standard", "hyperlight-additive", "hyperlight-mip")
HYPERLIGHT_ACT = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "tanh": "Tanh", "gelu": "GELU"}
ACT = {"relu": F.relu, "leaky_relu": F.leaky_relu, "tanh": torch.tanh, "gelu": F.gelu}


class HyperlightClassifier(torch.nn.Module):
    """hyperlight.HyperNet predicting the same 784-32-10 target MLP (the peer)."""

    def __init__(self, encoding, independent: bool, activation: str, shapes):
        super().__init__()
        import hyperlight

        self.activation = activation
        self.hypernet = hyperlight.HyperNet(input_shapes={"gamma": (1,)}, output_shapes=dict(shapes),
                                            hidden_sizes=[16, 64], encoding=encoding,
                                            init_independent_weights=independent,
                                            fc_kws={"nonlinearity": HYPERLIGHT_ACT[activation]})

    def forward(self, pixel_values, gamma):
        w = self.hypernet(gamma=torch.tensor([float(gamma)]))
        hidden = ACT[self.activation](F.linear(pixel_values.flatten(1), w["fc1.weight"], w["fc1.bias"]))
        return F.linear(hidden, w["fc2.weight"], w["fc2.bias"])


def build(variant: str, activation: str, norm: str):
    import zoo
    from zoo.models.hypernet.modeling_hypernet import target_shapes

    library, parametrization = variant.rsplit("-", 1)
    if library.startswith("zoo"):
        model = zoo.create_model("hypernet", parametrization=parametrization, activation=activation, hyper_norm=norm,
                                 hyper_init="fan_out" if library == "zoo-fanout" else "pytorch", num_labels=10)
        return lambda x, gamma: model(pixel_values=x, gamma=gamma).logits, model
    model = HyperlightClassifier("cos|sin" if parametrization == "mip" else None, parametrization != "standard",
                                 activation, target_shapes(zoo.create_model("hypernet", num_labels=10).config))
    return model, model


def run_cell(variant: str, activation: str, norm: str, seed: int, args, train, test) -> dict:
    from zoo.training.hypernet import smoothed_cross_entropy

    images, labels = train
    torch.manual_seed(seed)
    forward, model = build(variant, activation, norm)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=True)  # fused: 4× less CPU per step here
    generator = torch.Generator().manual_seed(1000 + seed)
    curve, running = [], []
    for step in range(1, args.steps + 1):
        index = torch.randint(len(images), (128,), generator=generator)
        gamma = torch.rand((), generator=generator).item()
        loss = smoothed_cross_entropy(forward(images[index], gamma), labels[index], gamma / 2)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running.append((loss.item(), loss.item() - target_entropy(gamma / 2)))
        if step % args.every == 0:
            curve.append({"step": step, "train_loss": statistics.mean(r[0] for r in running),
                          "train_kl": statistics.mean(r[1] for r in running)})
            running = []
    model.eval()
    final = {}
    with torch.no_grad():
        for gamma in (0.0, 1.0):
            logits = forward(test[0], gamma)
            final[f"test_loss_gamma{gamma:g}"] = F.cross_entropy(logits, test[1]).item()
            final[f"test_accuracy_gamma{gamma:g}"] = (logits.argmax(-1) == test[1]).float().mean().item()
    return {"variant": variant, "activation": activation, "norm": norm, "seed": seed, "lr": args.lr,
            "steps": args.steps, "train_images": len(images), "final_loss": curve[-1]["train_loss"],
            "final_kl": statistics.mean(p["train_kl"] for p in curve[-5:]), **final,
            "curve": curve}


def target_entropy(eps: float, classes: int = 10) -> float:
    """H((1 − ε)·one-hot + ε·uniform): the floor of the smoothed loss at ε. The loss minus it is the
    KL divergence from the smoothed target, whose scale does not depend on γ (the raw loss's does)."""
    high, low = 1 - eps + eps / classes, eps / classes
    return -high * math.log(high) - (classes - 1) * (low * math.log(low) if low > 0 else 0.0)


def steps_to(curve: list[dict], target: float, key: str = "train_kl") -> int | None:
    """The first recorded step whose mean training KL (loss − target entropy) is at or below `target`
    (None: never)."""
    return next((p["step"] for p in curve if p[key] <= target), None)


def summarise(cells: list[dict], targets: list[float]) -> dict:
    finals = [c["final_kl"] for c in cells]
    out = {"seeds": [c["seed"] for c in cells], "final_kl_mean": statistics.mean(finals),
           "final_kl_min": min(finals), "final_kl_max": max(finals),
           "test_accuracy_gamma0_mean": statistics.mean(c["test_accuracy_gamma0"] for c in cells)}
    for target in targets:
        steps = [steps_to(c["curve"], target) for c in cells]
        reached = [s for s in steps if s is not None]
        out[f"steps_to_{target:g}"] = {
            "per_seed": steps, "reached": len(reached),
            "median": statistics.median(reached) if len(reached) == len(steps) else None,
            "min": min(reached) if reached else None, "max": max(reached) if reached else None}
    return out


def plot(tag: str) -> None:
    """docs/figures/hypernet/kl-<tag>.png: training KL against step, mean over seeds and its min–max band,
    per variant (ReLU, no normalisation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, library in zip(axes, ("zoo", "hyperlight")):
        for variant in VARIANTS:
            cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{variant}-relu-none-{tag}-seed*.json"))]
            if not cells or not variant.startswith(library):
                continue
            steps = [p["step"] for p in cells[0]["curve"]]
            kl = torch.tensor([[p["train_kl"] for p in c["curve"]] for c in cells])
            line, = ax.plot(steps, kl.mean(0), label=f"{variant} ({len(cells)} seeds)")
            ax.fill_between(steps, kl.min(0).values, kl.max(0).values, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("step")
        ax.set_title(f"{library}: training KL to the smoothed target")
        ax.set_ylim(0.2, 1.5)
        ax.legend()
    axes[0].set_ylabel("mean training KL (20-step bins)")
    out = ROOT / "docs" / "figures" / "hypernet"
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / f"kl-{tag}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--activations", nargs="*", default=["relu"], choices=sorted(ACT))
    parser.add_argument("--norms", nargs="*", default=["none"], choices=["none", "layernorm"])
    parser.add_argument("--targets", nargs="*", type=float, default=[0.5, 0.35],
                        help="training KLs (loss − the smoothed target's entropy) that count as reached")
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--summary", action="store_true", help="only aggregate the finished cells")
    args = parser.parse_args()
    import zoo

    tag = f"lr{args.lr:g}-s{args.steps}-n{args.train}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        data = zoo.data.load("fashion_mnist", limit_train=args.train)
        train = data["train"].with_format("torch")[:]
        test = data["test"].with_format("torch")[:]
        train = (train["pixel_values"].float(), train["labels"].long())
        test = (test["pixel_values"].float(), test["labels"].long())
        for seed in args.seeds:
            for activation in args.activations:
                for norm in args.norms:
                    for variant in args.variants:
                        if variant.startswith("hyperlight") and norm != "none":
                            continue
                        path = RESULTS / f"{variant}-{activation}-{norm}-{tag}-seed{seed}.json"
                        if path.exists():
                            continue
                        cell = run_cell(variant, activation, norm, seed, args, train, test)
                        path.write_text(json.dumps(cell, indent=2) + "\n")
                        print(path.name, [steps_to(cell["curve"], t) for t in args.targets], round(cell["final_kl"], 4), flush=True)
    summary = {}
    for path in sorted(RESULTS.glob(f"*-{tag}-seed*.json")):
        cell = json.loads(path.read_text())
        summary.setdefault(f"{cell['variant']}-{cell['activation']}-{cell['norm']}", []).append(cell)
    summary = {key: summarise(cells, args.targets) for key, cells in summary.items()}
    (RESULTS / f"summary-{tag}.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(tag)
    print(json.dumps({k: {t: v[f"steps_to_{t:g}"]["median"] for t in args.targets} for k, v in summary.items()}, indent=1))


if __name__ == "__main__":
    main()
