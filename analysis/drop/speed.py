"""What dropping gains: prefill / decode throughput, KV-cache bytes, per-module time shares.

Timing helpers take ``clock="wall"`` (elapsed time) or ``"cpu"`` (this process's CPU time).
"""
from __future__ import annotations

import math
import statistics
import time

import torch
from torch import nn

from ..errors import UserError
from ..hooks import Hooks
from ..models import DecoderAdapter, as_adapter
from .scores import KINDS

__all__ = ["CLOCKS", "timer", "kv_cache_bytes", "own_memory", "throughput", "module_times", "hook_overhead",
           "quartiles", "paired_rounds", "speed_interval", "compare_speed", "format_interval"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = ("wall", "cpu")


def timer(clock: str):
    """``wall``: elapsed time; ``cpu``: this process's CPU time, which other processes on a
    shared machine do not inflate (exact for single-threaded CPU runs; not for GPUs)."""
    if clock == "wall":
        return time.perf_counter
    if clock == "cpu":
        return time.process_time
    raise UserError(f"unknown clock {clock!r} (wall or cpu)")


def _new_cache(model):
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def kv_cache_bytes(cache) -> int:
    """Bytes held by the keys and values in a transformers cache."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


@torch.no_grad()
def own_memory(model) -> nn.Module:
    """Re-home every parameter and buffer of ``model`` into memory torch allocated, in place (one
    tensor at a time, so the peak grows by one tensor), and return the model.

    Speed comparisons need this. The dropped models are ``copy.deepcopy``s, allocated by torch;
    a loaded model's weights may sit in memory another allocator made. The GGUF loader's come from
    numpy, which asks the kernel for transparent huge pages: there the 49 152 x 576 LM-head
    matvec of SmolLM2 runs ~1.43x faster (11.5 vs 16.5 ms; ``bench_drop.py --memory``), so a
    full model in numpy memory decoded ~5 ms per token faster than its own deep copy, and the drop benchmark credited dropped
    attention with only 0.71-0.80 of its time instead of ~1.0. (``THP_MEM_ALLOC_ENABLE=1`` in the
    environment before torch starts gives torch's own allocations huge pages too.)"""
    module = getattr(model, "model", model) if isinstance(model, DecoderAdapter) else model
    for tensor in list(module.parameters()) + list(module.buffers()):
        tensor.data = tensor.detach().clone()
    return model


@torch.no_grad()
def throughput(model, prompt: torch.Tensor, *, new_tokens: int = 32, repeats: int = 3,
               batch_size: int = 1, clock: str = "wall") -> dict:
    """Prefill tokens/s (one forward over ``prompt`` with a fresh cache) and greedy decoding
    tokens/s (``new_tokens`` one-token forwards with the cache), best of ``repeats`` (the best
    time is the least disturbed one on a shared machine); KV-cache bytes after decoding."""
    adapter = as_adapter(model)
    device = adapter.device
    ids = prompt.reshape(1, -1).repeat(batch_size, 1).to(device)
    now = timer(clock)
    prefill_times, decode_times = [], []
    kv_bytes = 0
    for _ in range(max(1, repeats)):
        cache = _new_cache(adapter.model)
        _sync(device)
        start = now()
        out = adapter.with_cache(ids, cache)
        _sync(device)
        prefill_times.append(now() - start)
        token = out.logits[:, -1:].argmax(-1)
        _sync(device)
        start = now()
        for _ in range(new_tokens):
            out = adapter.with_cache(token, cache)
            token = out.logits[:, -1:].argmax(-1)
        _sync(device)
        decode_times.append(now() - start)
        kv_bytes = kv_cache_bytes(cache)
    prefill, decode = min(prefill_times), min(decode_times)
    length = ids.shape[1] + new_tokens
    return {
        "prefill_tokens_per_s": ids.numel() / prefill,
        "decode_tokens_per_s": new_tokens * batch_size / decode if new_tokens else float("nan"),
        "prefill_s": prefill,
        "decode_s_per_token": decode / max(1, new_tokens),
        "kv_cache_bytes": kv_bytes,
        "kv_bytes_per_token": kv_bytes / (length * batch_size),
        "prompt_tokens": int(ids.shape[1]),
        "new_tokens": new_tokens,
        "batch_size": batch_size,
        "clock": clock,
    }


@torch.no_grad()
def module_times(model, prompt: torch.Tensor, *, new_tokens: int = 32, repeats: int = 3,
                 clock: str = "wall") -> dict:
    """Seconds each layer's attention (pre-norm + attention), MLP (pre-norm + MLP) and whole
    block take, in the prefill of ``prompt`` and per decoded token, timed by forward hooks
    (best of ``repeats``), with the whole forward's time: the share of time each kind takes."""
    adapter = as_adapter(model)
    device = adapter.device
    L = adapter.num_layers
    now = timer(clock)
    marks: dict[str, float] = {}
    acc = {k: [0.0] * L for k in KINDS}

    def start(key):
        def hook(*_):
            _sync(device)
            marks[key] = now()
        return hook

    def stop(kind, key, l):
        def hook(*_):
            _sync(device)
            acc[kind][l] += now() - marks[key]
        return hook

    hooks = Hooks(adapter)
    for l in range(L):
        layer = adapter.layer(l)
        hooks.pre(adapter.attn_norm(l), start(f"a{l}"))
        hooks.forward(adapter.attn(l), stop("attn", f"a{l}", l))
        hooks.pre(adapter.mlp_norm(l), start(f"m{l}"))
        hooks.forward(adapter.mlp(l), stop("mlp", f"m{l}", l))
        hooks.pre(layer, start(f"b{l}"))
        hooks.forward(layer, stop("block", f"b{l}", l))
    ids = prompt.reshape(1, -1).to(device)
    best: dict[str, dict] = {}
    with hooks:
        for _ in range(max(1, repeats)):
            for phase in ("prefill", "decode"):
                for k in KINDS:
                    acc[k] = [0.0] * L
                cache = _new_cache(adapter.model) if phase == "prefill" else cache
                _sync(device)
                begin = now()
                if phase == "prefill":
                    out = adapter.with_cache(ids, cache)
                    steps = 1
                else:
                    token = out.logits[:, -1:].argmax(-1)
                    for _ in range(new_tokens):
                        out = adapter.with_cache(token, cache)
                        token = out.logits[:, -1:].argmax(-1)
                    steps = max(1, new_tokens)
                _sync(device)
                total = (now() - begin) / steps
                entry = {"total_s": total, **{k: [t / steps for t in acc[k]] for k in KINDS}}
                if phase not in best or total < best[phase]["total_s"]:
                    best[phase] = entry
    overhead = hook_overhead(adapter.hidden_size, device=device, dtype=adapter.dtype, clock=clock)
    for entry in best.values():
        entry["share"] = {k: sum(entry[k]) / entry["total_s"] for k in KINDS}
        entry["hook_overhead_s"] = overhead
    return best


def hook_overhead(hidden_size: int, *, device=None, dtype=torch.float32, calls: int = 300, clock: str = "wall") -> float:
    """Seconds one timed interval of :func:`module_times` adds by itself: two trivial modules,
    the first with the start pre-hook, the second with the stop hook (median of ``calls``).
    Subtract it per dropped module to compare with a stub that also costs a module call."""
    now = timer(clock)
    first, second = nn.Identity(), nn.Identity()
    marks: list[float] = []
    intervals: list[float] = []
    device = torch.device(device or "cpu")

    def start(*_):
        _sync(device)
        marks.append(now())

    def stop(*_):
        _sync(device)
        intervals.append(now() - marks[-1])

    x = torch.zeros(1, 1, hidden_size, device=device, dtype=dtype)
    with Hooks() as hooks:
        hooks.pre(first, start)
        hooks.forward(second, stop)
        for _ in range(calls):
            second(first(x))
    return statistics.median(intervals)


# --------------------------------------------------------------------------------------------
# paired, alternating measurements with their spread (the method of benchmarks/bench_drop.py)
# --------------------------------------------------------------------------------------------


def quartiles(values) -> list[float]:
    """[first quartile, median, third quartile] of ``values`` (linear interpolation)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return [math.nan] * 3
    q = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return [float(q[0]), float(statistics.median(ordered)), float(q[2])]


def paired_rounds(measures: dict, rounds: int) -> list[dict]:
    """``rounds`` rounds, each calling every ``measures[name]()`` once, back to back, the order
    reversed every other round (A B, B A, ...): whatever drifts on a shared machine over minutes
    hits both sides of a round alike and cancels in each round's ratio. Returns one
    ``{name: result}`` per round."""
    names = list(measures)
    out = []
    for index in range(max(1, rounds)):
        order = names if index % 2 == 0 else names[::-1]
        out.append({name: measures[name]() for name in order})
    return out


def speed_interval(ratios) -> dict:
    """The median and quartiles of per-round ratios (full time / other time), and whether they
    resolve a change: ``resolved`` is False when the interquartile interval contains 1."""
    q1, median, q3 = quartiles(ratios)
    return {"median": median, "quartiles": [q1, q3], "rounds": len(list(ratios)),
            "resolved": bool(not (q1 <= 1.0 <= q3))}


@torch.no_grad()
def compare_speed(full, other, prompt: torch.Tensor, *, new_tokens: int = 16, rounds: int = 5,
                  clock: str = "cpu") -> dict:
    """Prefill and decode speed of ``other`` against ``full`` by paired alternating rounds
    (:func:`paired_rounds`) of one :func:`throughput` each, on ``clock`` (CPU time by default:
    other processes do not inflate it). Per round, the speed-up = full time / other time; reported
    as median and quartiles (:func:`speed_interval`), with each model's tokens/s the same way.
    ``other=None`` measures ``full`` alone (its tokens/s and their spread)."""
    measures = {"full": lambda: throughput(full, prompt, new_tokens=new_tokens, repeats=1, clock=clock)}
    if other is not None:
        measures["other"] = lambda: throughput(other, prompt, new_tokens=new_tokens, repeats=1, clock=clock)
    throughput(full, prompt, new_tokens=min(new_tokens, 2), repeats=1, clock=clock)  # warm-up
    results = paired_rounds(measures, rounds)
    side = "other" if other is not None else "full"
    out = {"clock": clock, "rounds": len(results), "prompt_tokens": int(prompt.numel()), "new_tokens": new_tokens,
           "prefill_tokens_per_s": quartiles(r[side]["prefill_tokens_per_s"] for r in results),
           "decode_tokens_per_s": quartiles(r[side]["decode_tokens_per_s"] for r in results),
           "kv_bytes_per_token": results[0][side]["kv_bytes_per_token"]}
    if other is not None:
        out["prefill_speedup"] = speed_interval([r["full"]["prefill_s"] / r["other"]["prefill_s"] for r in results])
        out["decode_speedup"] = speed_interval(
            [r["full"]["decode_s_per_token"] / r["other"]["decode_s_per_token"] for r in results])
    return out


def format_interval(interval: dict | None, digits: int = 2) -> str:
    """``×1.05 [1.02–1.08]``, or with ``not resolved`` when the quartiles span no change."""
    if not interval:
        return "—"
    q1, q3 = interval["quartiles"]
    text = f"×{interval['median']:.{digits}f} [{q1:.{digits}f}–{q3:.{digits}f}]"
    return text if interval["resolved"] else text + " not resolved"
