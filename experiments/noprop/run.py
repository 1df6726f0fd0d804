"""D2: NoProp-DT against back-propagation through the same blocks and against local-loss training.

One cell = (method, seed), --epochs epochs on the first --train examples, the full test set:
- noprop: the noprop-dt-fashion-mnist recipe trained by the noprop trainer (each block alone);
- backprop: the same recipe under the default SGD loop (back-propagation through the chain);
- local: a second backprop-free baseline, local-loss training (Belilovsky et al. 2019; Nøkland &
  Eidnes 2019, "pred" loss): an MLP 784-256-256-256 whose every layer has its own linear
  classifier and cross-entropy, takes its input detached from the layer below and has its own
  optimiser (the recipe's AdamW, lr 1e-3, weight decay 1e-3, batch 128); predictions from the
  last layer's classifier. Plain torch here (local_loss_cell), the same data and test set.
One JSON per cell under experiments/results/noprop/ (finished cells are skipped), and
memory.json, per method at batch 128 and 1024: the bytes autograd saves for backward in one
training step (NoProp and local: the largest module's, as each graph is freed before the next),
and the measured peak training memory: the rise of the process's peak resident set over 5
training steps after the model and data exist (VmHWM; a fresh subprocess per measurement; it holds the
optimiser state, the gradients and the activations).

    OMP_NUM_THREADS=1 python experiments/noprop/run.py --epochs 2 --train 10000 --seeds 0 1 2
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
METHODS = {"noprop": "training.trainer=noprop", "backprop": "training.trainer=sgd", "local": None}
LOCAL_WIDTHS = (256, 256, 256)


class LocalLossNet(torch.nn.Module):
    """An MLP whose every layer learns from its own classifier; no gradient crosses layers."""

    def __init__(self, inputs: int = 784, widths=LOCAL_WIDTHS, classes: int = 10):
        super().__init__()
        sizes = (inputs, *widths)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(widths)))
        self.heads = torch.nn.ModuleList(torch.nn.Linear(w, classes) for w in widths)

    def local_modules(self) -> list[torch.nn.Module]:
        return [torch.nn.ModuleList([layer, head]) for layer, head in zip(self.layers, self.heads)]

    def local_step(self, x, labels, optimizers) -> float:
        """One update of every layer from its own loss; returns the sum of the losses."""
        h, total = x.flatten(1), 0.0
        for layer, head, optimizer in zip(self.layers, self.heads, optimizers):
            h = torch.relu(layer(h.detach()))  # detached: this layer's loss stops here
            loss = torch.nn.functional.cross_entropy(head(h), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.item()
        return total

    def forward(self, x):
        h = x.flatten(1)
        for layer in self.layers:
            h = torch.relu(layer(h))
        return self.heads[-1](h)


def local_optimizers(net: LocalLossNet) -> list[torch.optim.Optimizer]:
    return [torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-3) for m in net.local_modules()]


def local_loss_cell(seed: int, epochs: int, train: int) -> dict:
    import time

    import zoo

    data = zoo.data.load("fashion_mnist", limit_train=train)
    x_train, y_train = (data["train"].with_format("torch")[:][k] for k in ("pixel_values", "labels"))
    x_test, y_test = (data["test"].with_format("torch")[:][k] for k in ("pixel_values", "labels"))
    torch.manual_seed(seed)
    net = LocalLossNet()
    optimizers = local_optimizers(net)
    generator = torch.Generator().manual_seed(seed)
    history, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        order, losses = torch.randperm(len(x_train), generator=generator), []
        for batch in order.split(128):
            losses.append(net.local_step(x_train[batch].float(), y_train[batch].long(), optimizers))
        with torch.no_grad():
            logits = net(x_test.float())
        history.append({"epoch": epoch, "train_loss_sum": statistics.mean(losses),
                        "eval_loss": torch.nn.functional.cross_entropy(logits, y_test.long()).item(),
                        "eval_accuracy": (logits.argmax(-1) == y_test).float().mean().item()})
    return {"method": "local", "seed": seed, "epochs": epochs, "train_examples": train, "widths": list(LOCAL_WIDTHS),
            "eval_accuracy": history[-1]["eval_accuracy"], "eval_loss": history[-1]["eval_loss"],
            "train_time_s": time.perf_counter() - start, "history": history}


def run_cell(method: str, seed: int, epochs: int, train: int) -> dict:
    from zoo.training import train as train_recipe

    if method == "local":
        return local_loss_cell(seed, epochs, train)
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


def _noprop_model():
    import zoo
    from zoo.recipes import load_recipe

    torch.manual_seed(0)
    return zoo.create_model("noprop", **load_recipe(RECIPE).config).train()


def _local_saved_bytes(net: LocalLossNet, x, y) -> list[int]:
    """Bytes saved for backward by each layer's local loss (its input detached)."""
    out, h = [], x.flatten(1)
    for layer, head in zip(net.layers, net.heads):
        h_in = h.detach()
        out.append(saved_bytes(lambda: torch.nn.functional.cross_entropy(head(torch.relu(layer(h_in))), y)))
        h = torch.relu(layer(h_in)).detach()
    return out


