"""Training throughput of the zoo's KANs against the parameter-matched MLP (issue D1), same run.

Models (Fashion-MNIST 784-64-10 KANs, batch 128, Adam lr 1e-3, cross-entropy on real images):
the B-spline KAN with the fused closed-form bases (the default), the same layer with the
scatter-placed local bases and with the full Cox–de Boor reference bases, ReLU-KAN with the
recipe's LayerNorm and without it (ReLU-KAN's own layer), AF-KAN, the parameter-matched MLP
(784-575-10: 457,135 parameters against the B-spline KAN's 457,344), and pykan's KAN (the bench
extra) when it is installed. FLOPs: the matrix products of one forward pass per example
(torch.utils.flop_counter; elementwise basis evaluation is not counted).

Timing is alternating: --rounds rounds, each running --steps training steps of every model back
to back (pykan --peer-steps, it is far slower); a model's throughput is the median over rounds of
its samples/s, and its ratio to the MLP is the median of the per-round ratios (the slow drift of
a shared machine cancels). Memory per step: the bytes of the tensors autograd saves for backward
in one step (activation memory, exact and deterministic) and of parameters + gradients + Adam
state. Also the basis evaluation alone (forward, (128, 784) inputs): local vs Cox–de Boor.

    OMP_NUM_THREADS=1 python benchmarks/bench_kan.py --threads 1 --out benchmarks/results/kan.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import zoo

ROOT = Path(__file__).resolve().parents[1]
KAN = dict(hidden_sizes=[64], grid_size=5, spline_order=3, num_labels=10)
MODELS = {
    "mlp": ("mlp", dict(hidden_sizes=[575], num_labels=10)),
    "kan-bspline": ("kan", dict(KAN, basis="bspline")),
    "kan-bspline-local": ("kan", dict(KAN, basis="bspline", bspline_impl="local")),
    "kan-bspline-cox-de-boor": ("kan", dict(KAN, basis="bspline", bspline_impl="cox_de_boor")),
    "kan-relu": ("kan", dict(KAN, basis="relu", grid_range=[0.0, 1.0], norm="layer")),
    "kan-relu-no-norm": ("kan", dict(KAN, basis="relu", grid_range=[0.0, 1.0])),
    "kan-af": ("kan", dict(KAN, basis="af", grid_range=[0.0, 1.0], norm="layer")),
}


class PykanClassifier(torch.nn.Module):
    """pykan's KAN(width=[784, 64, 10], grid=5, k=3) on flattened pixels, plotting caches off."""

    def __init__(self):
        super().__init__()
        from kan import KAN as PyKAN

        self.kan = PyKAN(width=[784, 64, 10], grid=5, k=3, auto_save=False, device="cpu", seed=0)
        if hasattr(self.kan, "speed"):
            self.kan.speed()  # no symbolic branch, no saved activations (pykan's own fast mode)

    def forward(self, pixel_values, labels):
        logits = self.kan(pixel_values.flatten(1))
        return torch.nn.functional.cross_entropy(logits, labels)


def build(name: str):
    if name == "pykan":
        return PykanClassifier()
    arch, config = MODELS[name]
    return zoo.create_model(arch, **config)


def loss_of(model, x, y):
    return model(x, y) if isinstance(model, PykanClassifier) else model(pixel_values=x, labels=y).loss


class Runner:
    """One model, its optimiser and a cursor into the data: run(n) trains n steps, returns seconds."""

    def __init__(self, name, images, labels, batch):
        torch.manual_seed(0)
        self.name, self.model = name, build(name).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.images, self.labels, self.batch, self.cursor = images, labels, batch, 0

    def step(self):
        start = self.cursor
        self.cursor = (self.cursor + self.batch) % (len(self.images) - self.batch)
        loss = loss_of(self.model, self.images[start:start + self.batch], self.labels[start:start + self.batch])
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def run(self, steps: int) -> float:
        begin = time.perf_counter()
        for _ in range(steps):
            self.step()
        return time.perf_counter() - begin

    def memory(self) -> dict:
        saved = {}
        weights = {p.data_ptr() for p in self.model.parameters()}

        def pack(tensor):  # each distinct tensor once; weights are counted below, not here
            if tensor.data_ptr() not in weights:
                saved[(tensor.data_ptr(), tensor.numel(), tensor.dtype)] = tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_of(self.model, self.images[: self.batch], self.labels[: self.batch])
        loss.backward()
        self.optimizer.zero_grad(set_to_none=True)
        params = sum(p.numel() * p.element_size() for p in self.model.parameters())
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter, torch.no_grad():
            loss_of(self.model, self.images[: self.batch], self.labels[: self.batch])
        return {"parameters": sum(p.numel() for p in self.model.parameters()),
                "forward_matmul_flops_per_example": counter.get_total_flops() / self.batch,
                "saved_for_backward_bytes": sum(saved.values()), "parameter_grad_adam_bytes": 4 * params}


