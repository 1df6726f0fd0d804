"""MgNO against FNO (the `neuraloperator` package, the peer) and a U-Net on Darcy flow: relative L2
error at matched parameter counts and the same training budget, several seeds, the train-vs-test
gap, and the test error at a second (finer) resolution with the same weights.

    python experiments/mgno_darcy/run.py --seeds 0 1 2             # one JSON per (model, seed) cell
    python experiments/mgno_darcy/run.py --summarize               # summary.json + docs/figures/mgno_darcy/

Every model sees the same data, the same input scaling ((a − 7.5) / 4.5, so a ∈ {3, 12} → ±1) and
output scale (u × OUTPUT_SCALE), the same loss (relative L2 per example, the zoo's `mgno` loss),
optimiser (Adam, cosine decay) and number of steps. MgNO is the zoo's `mgno` architecture; FNO is
neuralop.models.FNO (grid positional embedding, its default); the U-Net (written here: two
poolings, double 3 × 3 convolutions, zero padding) is the CNN baseline. Cells already written
are skipped, so a larger sweep extends this one.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "experiments" / "results" / "mgno_darcy"
FIGURES = ROOT / "docs" / "figures" / "mgno_darcy"
MODELS = ("mgno", "fno", "unet")
INPUT_MEAN, INPUT_STD, OUTPUT_SCALE = 7.5, 4.5, 0.006  # a ∈ {3, 12}; u is ~0.006 on average

# the three models at 27.6k (MgNO), 29.4k (FNO) and 29.3k (U-Net) parameters (printed and saved per cell; see FINDINGS for the counts)
SIZES = {
    "mgno": dict(num_channels=8, num_layers=4, num_levels=3),  # V-cycles on 32² → 4², 1 pre-smoothing step
    "fno": dict(hidden_channels=13, n_modes=(8, 8), n_layers=4),
    "unet": dict(width=8),
}


def relative_l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per example ‖prediction − target‖ / ‖target‖ (the loss of every model here)."""
    return (prediction - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GELU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.GELU())


