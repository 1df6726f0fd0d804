"""CUDA checks of the analysis tools, for a machine with a GPU (CI has none; run by hand).

Checks that the GPU paths compute the same things as the CPU paths, and times them:

* layer dropping: on tiny Llama / Mistral / Qwen2 / Qwen3 models on the GPU, a dropped model's
  greedy generation with a KV cache equals generation without one, the cache stores nothing for
  the dropped layers, and the GPU logits match the CPU logits; bf16 generation runs;
* layer-dropping speed: a SmolLM2-135M-shaped Llama (random weights: speed does not depend on
  them) in bf16, prefill and decode of the full model against 15 attention / MLP / block drops,
  and the ratio of the saving to the dropped modules' own (hook-timed) time, as in
  benchmarks/bench_drop.py;
* convergent learning: streamed statistics of CUDA activations equal ``numpy.corrcoef``, two
  convnets on the GPU give the CPU's correlations, and the statistics' cost over the bare forward.

    python benchmarks/gpu_check.py --out results.json   (with the package installed, or PYTHONPATH=.)

Needs torch with CUDA, transformers, scipy (no data sets, no downloads). Exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import traceback

import numpy as np
import torch

from analysis import convergent as cv
from analysis import drop as D
from analysis.models import DecoderAdapter
from analysis.testing import make_tiny, random_prompts

CUDA = torch.device("cuda")


def check_drop_correctness() -> dict:
    out = {}
    for family in ("llama", "mistral", "qwen2", "qwen3"):
        model = make_tiny(family, num_layers=4)
        D.drop_modules(model, "attn", [0, 2])
        D.drop_modules(model, "mlp", [1])
        ids = torch.stack(random_prompts(lengths=(10, 10)))
        with torch.no_grad():
            cpu_logits = model(input_ids=ids, use_cache=False).logits
        model = model.to(CUDA)
        with torch.no_grad():
            gpu_logits = model(input_ids=ids.to(CUDA), use_cache=False).logits.cpu()
        kwargs = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0)
        plain = model.generate(ids.to(CUDA), use_cache=False, **kwargs)
        from analysis.dropped_modeling import modeling_dropped

        if modeling_dropped.DummyLayer is None:  # transformers < 5.23: a cache must be refused, clearly
            try:
                model.generate(ids.to(CUDA), use_cache=True, **kwargs)
                refused = ""
            except RuntimeError as error:
                refused = str(error)
            out[family] = {"max_abs_logit_diff_gpu_vs_cpu": float((gpu_logits - cpu_logits).abs().max()),
                           "cache_refused": refused, "generate_without_cache_shape": list(plain.shape)}
            out[family]["ok"] = out[family]["max_abs_logit_diff_gpu_vs_cpu"] < 1e-4 and "transformers >= 5.23" in refused
            continue
        cached = model.generate(ids.to(CUDA), use_cache=True, **kwargs)
        from transformers import DynamicCache
        from transformers.cache_utils import DummyLayer

        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            DecoderAdapter(model).with_cache(ids.to(CUDA), cache)
        bf16 = copy.deepcopy(model).to(torch.bfloat16)
        bf16_tokens = bf16.generate(ids.to(CUDA), use_cache=True, **kwargs)
        out[family] = {
            "max_abs_logit_diff_gpu_vs_cpu": float((gpu_logits - cpu_logits).abs().max()),
            "generate_cache_equals_no_cache": bool(torch.equal(cached, plain)),
            "dummy_slots": [isinstance(layer, DummyLayer) for layer in cache.layers],
            "kv_bytes": D.kv_cache_bytes(cache),
            "bf16_generate_shape": list(bf16_tokens.shape),
        }
        out[family]["ok"] = (out[family]["max_abs_logit_diff_gpu_vs_cpu"] < 1e-4 and out[family]["generate_cache_equals_no_cache"]
                             and out[family]["dummy_slots"] == [True, False, True, False])
    return out


def smollm2_shaped(dtype) -> torch.nn.Module:
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=100000.0,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).to(CUDA, dtype).eval()


def check_drop_speed(new_tokens: int, repeats: int) -> dict:
    model = smollm2_shaped(torch.bfloat16)
    prompt = torch.randint(3, 49152, (128,))
    D.throughput(model, prompt, new_tokens=4, repeats=1)  # warm-up (kernels, allocator)
    timing = D.module_times(model, prompt, new_tokens=new_tokens, repeats=repeats)
    runs = []
    chosen = list(range(1, 30, 2))  # 15 layers; speed does not depend on which
    for kind in ("attn", "mlp", "block"):
        work = copy.deepcopy(model)
        D.drop_modules(work, kind, chosen)
        full_a = D.throughput(model, prompt, new_tokens=new_tokens, repeats=repeats)
        dropped = D.throughput(work, prompt, new_tokens=new_tokens, repeats=repeats)
        full_b = D.throughput(model, prompt, new_tokens=new_tokens, repeats=repeats)
        del work
        full_prefill = min(full_a["prefill_s"], full_b["prefill_s"])
        full_decode = min(full_a["decode_s_per_token"], full_b["decode_s_per_token"])
        module_prefill = sum(timing["prefill"][kind][l] for l in chosen)
        module_decode = sum(timing["decode"][kind][l] for l in chosen)
        runs.append({
            "kind": kind, "k": len(chosen),
            "prefill_full_ms": 1e3 * full_prefill, "prefill_dropped_ms": 1e3 * dropped["prefill_s"],
            "prefill_speedup": full_prefill / dropped["prefill_s"],
            "prefill_ratio": (full_prefill - dropped["prefill_s"]) / module_prefill,
            "decode_full_ms": 1e3 * full_decode, "decode_dropped_ms": 1e3 * dropped["decode_s_per_token"],
            "decode_speedup": full_decode / dropped["decode_s_per_token"],
            "decode_ratio": (full_decode - dropped["decode_s_per_token"]) / module_decode,
            "kv_bytes_per_token": dropped["kv_bytes_per_token"], "kv_bytes_per_token_full": full_a["kv_bytes_per_token"],
        })
    return {"dtype": "bfloat16", "prompt_tokens": 128, "new_tokens": new_tokens,
            "share": {p: timing[p]["share"] for p in timing},
            "hooked_total_ms": {p: 1e3 * timing[p]["total_s"] for p in timing}, "runs": runs}


def check_convergent(images_count: int) -> dict:
    out = {}
    # streamed statistics of CUDA activations (conv layout, a large mean) against numpy
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((40, 6, 7, 7))).float() + 100.0
    b = torch.from_numpy(rng.standard_normal((40, 5, 7, 7))).float() + a[:, :5]
    stats = cv.LayerStatistics([6, 5])
    for part in (slice(0, 17), slice(17, 40)):
        stats.update([cv.flatten_units(a[part].to(CUDA), copy=False), cv.flatten_units(b[part].to(CUDA), copy=False)])
    xa = a.double().numpy().transpose(1, 0, 2, 3).reshape(6, -1)
    xb = b.double().numpy().transpose(1, 0, 2, 3).reshape(5, -1)
    expected = np.corrcoef(np.concatenate([xa, xb]))
    out["stats_device"] = str(stats.sum[0].device)
    out["max_abs_diff_vs_corrcoef"] = float(max(np.abs(stats.correlation(0, 1) - expected[:6, 6:]).max(),
                                                np.abs(stats.correlation(0, 0) - expected[:6, :6]).max()))
    # two random convnets, CPU against GPU, and the GPU pass's overhead over the bare forward
    models = [_seeded_convnet(seed) for seed in (0, 1)]
    layers = ["blocks.0.act", "blocks.1.act", "fc_act"]
    images = torch.rand(2000, 1, 28, 28)
    batches = [{"pixel_values": images[i:i + 250]} for i in range(0, 2000, 250)]
    cpu_stats, _ = cv.collect_statistics(models, layers, iter(batches), progress=False)
    gpu_models = [copy.deepcopy(m).to(CUDA) for m in models]
    gpu_stats, _ = cv.collect_statistics(gpu_models, layers, iter(batches), progress=False)
    out["cpu_vs_gpu_max_abs_diff_r"] = float(max(np.abs(cpu_stats[l].correlation(0, 1) - gpu_stats[l].correlation(0, 1)).max()
                                                 for l in layers))
    big = torch.rand(images_count, 1, 28, 28, device=CUDA)
    big_batches = [{"pixel_values": big[i:i + 2000]} for i in range(0, images_count, 2000)]

    def bare():
        with torch.inference_mode():
            for batch in big_batches:
                for m in gpu_models:
                    m(**batch)

    def streaming(within):
        stats, _ = cv.collect_statistics(gpu_models, layers, iter(big_batches), within=within, progress=False)
        return {l: s.correlation(0, 1) for l, s in stats.items()}

    times = {}
    for name, fn in (("bare", bare), ("streaming", lambda: streaming(True)), ("cross_only", lambda: streaming(False))):
        fn()
        best = []
        for _ in range(3):
            torch.cuda.synchronize(CUDA)
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize(CUDA)
            best.append(time.perf_counter() - start)
        times[name] = min(best)
    out["pass_s"] = times
    out["overhead_vs_bare"] = {n: times[n] / times["bare"] - 1 for n in ("streaming", "cross_only")}
    out["ok"] = (out["max_abs_diff_vs_corrcoef"] < 2e-5 and out["cpu_vs_gpu_max_abs_diff_r"] < 1e-4
                 and out["stats_device"].startswith(CUDA.type))
    return out


def _seeded_convnet(seed: int):
    import zoo

    torch.manual_seed(seed)
    return zoo.create_model("convnet", image_size=28, num_channels=1, channels=[16, 32], hidden_size=128, num_labels=10).eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="JSON results")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=20000, help="inputs of the convergent timing pass")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of this script where there is no GPU")
    parser.add_argument("--only", nargs="+", default=None, choices=["drop_correctness", "convergent", "drop_speed"])
    args = parser.parse_args(argv)
    global CUDA
    CUDA = torch.device(args.device)
    if CUDA.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this script checks the GPU paths (--device cpu for a dry run)", file=sys.stderr)
        return 2
    import transformers

    results = {"device": torch.cuda.get_device_name() if CUDA.type == "cuda" else "cpu (dry run)",
               "torch": torch.__version__, "transformers": transformers.__version__}
    print(json.dumps(results), flush=True)
    failed = False
    for name, fn in (("drop_correctness", check_drop_correctness),
                     ("convergent", lambda: check_convergent(args.images)),
                     ("drop_speed", lambda: check_drop_speed(args.new_tokens, args.repeats))):
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            results[name] = fn()
        except Exception:  # report every section, even after one breaks
            results[name] = {"error": traceback.format_exc()}
        results[name]["seconds"] = time.perf_counter() - start
        failed |= "error" in results[name] or results[name].get("ok") is False or any(
            isinstance(v, dict) and v.get("ok") is False for v in results[name].values())
        print(name, json.dumps(results[name], indent=1), flush=True)
        if args.out:
            with open(args.out, "w") as handle:
                json.dump(results, handle, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
