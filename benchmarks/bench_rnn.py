"""Recurrent models on CPU: our written-out LSTM against torch.nn.LSTM, and the sparse RNN's
recurrent step at 90 % sparsity against the dense step.

Training throughput (default part): one Adam step (forward, backward, update) of
rnn_classifier's LSTM and of torch.nn.LSTM + the same Linear head driven directly, same
weights, same batch (Fashion-MNIST-rows shape: 28 steps of 28 features, batch 128, 64 units).
--rounds rounds alternate the runners in a rotating order, --steps steps each; the ratio is the
median over rounds of ours / torch's time (1.0 = no overhead; the goal is <= 1.05), quartiles
beside it, by wall and by CPU time (the steadier measure on a shared machine), and the ratio of
the total CPU times. With
padding masks too (our layer with an all-ones attention_mask: the masked path's cost), with
a padded batch (lengths 14..28: our compacted unpacked path against torch.nn.LSTM on the packed
sequence), and the step-by-step loop (the path a recurrent weight mask takes; no fused kernel).

Sparse step: the recurrent matmul h @ W_hh^T (batch 32, 4 gates) with W_hh 90 % zeros, as a
dense matrix and as torch's CSR sparse matrix, for hidden sizes 64 .. 2048: where the sparse
kernel starts paying on this CPU.

    OMP_NUM_THREADS=1 python benchmarks/bench_rnn.py --threads 1 --out benchmarks/results/rnn.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

import zoo


def quartiles(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2]}


class TorchLSTMClassifier(torch.nn.Module):
    """torch.nn.LSTM + Linear on the final state: the reference rnn_classifier's LSTM is checked against."""

    def __init__(self, ours):
        super().__init__()
        c = ours.config
        self.lstm = torch.nn.LSTM(c.input_size, c.hidden_size, batch_first=True)
        self.head = torch.nn.Linear(c.hidden_size, c.num_labels)
        layer = ours.rnn.stack.layers[0][0]
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.lstm, f"{name}_l0").copy_(getattr(layer, name))
            self.head.load_state_dict(ours.classifier.state_dict())

    def forward(self, x, labels, lengths=None):
        if lengths is not None:  # a padded batch: torch's packed sequence
            x = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(x)
        return torch.nn.functional.cross_entropy(self.head(h[-1]), labels)