class UNet(nn.Module):
    """Two poolings: width → 2·width → 4·width channels, transposed-convolution upsampling, skips."""

    def __init__(self, width: int = 8):
        super().__init__()
        w = width
        self.enc1, self.enc2, self.mid = double_conv(1, w), double_conv(w, 2 * w), double_conv(2 * w, 4 * w)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2), double_conv(4 * w, 2 * w)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2), double_conv(2 * w, w)
        self.out = nn.Conv2d(w, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(nn.functional.max_pool2d(e1, 2))
        m = self.mid(nn.functional.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        return self.out(self.dec1(torch.cat([self.up1(d2), e1], 1)))


class Scaled(nn.Module):
    """u = OUTPUT_SCALE · net((a − INPUT_MEAN) / INPUT_STD): the scaling the mgno config applies itself."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, a):
        return OUTPUT_SCALE * self.net((a - INPUT_MEAN) / INPUT_STD)


def build(name: str, resolution: int) -> nn.Module:
    if name == "mgno":
        import zoo

        model = zoo.create_model("mgno", resolution=resolution, input_mean=INPUT_MEAN, input_std=INPUT_STD,
                                 output_scale=OUTPUT_SCALE, **SIZES["mgno"])
        return _Logits(model)
    if name == "fno":
        from neuralop.models import FNO

        return Scaled(FNO(in_channels=1, out_channels=1, **SIZES["fno"]))
    return Scaled(UNet(**SIZES["unet"]))


class _Logits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, a):
        return self.model(pixel_values=a).logits


def load(resolution: int, n_train: int, n_test: int, seed: int) -> tuple[torch.Tensor, ...]:
    from zoo import data

    d = data.load("darcy_flow", resolution=resolution, n_train=n_train, n_test=n_test, seed=seed)
    return tuple(torch.tensor(np.asarray(d[s][c]), dtype=torch.float32) for s in ("train", "test") for c in ("pixel_values", "labels"))


@torch.no_grad()
def error(model: nn.Module, a: torch.Tensor, u: torch.Tensor, batch: int = 32) -> float:
    model.eval()
    errors = torch.cat([relative_l2(model(a[i:i + batch]), u[i:i + batch]) for i in range(0, len(a), batch)])
    model.train()
    return float(errors.mean())


def run_cell(name: str, seed: int, args, data: dict) -> dict:
    a, u, a_test, u_test = data["train"]
    a_fine, u_fine = data["fine"]
    torch.manual_seed(seed)
    model = build(name, args.resolution)
    steps_per_epoch = -(-len(a) // args.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    curve = []
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order, losses = torch.randperm(len(a), generator=generator), []
        for i in range(0, len(a), args.batch_size):
            index = order[i:i + args.batch_size]
            loss = relative_l2(model(a[index]), u[index]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            row["test_error"] = error(model, a_test, u_test)
        curve.append(row)
    cpu_s, wall_s = time.process_time() - start_cpu, time.perf_counter() - start_wall
    result = {
        "model": name, "seed": seed, "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "size": {k: list(v) if isinstance(v, tuple) else v for k, v in SIZES[name].items()},
        "resolution": args.resolution, "fine_resolution": args.fine_resolution, "n_train": len(a), "n_test": len(a_test),
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "steps": args.epochs * steps_per_epoch,
        "train_error": error(model, a, u), "test_error": error(model, a_test, u_test),
        "fine_test_error": error(model, a_fine, u_fine), "train_cpu_s": cpu_s, "train_wall_s": wall_s, "curve": curve,
    }
    result["gap"] = result["test_error"] - result["train_error"]
    return result


def cell_path(name: str, seed: int, args) -> Path:
    return OUT / f"{name}-r{args.resolution}-n{args.n_train}-e{args.epochs}-s{seed}.json"


def summarize() -> dict:
    cells = [json.loads(p.read_text()) for p in sorted(OUT.glob("*-s*.json"))]
    summary = {"models": {}}
    for name in MODELS:
        rows = [c for c in cells if c["model"] == name]
        if not rows:
            continue
        entry = {"parameters": rows[0]["parameters"], "n_seeds": len(rows), "seeds": sorted(c["seed"] for c in rows),
                 "epochs": rows[0]["epochs"], "n_train": rows[0]["n_train"], "resolution": rows[0]["resolution"],
                 "fine_resolution": rows[0]["fine_resolution"]}
        for key in ("train_error", "test_error", "fine_test_error", "gap", "train_cpu_s"):
            values = np.array([c[key] for c in rows])
            entry[key + "_mean"], entry[key + "_std"] = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
        entry["fine_over_coarse"] = entry["fine_test_error_mean"] / entry["test_error_mean"]
        entry["test_errors"] = [c["test_error"] for c in sorted(rows, key=lambda c: c["seed"])]
        for epoch in (1, 5):  # ease of training: the training loss early on
            entry[f"train_loss_epoch{epoch}_mean"] = float(np.mean([c["curve"][epoch - 1]["train_loss"] for c in rows]))
        summary["models"][name] = entry
    m = summary["models"]
    if "mgno" in m and "fno" in m:
        summary["mgno_over_fno_test"] = m["mgno"]["test_error_mean"] / m["fno"]["test_error_mean"]
        summary["mgno_le_fno"] = m["mgno"]["test_error_mean"] <= m["fno"]["test_error_mean"]
        if m["mgno"]["seeds"] == m["fno"]["seeds"]:  # paired by seed
            summary["mgno_better_seeds"] = sum(a < b for a, b in zip(m["mgno"]["test_errors"], m["fno"]["test_errors"]))
    summary["total_train_cpu_minutes"] = sum(e["train_cpu_s_mean"] * e["n_seeds"] for e in m.values()) / 60
    if "mgno" in m and "unet" in m:
        summary["mgno_over_unet_test"] = m["mgno"]["test_error_mean"] / m["unet"]["test_error_mean"]
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(cells, summary)
    return summary


def plot(cells: list[dict], summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(summary["models"])
    for k, (key, label) in enumerate((("train_error", "train"), ("test_error", "test"), ("fine_test_error", "test, finer grid"))):
        means = [summary["models"][n][key + "_mean"] for n in names]
        stds = [summary["models"][n][key + "_std"] for n in names]
        left.bar(np.arange(len(names)) + (k - 1) * 0.27, means, 0.27, yerr=stds, label=label)
    left.set_xticks(range(len(names)), names)
    left.set_ylabel("relative L2 error")
    left.set_yscale("log")
    left.legend()
    for cell in cells:
        colour = "C" + str(MODELS.index(cell["model"]))
        epochs = [r["epoch"] for r in cell["curve"]]
        right.plot(epochs, [r["train_loss"] for r in cell["curve"]], color=colour, alpha=0.6,
                   label=cell["model"] if cell["seed"] == min(c["seed"] for c in cells if c["model"] == cell["model"]) else None)
    right.set_xlabel("epoch")
    right.set_ylabel("training loss (relative L2)")
    right.set_yscale("log")
    right.legend()
    fig.tight_layout()
    fig.savefig(FIGURES / "errors.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--fine-resolution", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--n-test", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--summarize", action="store_true", help="only aggregate the cells written so far")
    args = parser.parse_args(argv)
    if not args.summarize:
        torch.set_num_threads(1)
        data = {"train": load(args.resolution, args.n_train, args.n_test, seed=0)}
        data["fine"] = load(args.fine_resolution, 1, args.n_test, seed=1)[2:]
        OUT.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            for name in args.models:
                path = cell_path(name, seed, args)
                if path.exists():
                    continue
                result = run_cell(name, seed, args, data)
                path.write_text(json.dumps(result, indent=1) + "\n")
                print(f"{name} seed {seed}: {result['parameters']} parameters, train {result['train_error']:.4f} "
                      f"test {result['test_error']:.4f} test@{args.fine_resolution} {result['fine_test_error']:.4f} "
                      f"({result['train_cpu_s']:.0f} CPU-s)", flush=True)
    print(json.dumps(summarize(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
