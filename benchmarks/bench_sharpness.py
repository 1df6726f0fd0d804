#!/usr/bin/env python
"""analysis.sharpness against PyHessian (Yao et al. 2020) on the same model and batch.

    python benchmarks/bench_sharpness.py [--probes 64] [--repeats 5] [--out benchmarks/results/sharpness.json]

For each model (a two-layer ReLU net on XOR clusters, the zoo MLP on sklearn's digits), one
batch, cross-entropy, float32, one thread:

* agreement: PyHessian's Hutchinson draws its Rademacher probes from torch's global generator
  (``randint_like`` per parameter); we seed it, draw the same probes again, and compare the
  per-probe vᵀHv and their mean (relative differences); the top eigenvalue of PyHessian's power
  iteration (tol 1e-6) against our Lanczos;
* speed at equal probe count: PyHessian (its constructor's forward + backward with
  create_graph, then ``trace(maxIter=K)``, one autograd.grad per probe, early stop disabled)
  against ``HessianOperator`` + ``hutchinson`` (all K probes in one vmap over the gradient's
  pullback; and forward-over-reverse; and the pullback in chunks of 16 probes), and against
  ``hutchinson_trace`` over ``HessianOperator.quadratic_forms`` (the trace alone, as PyHessian's
  trace(): vᵀHv for all K probes by second-order forward mode over the traced loss, the trace
  itself included in the time). Runs alternate; medians and the ratio PyHessian / ours;
* where the time goes: torch.profiler's self-CPU time per op of one HessianOperator + 64-probe
  batched HVP (reverse mode), the top ops with their share — the evidence for what batching can
  and cannot save on a CPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wrap(model, input_name):
    """What PyHessian calls: an nn.Module ``(inputs) -> logits`` around the zoo model (same parameters)."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner(**{input_name: x}).logits

    return Wrapped()


def make_cases():
    import torch

    import zoo
    from zoo import data as zoo_data

    torch.manual_seed(0)
    xor = zoo_data.load("xor_cluster", split="train", dim=100, n_train=256, n_test=10, seed=0)[:]
    relu = zoo.create_model("two_layer_mlp", input_dim=100, hidden_dim=256, num_labels=2, activation="relu",
                            initializer_range=0.1)
    digits = zoo_data.load("digits", split="train")[:256]
    mlp = zoo.create_model("mlp", image_size=8, num_channels=1, hidden_sizes=[128, 64], num_labels=10)
    return [("two_layer_mlp relu 100-256-2, xor_cluster", relu, "input_features", xor["input_features"], xor["labels"]),
            ("mlp 64-128-64-10, digits", mlp, "pixel_values", digits["pixel_values"], digits["labels"])]


def pyhessian_probes(params, probes: int, seed: int):
    """The Rademacher vectors PyHessian's trace() draws after ``torch.manual_seed(seed)``, flattened."""
    import torch

    torch.manual_seed(seed)
    out = []
    for _ in range(probes):
        v = [torch.randint_like(p, high=2) for p in params]
        for vi in v:
            vi[vi == 0] = -1
        out.append(torch.cat([vi.reshape(-1) for vi in v]))
    return torch.stack(out)


def run_case(name, model, input_name, x, y, probes: int, repeats: int) -> dict:
    import torch
    from pyhessian import hessian as PyHessian

    from analysis.sharpness import HessianOperator, hutchinson, hutchinson_trace, lanczos

    model = model.eval()
    wrapped = wrap(model, input_name).eval()
    criterion = torch.nn.CrossEntropyLoss()
    batch = [{input_name: x, "labels": y}]
    params = [p for p in model.parameters() if p.requires_grad]

    # agreement on identical probes
    seed = 1234
    ph = PyHessian(wrapped, criterion, data=(x, y), cuda=False)
    torch.manual_seed(seed)
    theirs = torch.tensor(ph.trace(maxIter=probes, tol=-math.inf), dtype=torch.float64)
    vectors = pyhessian_probes(params, probes, seed)
    op = HessianOperator(model, batch, loss="cross_entropy")
    ours = (vectors.double() * op.hvps(vectors).double()).sum(1)
    per_probe = ((ours - theirs).abs() / theirs.abs().clamp_min(1e-12)).max().item()
    taylor = HessianOperator(model, batch, loss="cross_entropy")
    ours_taylor = taylor.quadratic_forms(vectors).double()
    assert taylor.quadratic_method == "taylor", taylor.quadratic_method
    per_probe_taylor = ((ours_taylor - theirs).abs() / theirs.abs().clamp_min(1e-12)).max().item()
    mean_rel = abs(ours.mean().item() - theirs.mean().item()) / abs(theirs.mean().item())
    torch.manual_seed(seed)
    ph_top = PyHessian(wrapped, criterion, data=(x, y), cuda=False).eigenvalues(maxIter=300, tol=1e-6)[0][0]
    our_top = lanczos(op.hvps, op.dim, k=1, iterations=60).eigenvalues[0]

    # speed, alternating
    def time_pyhessian():
        start = time.perf_counter()
        h = PyHessian(wrapped, criterion, data=(x, y), cuda=False)
        h.trace(maxIter=probes, tol=-math.inf)
        wrapped.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    def time_ours(mode, chunk=None):
        start = time.perf_counter()
        operator = HessianOperator(model, batch, loss="cross_entropy", mode=mode)
        hutchinson(operator.hvps, operator.dim, probes=probes, seed=0, chunk=chunk)
        return time.perf_counter() - start

    def time_taylor(chunk=None):
        start = time.perf_counter()
        operator = HessianOperator(model, batch, loss="cross_entropy")
        hutchinson_trace(lambda v: operator.quadratic_forms(v, chunk=chunk or probes), operator.dim, probes=probes,
                         seed=0)
        return time.perf_counter() - start

    time_pyhessian(), time_ours("reverse"), time_ours("forward"), time_ours("reverse", 16), time_taylor()  # warm-up
    timings = {"pyhessian": [], "ours_reverse": [], "ours_forward": [], "ours_reverse_chunk16": [], "ours_taylor": [],
               "ours_taylor_chunk16": []}
    for r in range(repeats):
        order = [("pyhessian", time_pyhessian), ("ours_reverse", lambda: time_ours("reverse")),
                 ("ours_forward", lambda: time_ours("forward")),
                 ("ours_reverse_chunk16", lambda: time_ours("reverse", 16)), ("ours_taylor", time_taylor),
                 ("ours_taylor_chunk16", lambda: time_taylor(16))]
        for key, fn in (order if r % 2 == 0 else order[::-1]):
            timings[key].append(fn())
    med = {k: statistics.median(v) for k, v in timings.items()}
    return {
        "case": name, "parameters": op.dim, "examples": int(x.shape[0]), "probes": probes,
        "trace_pyhessian": theirs.mean().item(), "trace_ours": ours.mean().item(),
        "trace_rel_diff": mean_rel, "per_probe_max_rel_diff": per_probe,
        "trace_taylor": ours_taylor.mean().item(), "per_probe_max_rel_diff_taylor": per_probe_taylor,
        "lambda_max_pyhessian": float(ph_top), "lambda_max_ours": float(our_top),
        "lambda_max_rel_diff": abs(our_top - ph_top) / abs(ph_top),
        "seconds": timings, "median_s": med,
        "speedup_reverse": med["pyhessian"] / med["ours_reverse"],
        "speedup_forward": med["pyhessian"] / med["ours_forward"],
        "speedup_reverse_chunk16": med["pyhessian"] / med["ours_reverse_chunk16"],
        "speedup_taylor": med["pyhessian"] / med["ours_taylor"],
        "speedup_taylor_chunk16": med["pyhessian"] / med["ours_taylor_chunk16"],
        "speedup_best": med["pyhessian"] / min(v for k, v in med.items() if k != "pyhessian"),
        "speedup_best_hvp": med["pyhessian"] / min(v for k, v in med.items() if not k.startswith(("pyhessian", "ours_taylor"))),
        "profile_reverse": profile_ours(model, batch, probes),
    }