def training_throughput(args) -> dict:
    torch.manual_seed(0)
    ours = zoo.create_model("rnn_classifier", input_size=28, hidden_size=args.hidden, cell="lstm", num_labels=10, max_steps=28)
    reference = TorchLSTMClassifier(ours)
    x, labels = torch.rand(args.batch, 28, 28), torch.randint(0, 10, (args.batch,))
    mask = torch.ones(args.batch, 28, dtype=torch.long)
    lengths = torch.randint(14, 29, (args.batch,), generator=torch.Generator().manual_seed(0))
    padded_mask = (torch.arange(28)[None] < lengths[:, None]).long()
    loop = zoo.create_model("rnn_classifier", input_size=28, hidden_size=args.hidden, cell="lstm", num_labels=10, max_steps=28)
    loop.load_state_dict(ours.state_dict())
    loop.rnn.stack.layers[0][0].fused = False
    with torch.no_grad():  # the same function: the check that the comparison is fair
        ours_loss = ours(input_features=x, labels=labels).loss
        assert torch.allclose(ours_loss, reference(x, labels), atol=1e-5)
        assert torch.allclose(loop(input_features=x, labels=labels).loss, ours_loss, atol=1e-5)
        padded_loss = ours(input_features=x, attention_mask=padded_mask, labels=labels).loss
        assert torch.allclose(padded_loss, reference(x, labels, lengths), atol=1e-5)
    runners = {
        "ours": (ours, lambda: ours(input_features=x, labels=labels).loss),
        "ours_masked": (ours, lambda: ours(input_features=x, attention_mask=mask, labels=labels).loss),
        "ours_padded": (ours, lambda: ours(input_features=x, attention_mask=padded_mask, labels=labels).loss),
        "torch_padded": (reference, lambda: reference(x, labels, lengths)),
        "ours_loop": (loop, lambda: loop(input_features=x, labels=labels).loss),
        "torch": (reference, lambda: reference(x, labels)),
    }
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=1e-3) for name, (model, _) in runners.items()}
    times = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    names = list(runners)
    for round_index in range(args.rounds):  # a rotating order: no runner always goes first or after another
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            model, loss_fn = runners[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                loss = loss_fn()
                optimizers[name].zero_grad(set_to_none=True)
                loss.backward()
                optimizers[name].step()
            times[name].append((time.perf_counter() - start) / args.steps)
            cpu[name].append((time.process_time() - start_cpu) / args.steps)

    def ratios(clock, name, reference="torch"):
        return quartiles([o / t for o, t in zip(clock[name], clock[reference])])

    return {
        "batch": args.batch, "steps_per_sequence": 28, "features": 28, "hidden": args.hidden, "rounds": args.rounds,
        "steps_per_round": args.steps,
        "step_s": {name: quartiles(v) for name, v in times.items()},
        "step_cpu_s": {name: quartiles(v) for name, v in cpu.items()},
        "examples_per_s": {name: args.batch / statistics.median(v) for name, v in times.items()},
        "ratio_ours_over_torch": ratios(times, "ours"), "ratio_masked_over_torch": ratios(times, "ours_masked"),
        "ratio_ours_over_torch_cpu": ratios(cpu, "ours"), "ratio_masked_over_torch_cpu": ratios(cpu, "ours_masked"),
        "ratio_padded_over_torch_padded": ratios(times, "ours_padded", "torch_padded"),
        "ratio_padded_over_torch_padded_cpu": ratios(cpu, "ours_padded", "torch_padded"),
        "ratio_loop_over_torch_cpu": ratios(cpu, "ours_loop"),
        "ratio_of_total_cpu": {name: sum(cpu[name]) / sum(cpu["torch"]) for name in runners},
        "goal_met_cpu": ratios(cpu, "ours")["median"] <= 1.05,
    }


def sparse_step(args) -> dict:
    rows = []
    for hidden in args.sparse_sizes:
        torch.manual_seed(0)
        weight = torch.randn(4 * hidden, hidden)
        weight[torch.rand_like(weight) < args.sparsity] = 0.0
        sparse = weight.to_sparse_csr()
        h = torch.randn(32, hidden)
        assert torch.allclose(torch.sparse.mm(sparse, h.T).T, h @ weight.T, atol=1e-3)
        repeats = max(5, int(2e8 / (weight.numel() * 32)))
        dense_t, sparse_t = [], []
        for _ in range(args.sparse_rounds):  # CPU time: the machine may be shared
            start = time.process_time()
            for _ in range(repeats):
                h @ weight.T
            dense_t.append((time.process_time() - start) / repeats)
            start = time.process_time()
            for _ in range(repeats):
                torch.sparse.mm(sparse, h.T)
            sparse_t.append((time.process_time() - start) / repeats)
        rows.append({"hidden": hidden, "dense_s": statistics.median(dense_t), "sparse_s": statistics.median(sparse_t),
                     "speedup": statistics.median(d / s for d, s in zip(dense_t, sparse_t)),
                     "measured_sparsity": float((weight == 0).float().mean())})
    paying = [r["hidden"] for r in rows if r["speedup"] > 1.0]
    return {"sparsity": args.sparsity, "batch": 32, "rows": rows, "sparse_pays_from_hidden": min(paying) if paying else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=61)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--sparse-rounds", type=int, default=7)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--sparse-sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--out", default="benchmarks/results/rnn.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {"machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads,
                          "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()[0]},
              "training": training_throughput(args), "sparse_step": sparse_step(args)}
    result["machine"]["load_average_at_end"] = os.getloadavg()[0]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(json.dumps({"ratio_cpu": result["training"]["ratio_ours_over_torch_cpu"]["median"],
                      "padded_cpu": result["training"]["ratio_padded_over_torch_padded_cpu"]["median"], "sparse_pays_from": result["sparse_step"]["sparse_pays_from_hidden"]}))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
