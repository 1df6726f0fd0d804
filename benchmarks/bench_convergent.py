"""Benchmark analysis.convergent: the matching, and the streaming correlation pass.

Matching (two layers of --units units, realistic ReLU activations from a shared latent):
  ours        LayerStatistics → correlation → match_units (linear_sum_assignment + semi-matching)
  networkx    the reference implementation's approach: max_weight_matching on the complete
              bipartite graph (at --nx-units only: it grows as n³); same total correlation checked

Correlation pass (two or more models, the same inputs, the chosen layers):
  bare        the models' own forward passes over the inputs (the baseline)
  streaming   analysis.convergent.collect_statistics (hooks → float64 running sums), with and
              without the within-model Gram matrices
  stored      every activation kept (float32), then numpy.corrcoef over all of them
Time: median over --repeats of process CPU time (robust when other jobs share the cores; torch
runs on one thread), wall time beside it. Memory: peak RSS above the RSS before the call, one
forked process per method (VmHWM reset through /proc/self/clear_refs). Fidelity: max |Δr|
between the streamed and the numpy correlations.

    OMP_NUM_THREADS=1 python benchmarks/bench_convergent.py
    OMP_NUM_THREADS=1 python benchmarks/bench_convergent.py --skip-matching --limit 16 --batch-size 4 \\
        --models SMOLLM2.gguf SMOLLM2.gguf --layers model.layers.0.mlp.act_fn model.layers.15.mlp.act_fn
    OMP_NUM_THREADS=1 python benchmarks/bench_convergent.py --models convnet-fashion-mnist-seed0 \\
        convnet-fashion-mnist-seed1 --layers blocks.0.act blocks.1.act fc_act --limit 2000
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

import numpy as np
import torch

from analysis import convergent as cv


def timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def synthetic_layers(units: int, samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((samples, 64)).astype(np.float32)
    a = np.maximum(latent @ rng.standard_normal((64, units)).astype(np.float32)
                   + rng.standard_normal((samples, units)).astype(np.float32), 0)
    b = np.maximum(latent @ rng.standard_normal((64, units)).astype(np.float32)
                   + rng.standard_normal((samples, units)).astype(np.float32), 0)
    return torch.from_numpy(a), torch.from_numpy(b)


def bench_matching(units: int, samples: int, nx_units: list[int]) -> dict:
    a, b = synthetic_layers(units, samples)
    stats = cv.LayerStatistics([units, units], within=False)
    for start in range(0, samples, 512):
        stats.update([a[start:start + 512], b[start:start + 512]])

    def whole():
        corr = stats.correlation(0, 1)
        return cv.match_units(corr, ~stats.dead(0), ~stats.dead(1))

    runs = [timed(whole) for _ in range(3)]
    from scipy.optimize import linear_sum_assignment

    corr = stats.correlation(0, 1)
    lsa = [timed(lambda: linear_sum_assignment(corr, maximize=True)) for _ in range(3)]
    # the parts of match_units, each against the plain numpy/scipy call it replaces
    reduced = corr.max(1)[:, None] - corr
    reduced -= reduced.min(0)
    parts = {
        "correlation_from_sums": lambda: stats.correlation(0, 1),
        "linear_sum_assignment_on_reduced_cost": lambda: linear_sum_assignment(reduced),
        "numpy_argmax_axis0": lambda: corr.argmax(0),
        "column_argmax_via_max": lambda: cv.column_argmax(corr),
    }
    result = {"units": units, "samples": samples,
              "ours_wall_s": statistics.median(r[2] for r in runs), "ours_cpu_s": statistics.median(r[1] for r in runs),
              "linear_sum_assignment_alone_cpu_s": statistics.median(r[1] for r in lsa),
              "parts_cpu_s": {name: statistics.median(timed(fn)[1] for _ in range(3)) for name, fn in parts.items()}}
    import networkx as nx

    result["networkx"] = []
    for n in nx_units:
        corr = stats.correlation(0, 1)[:n, :n]
        graph = nx.Graph()
        graph.add_weighted_edges_from((("a", i), ("b", j), float(corr[i, j])) for i in range(n) for j in range(n))
        pairs, nx_cpu, nx_wall = timed(lambda: nx.max_weight_matching(graph, maxcardinality=True))
        nx_total = sum(corr[(u if u[0] == "a" else v)[1], (v if v[0] == "b" else u)[1]] for u, v in pairs)
        ours, cpu, wall = timed(lambda: cv.match_units(corr))
        result["networkx"].append({"units": n, "networkx_wall_s": nx_wall, "ours_wall_s": wall,
                                   "speedup": nx_wall / wall, "same_total": bool(abs(nx_total - np.nansum(ours.value)) < 1e-6)})
    return result


# --- correlation pass ----------------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _bare(models, batches, layers):
    with torch.inference_mode():
        for batch in batches:
            for model in models:
                model(**batch)


def _streaming(models, batches, layers, within=True):
    stats, _ = cv.collect_statistics(models, layers, iter(batches), within=within, progress=False)
    return {layer: s.correlation(0, 1) for layer, s in stats.items()}


def _stored(models, batches, layers):
    store = {(m, layer): [] for m in range(len(models)) for layer in layers}
    handles = []
    for m, model in enumerate(models):
        modules = dict(model.named_modules())
        for layer in layers:
            handles.append(modules[layer].register_forward_hook(
                lambda mod, i, o, key=(m, layer): store[key].append(cv.flatten_units(o).clone())))
    try:
        _bare(models, batches, layers)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for layer in layers:
        a = torch.cat(store.pop((0, layer))).numpy()
        b = torch.cat(store.pop((1, layer))).numpy()
        joint = np.corrcoef(np.concatenate([a, b], axis=1), rowvar=False)
        out[layer] = joint[: a.shape[1], a.shape[1]:]
    return out


METHODS = {"bare": _bare, "streaming": _streaming,
           "streaming_cross_only": lambda m, b, l: _streaming(m, b, l, within=False), "stored": _stored}


def _child(name, models, batches, layers, queue):
    torch.set_num_threads(1)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak RSS
    except OSError:
        pass
    before = _rss_kib("VmRSS")
    _, cpu, wall = timed(lambda: METHODS[name](models, batches, layers))
    queue.put((name, (_rss_kib("VmHWM") - before) / 1024, cpu, wall))


def bench_pass(model_names: list[str], layers: list[str], data: str, limit: int, batch_size: int, repeats: int) -> dict:
    loaded = cv.load_models(model_names)
    models = [item.model for item in loaded]
    if getattr(models[0], "main_input_name", "input_ids") == "input_ids":  # language models: packed built-in text
        _, it = cv.text_batches([item.tokenizer for item in loaded], model_names, num_prompts=limit,
                                max_tokens=128, batch_size=batch_size)
        data = "built-in English text, 128-token prompts"
    else:
        _, it = cv.image_batches(data, split="test", limit=limit, batch_size=batch_size)
    batches = list(it)
    # fidelity, one run each
    stream = _streaming(models, batches, layers)
    stored = _stored(models, batches, layers)
    max_diff = max(float(np.nanmax(np.abs(stream[l] - np.nan_to_num(stored[l])))) for l in layers)
    # time: alternate the methods, median over repeats
    times = {name: [] for name in METHODS}
    for _ in range(repeats):
        for name, fn in METHODS.items():
            _, cpu, wall = timed(lambda: fn(models, batches, layers))
            times[name].append((cpu, wall))
    # memory: one forked process per method
    ctx = mp.get_context("fork")
    memory = {}
    for name in METHODS:
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(name, models, batches, layers, queue))
        proc.start()
        got = queue.get()
        proc.join()
        memory[name] = got[1]
    cpu = {n: statistics.median(t[0] for t in v) for n, v in times.items()}
    wall = {n: statistics.median(t[1] for t in v) for n, v in times.items()}
    return {
        "models": model_names, "layers": layers, "inputs": f"{data} [:{limit}]", "batch_size": batch_size,
        "cpu_s": cpu, "wall_s": wall, "peak_mib_above_start": memory,
        "overhead_vs_bare_cpu": {n: cpu[n] / cpu["bare"] - 1 for n in ("streaming", "streaming_cross_only")},
        "stored_over_streaming_cpu": cpu["stored"] / cpu["streaming"],
        "stored_over_streaming_memory": memory["stored"] / max(memory["streaming"], 1e-3),
        "max_abs_diff_r": max_diff,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=4096)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--nx-units", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--models", nargs="+", default=["convnet-fashion-mnist-seed0", "convnet-fashion-mnist-seed1"])
    parser.add_argument("--layers", nargs="+", action="append", default=None,
                        help="a layer set (repeat the option for several sets)")
    parser.add_argument("--data", default="fashion_mnist")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-matching", action="store_true")
    parser.add_argument("--skip-pass", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    layer_sets = args.layers or [["blocks.0.act", "blocks.1.act", "fc_act"], ["blocks.1.act", "fc_act"], ["fc_act"]]
    results = {"threads": torch.get_num_threads(), "load_average": os.getloadavg()}
    if not args.skip_matching:
        results["matching"] = bench_matching(args.units, args.samples, args.nx_units)
        print(json.dumps(results["matching"], indent=1), flush=True)
    results["pass"] = []
    for layers in ([] if args.skip_pass else layer_sets):
        r = bench_pass(args.models, layers, args.data, args.limit, args.batch_size, args.repeats)
        results["pass"].append(r)
        print(json.dumps(r, indent=1), flush=True)
    results["load_average_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
