#!/usr/bin/env python
"""Inference speed of the residual CNN's two layouts (zoo/models/residual_cnn): does one wide layer pay on CPU?

    python benchmarks/bench_shallow_parallel.py [--depths 2 4 8] [--filters 16 32] [--repeats 7]

For each (depth, filters): the same weights run as
- sequential: z ← z + F_i(z), i = 1..depth (depth convolutions of filters → filters, one after another);
- parallel:   z ← z + Σ F_i(z) as the model runs it, one convolution of filters → depth × filters;
- parallel, branch by branch: the same sum, one convolution per branch (what the wide layer saves
  over the same arithmetic done in pieces).
The three are timed in alternating rounds (so drift of the machine's load hits all alike);
reported: the median over rounds of each forward pass's wall and CPU time, and the median of the
per-round speedups sequential / parallel. The arithmetic (multiply-adds) is the same for all three.
Writes benchmarks/results/shallow-parallel.json.
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

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "shallow-parallel.json"


def timed(fn, x) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    fn(x)
    return time.perf_counter() - start, time.process_time() - start_cpu


def bench(depth: int, filters: int, args) -> dict:
    import zoo

    torch.manual_seed(0)
    config = dict(image_size=28, num_channels=1, filters=filters, depth=depth, kernel_size=args.kernel, num_labels=10)
    sequential = zoo.create_model("residual_cnn", layout="sequential", **config).eval()
    parallel = zoo.create_model("residual_cnn", layout="parallel", **config).eval()
    parallel.load_state_dict(sequential.state_dict())
    backbone = parallel.backbone

    def branchwise(x):
        z = backbone.stem_act(backbone.stem(x))
        z = z + sum(b(z) for b in backbone.branches)
        return parallel.classifier(z.flatten(1))

    x = torch.rand(args.batch_size, 1, 28, 28)
    runs = {"sequential": lambda v: sequential(pixel_values=v).logits,
            "parallel": lambda v: parallel(pixel_values=v).logits,
            "parallel_branchwise": branchwise}
    with torch.inference_mode():
        torch.testing.assert_close(runs["parallel"](x), branchwise(x), rtol=1e-4, atol=1e-5)
        for fn in runs.values():  # warm-up
            fn(x)
        rounds = []
        for _ in range(args.repeats):
            rounds.append({name: timed(fn, x) for name, fn in runs.items()})
    row = {"depth": depth, "filters": filters, "kernel_size": args.kernel, "batch_size": args.batch_size,
           "multiply_adds_per_image": depth * 28 * 28 * filters * filters * args.kernel**2}
    for name in runs:
        row[f"{name}_s"] = statistics.median(r[name][0] for r in rounds)
        row[f"{name}_cpu_s"] = statistics.median(r[name][1] for r in rounds)
    for name in ("parallel", "parallel_branchwise"):
        row[f"speedup_{name}"] = statistics.median(r["sequential"][0] / r[name][0] for r in rounds)
    print(f"depth {depth:2d} filters {filters:3d}: sequential {row['sequential_s'] * 1e3:7.1f} ms, "
          f"parallel {row['parallel_s'] * 1e3:7.1f} ms (x{row['speedup_parallel']:.2f}), "
          f"branchwise {row['parallel_branchwise_s'] * 1e3:7.1f} ms (x{row['speedup_parallel_branchwise']:.2f})", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--filters", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    rows = [bench(d, f, args) for f in args.filters for d in args.depths]
    result = {"machine": {"torch": torch.__version__, "threads": torch.get_num_threads(), "cores": os.cpu_count(),
                          "cpu": platform.processor() or platform.machine(), "load_average": os.getloadavg()},
              "repeats": args.repeats, "rows": rows,
              "median_speedup_parallel": statistics.median(r["speedup_parallel"] for r in rows),
              "median_speedup_parallel_branchwise": statistics.median(r["speedup_parallel_branchwise"] for r in rows)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