def profile_ours(model, batch, probes: int, top: int = 8) -> dict:
    """Self-CPU time per op (torch.profiler) of HessianOperator + one batched HVP of `probes` probes."""
    from torch.profiler import ProfilerActivity, profile

    from analysis.sharpness import HessianOperator
    from analysis.sharpness.estimators import rademacher

    vectors = rademacher(probes, sum(p.numel() for p in model.parameters() if p.requires_grad))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        HessianOperator(model, batch, loss="cross_entropy").hvps(vectors)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return {"total_ms": total / 1e3,
            "top": [{"op": e.key, "calls": e.count, "self_ms": e.self_cpu_time_total / 1e3,
                     "share": e.self_cpu_time_total / total} for e in events[:top]]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sharpness.json"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import pyhessian  # noqa: F401  (pip install pyhessian: the bench extra)

    results = [run_case(*case, probes=args.probes, repeats=args.repeats) for case in make_cases()]
    out = {"torch": torch.__version__, "threads": 1, "dtype": "float32", "probes": args.probes,
           "load_average_1min": os.getloadavg()[0],  # a shared machine: how busy it was
           "repeats": args.repeats, "cases": results,
           "min_speedup_reverse": min(r["speedup_reverse"] for r in results),
           "min_speedup_best": min(r["speedup_best"] for r in results),
           "max_speedup_best": max(r["speedup_best"] for r in results),
           "min_speedup_taylor": min(r["speedup_taylor"] for r in results),
           "max_speedup_taylor": max(r["speedup_taylor"] for r in results),
           "min_speedup_taylor_chunk16": min(r["speedup_taylor_chunk16"] for r in results),
           "max_speedup_taylor_chunk16": max(r["speedup_taylor_chunk16"] for r in results),
           "min_speedup_best_hvp": min(r["speedup_best_hvp"] for r in results),
           "max_speedup_best_hvp": max(r["speedup_best_hvp"] for r in results),
           "max_per_probe_rel_diff_taylor": max(r["per_probe_max_rel_diff_taylor"] for r in results),
           "goal_3x_met": min(r["speedup_best"] for r in results) >= 3.0,
           "max_trace_rel_diff": max(r["trace_rel_diff"] for r in results),
           "max_per_probe_rel_diff": max(r["per_probe_max_rel_diff"] for r in results),
           "max_lambda_max_rel_diff": max(r["lambda_max_rel_diff"] for r in results)}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(out, handle, indent=1)
    for r in results:
        print(f"{r['case']}: {r['parameters']} params; trace {r['trace_ours']:.5g} vs {r['trace_pyhessian']:.5g} "
              f"(rel {r['trace_rel_diff']:.1e}, per probe {r['per_probe_max_rel_diff']:.1e}); λ_max {r['lambda_max_ours']:.5g} "
              f"vs {r['lambda_max_pyhessian']:.5g}; PyHessian {r['median_s']['pyhessian']:.3f} s, ours "
              f"{r['median_s']['ours_reverse']:.3f} s (reverse), {r['median_s']['ours_forward']:.3f} s (forward): "
              f"{r['speedup_reverse']:.2f}x / {r['speedup_forward']:.2f}x; taylor {r['median_s']['ours_taylor']:.3f} s: "
              f"{r['speedup_taylor']:.2f}x, chunks of 16 {r['median_s']['ours_taylor_chunk16']:.3f} s: "
              f"{r['speedup_taylor_chunk16']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