def basis_timing(repeats: int) -> dict:
    from zoo.models.kan.modeling_kan import cox_de_boor_bases, fused_bspline_bases, local_bspline_bases

    x = torch.rand(128, 784)
    out = {}
    for name, fn in (("fused", fused_bspline_bases), ("local", local_bspline_bases), ("cox_de_boor", cox_de_boor_bases)):
        fn(x, -1.0, 1.0, 5, 3)
        times = []
        for _ in range(repeats):
            begin = time.perf_counter()
            for _ in range(10):
                fn(x, -1.0, 1.0, 5, 3)
            times.append((time.perf_counter() - begin) / 10)
        out[f"{name}_ms"] = 1e3 * statistics.median(times)
    out["speedup_fused_over_cox_de_boor"] = out["cox_de_boor_ms"] / out["fused_ms"]
    out["speedup_local_over_cox_de_boor"] = out["cox_de_boor_ms"] / out["local_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps of each model per round")
    parser.add_argument("--peer-steps", type=int, default=10, help="steps of pykan per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-peers", action="store_true", help="skip pykan")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kan.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = zoo.data.load("fashion_mnist", limit_train=4096, limit_test=1)["train"].with_format("torch")
    images, labels = data[:]["pixel_values"].float(), data[:]["labels"].long()
    names = list(MODELS)
    peers = {}
    if not args.no_peers:
        try:
            import kan  # noqa: F401

            names.append("pykan")
        except ImportError as error:
            peers["pykan"] = f"not installed ({error}); pip install pykan"
    peers["efficient-kan"] = "not on PyPI (github.com/Blealtan/efficient-kan only); not measured"
    runners = {name: Runner(name, images, labels, args.batch_size) for name in names}
    for runner in runners.values():  # warm-up
        runner.run(2)
    throughput = {name: [] for name in names}
    for _ in range(args.rounds):
        for name, runner in runners.items():
            steps = args.peer_steps if name == "pykan" else args.steps
            throughput[name].append(steps * args.batch_size / runner.run(steps))
    results = {}
    for name in names:
        ratios = [t / m for t, m in zip(throughput[name], throughput["mlp"])]
        results[name] = {"samples_per_s": statistics.median(throughput[name]), "samples_per_s_rounds": throughput[name],
                         "ratio_to_mlp": statistics.median(ratios), "ratio_to_mlp_rounds": ratios,
                         "steps_per_round": args.peer_steps if name == "pykan" else args.steps,
                         **runners[name].memory()}
    cox = results["kan-bspline-cox-de-boor"]
    result = {
        "setup": {"batch_size": args.batch_size, "rounds": args.rounds, "threads": args.threads, "optimizer": "adam lr 1e-3",
                  "data": "Fashion-MNIST train (first 4096 images, cycled)", "torch": torch.__version__,
                  "machine": platform.machine(), "processor": platform.processor()},
        "models": results,
        "bspline_speedup_over_cox_de_boor": statistics.median(
            [a / b for a, b in zip(throughput["kan-bspline"], cox["samples_per_s_rounds"])]),
        "bspline_local_speedup_over_cox_de_boor": statistics.median(
            [a / b for a, b in zip(throughput["kan-bspline-local"], cox["samples_per_s_rounds"])]),
        "goals": {  # the D1 speed goals, judged on this run
            "bspline_ratio_to_mlp_at_least_0.4": results["kan-bspline"]["ratio_to_mlp"] >= 0.4,
            "bspline_speedup_over_cox_de_boor_at_least_2": statistics.median(
                [a / b for a, b in zip(throughput["kan-bspline"], cox["samples_per_s_rounds"])]) >= 2,
            "relu_kan_ratio_to_mlp_at_least_0.6": results["kan-relu-no-norm"]["ratio_to_mlp"] >= 0.6,
            "relu_kan_with_layernorm_ratio_to_mlp_at_least_0.6": results["kan-relu"]["ratio_to_mlp"] >= 0.6,
        },
        "cpu_time_s": time.process_time(),
        "basis_forward": basis_timing(repeats=5),
        "peers_not_measured": {k: v for k, v in peers.items()},
        "load_average_at_end": os.getloadavg()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {"samples_per_s": round(v["samples_per_s"]), "ratio_to_mlp": round(v["ratio_to_mlp"], 3)}
                      for k, v in results.items()}, indent=1))
    print("bspline / cox-de-boor:", round(result["bspline_speedup_over_cox_de_boor"], 2), result["basis_forward"])


if __name__ == "__main__":
    main()