def memory(batch_size: int = 128) -> dict:
    """Activation memory (bytes saved for backward) of one training step of each method."""
    model = _noprop_model()
    x, y = torch.rand(batch_size, 1, 28, 28), torch.arange(batch_size) % 10
    per_block = [saved_bytes(lambda i=i: model.local_loss(x, y, i)) for i in range(model.config.num_blocks + 1)]
    chain = saved_bytes(lambda: model(pixel_values=x, labels=y).loss)
    local = _local_saved_bytes(LocalLossNet(), x, y)
    return {"batch_size": batch_size, "num_blocks": model.config.num_blocks, "hidden_size": model.config.hidden_size,
            "noprop_peak_saved_bytes": max(per_block), "noprop_per_module_saved_bytes": per_block,
            "backprop_saved_bytes": chain, "ratio_backprop_over_noprop": chain / max(per_block),
            "local_peak_saved_bytes": max(local), "local_per_layer_saved_bytes": local}


def peak_training_memory(method: str, batch_size: int, steps: int = 5) -> dict:
    """In this process (run it fresh): the rise of the peak resident set over `steps` training
    steps of `method`, after the model, its optimisers and the batch exist."""
    x, y = torch.rand(batch_size, 1, 28, 28), torch.arange(batch_size) % 10
    if method == "local":
        net = LocalLossNet()
        optimizers = local_optimizers(net)
        step = lambda: net.local_step(x, y, optimizers)  # noqa: E731
        parameters = sum(p.numel() for p in net.parameters())
    else:
        model = _noprop_model()
        modules = model.local_modules() if method == "noprop" else [model]
        optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-3) for m in modules]
        parameters = sum(p.numel() for p in model.parameters())

        def step():
            if method == "noprop":  # the noprop trainer's step: one module's graph and gradients at a time
                generator = torch.Generator().manual_seed(0)
                for index, optimizer in enumerate(optimizers):
                    model.local_loss(x, y, index, generator).backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            else:
                model(pixel_values=x, labels=y).loss.backward()
                optimizers[0].step()
                optimizers[0].zero_grad(set_to_none=True)
    before = _peak_rss()
    for _ in range(steps):
        step()
    return {"method": method, "batch_size": batch_size, "parameters": parameters,
            "peak_rss_rise_bytes": _peak_rss() - before, "parameter_bytes": parameters * 4}


def _peak_rss() -> int:
    """This process's peak resident set (VmHWM, bytes). Not getrusage's ru_maxrss: that one
    carries the parent's peak across fork + exec, so a child started by a big parent reads no rise."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measured_memory(batch_sizes=(128, 1024)) -> list[dict]:
    import subprocess
    import sys

    rows = []
    for batch_size in batch_sizes:
        for method in METHODS:
            out = subprocess.run([sys.executable, __file__, "--peak-memory", method, str(batch_size)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--peak-memory", nargs=2, metavar=("METHOD", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.peak_memory:  # the subprocess of measured_memory
        print(json.dumps(peak_training_memory(args.peak_memory[0], int(args.peak_memory[1]))))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not (RESULTS / "memory.json").exists() or "measured" not in json.loads((RESULTS / "memory.json").read_text()):
        saved = {str(b): memory(b) for b in (128, 1024)}
        (RESULTS / "memory.json").write_text(json.dumps({**saved["128"], "saved_by_batch": saved,
                                                         "measured": measured_memory()}, indent=2) + "\n")
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
                               "eval_accuracy_min": min(c["eval_accuracy"] for c in cells),
                               "eval_accuracy_max": max(c["eval_accuracy"] for c in cells),
                               "train_time_s_mean": statistics.mean(c["train_time_s"] for c in cells),
                               "epochs": args.epochs, "train_examples": args.train}
    (RESULTS / f"summary-e{args.epochs}-n{args.train}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
