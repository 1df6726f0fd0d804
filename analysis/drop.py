"""Attention, MLP and block dropping (He et al. 2024, "What Matters in Transformers? Not All
Attention is Needed"; reference: Shwai-He/LLM-Drop).

A module's importance is how much it changes the residual stream: the cosine similarity between
its input X and its output, averaged over calibration tokens. With ``h_l`` the residual entering
layer ``l`` and ``a_l`` / ``m_l`` what attention / MLP add:

* attention: cos(h_l, h_l + a_l)              (X = the residual entering input_layernorm)
* MLP:       cos(h_l + a_l, h_{l+1})          (X = the residual entering post_attention_layernorm)
* block:     cos(h_l, h_{l+1})
* span n:    cos(h_i, h_{i+n})                (n consecutive blocks)

The most similar modules matter least and are dropped: all ``k`` at once (``one-shot``) or one per
round with the scores recomputed on the already-dropped model (``iterative``).

* :func:`compute_scores` — every score above in one streaming pass (forward hooks, running sums).
* :func:`select_layers`, :func:`drop_modules`, :func:`drop` — choose and drop, in place. A dropped
  attention sublayer computes nothing and allocates no KV cache; dropped blocks are removed and
  ``num_hidden_layers`` shrinks (see ``analysis/dropped_modeling/modeling_dropped.py``, the code a
  dropped-model repo ships).
* :func:`perplexity`, :func:`mc_accuracy`, :func:`throughput`, :func:`module_times`,
  :func:`evaluate`, :func:`sweep` — what dropping costs and gains.
* :func:`save_dropped` — a repo folder that loads by name with
  ``AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`` without zooscope.
* :func:`run_drop` returns a :class:`DropReport` (``to_json()``, ``to_markdown()``, ``plot()``,
  ``write()``); ``zoo-analysis drop`` is its CLI.
"""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from .dropped_modeling.modeling_dropped import (
    FAMILY_CLASSES,
    DroppedAttention,
    DroppedMLP,
    drop_sublayers,
    dropped_lists,
)
from .errors import UserError
from .models import DecoderAdapter, clear_quantization, first_tensor, load_model
from .prompts import iter_batches, load_prompts

__all__ = [
    "KINDS",
    "MODES",
    "DROPPABLE_FAMILIES",
    "ScoreResult",
    "DropResult",
    "EvalResult",
    "DropReport",
    "compute_scores",
    "select_layers",
    "drop_modules",
    "remove_blocks",
    "drop",
    "perplexity",
    "mc_accuracy",
    "throughput",
    "module_times",
    "hook_overhead",
    "kv_cache_bytes",
    "own_memory",
    "evaluate",
    "sweep",
    "save_dropped",
    "model_card",
    "plot_scores",
    "plot_sweep",
    "run_drop",
    "add_cli",
]

KINDS = ("attn", "mlp", "block")
MODES = ("one-shot", "iterative")
DROPPABLE_FAMILIES = tuple(FAMILY_CLASSES)
MODELING_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dropped_modeling")
MODELING_FILE = "modeling_dropped.py"
_EPS = 1e-12


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _adapter(model) -> DecoderAdapter:
    return model if isinstance(model, DecoderAdapter) else DecoderAdapter(model)


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UserError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    return kind


def _check_mode(mode: str) -> str:
    mode = {"oneshot": "one-shot", "one_shot": "one-shot"}.get(mode, mode)
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def _check_droppable(adapter: DecoderAdapter) -> None:
    if adapter.family_name not in FAMILY_CLASSES:
        raise UserError(
            f"dropping supports the {', '.join(DROPPABLE_FAMILIES)} families, not "
            f"{adapter.family_name!r} (scores work for every family the decoder adapter knows)"
        )


def _pad_id(tokenizer) -> int:
    for attribute in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attribute, None)
        if isinstance(value, int):
            return value
    return 0


def _progress(iterable, total=None, desc=None, progress=True):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _batches(prompts, batch_size: int, pad_id: int = 0):
    if isinstance(prompts, torch.Tensor):
        prompts = [p for p in (prompts if prompts.dim() == 2 else prompts[None])]
    return list(iter_batches(list(prompts), batch_size, pad_id))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = ("wall", "cpu")


def _clock(clock: str):
    """``wall``: elapsed time; ``cpu``: this process's CPU time, which other processes on a
    shared machine do not inflate (exact for single-threaded CPU runs; not for GPUs)."""
    if clock == "wall":
        return time.perf_counter
    if clock == "cpu":
        return time.process_time
    raise UserError(f"unknown clock {clock!r} (wall or cpu)")


def _nan_to_none(values):
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in values]


def _none_to_nan(values):
    return [float("nan") if v is None else float(v) for v in values]


def _attn_dropped(adapter: DecoderAdapter, l: int) -> bool:
    return isinstance(getattr(adapter.layers[l], adapter.family.attn, None), DroppedAttention)


def _mlp_dropped(adapter: DecoderAdapter, l: int) -> bool:
    return isinstance(getattr(adapter.layers[l], adapter.family.mlp, None), DroppedMLP)


# --------------------------------------------------------------------------------------------
# scores (one streaming pass)
# --------------------------------------------------------------------------------------------


@dataclass
class ScoreResult:
    """Mean cosine similarity between each module's input and output (higher = less important).

    ``attn[l]`` / ``mlp[l]`` / ``block[l]`` per layer (NaN where the sublayer is already
    dropped); ``spans[n][i]`` = cos(h_i, h_{i+n}) for n consecutive blocks (``spans[1]`` equals
    ``block``). ``num_tokens`` tokens were averaged (padding excluded).
    """

    attn: list[float]
    mlp: list[float]
    block: list[float]
    spans: dict[int, list[float]]
    num_tokens: int

    @property
    def num_layers(self) -> int:
        return len(self.block)

    def of(self, kind: str) -> list[float]:
        return getattr(self, _check_kind(kind))

    def to_dict(self) -> dict:
        return {"attn": _nan_to_none(self.attn), "mlp": _nan_to_none(self.mlp),
                "block": _nan_to_none(self.block),
                "spans": {str(n): _nan_to_none(v) for n, v in self.spans.items()},
                "num_tokens": self.num_tokens}

    @classmethod
    def from_dict(cls, data: dict) -> "ScoreResult":
        return cls(_none_to_nan(data["attn"]), _none_to_nan(data["mlp"]), _none_to_nan(data["block"]),
                   {int(n): _none_to_nan(v) for n, v in data.get("spans", {}).items()}, int(data["num_tokens"]))


def _cos_sum(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> float:
    """Σ over weighted tokens of cos(x_t, y_t), in float32 with float64 accumulation."""
    x = x.float()
    y = y.float()
    dots = (x * y).sum(-1)
    cos = dots / (x.norm(dim=-1) * y.norm(dim=-1)).clamp_min(_EPS)
    return float((cos.double() * weights.double()).sum())


@torch.no_grad()
def compute_scores(
    model,
    prompts,
    *,
    batch_size: int = 4,
    pad_id: int = 0,
    spans: Sequence[int] = (1, 2, 4),
    progress: bool = False,
) -> ScoreResult:
    """Every module's input/output cosine similarity over ``prompts`` (1-D token-id tensors), in
    one pass of forward hooks that keep running sums (one batch's residual states at a time)."""
    adapter = _adapter(model)
    L = adapter.num_layers
    spans = sorted({int(n) for n in spans if 1 <= int(n) <= L} | {1})
    sums = {k: [0.0] * L for k in KINDS}
    span_sums = {n: [0.0] * (L - n + 1) for n in spans}
    tokens = 0
    state: dict[str, Any] = {}

    def pre_layer(l):
        def hook(module, args, kwargs):
            state["h"][l] = args[0] if args else kwargs["hidden_states"]
        return hook

    def pre_mlp_norm(l):
        def hook(module, args):
            mid = args[0]
            sums["attn"][l] += _cos_sum(state["h"][l], mid, state["w"])
            state["mid"] = mid
        return hook

    def post_layer(l):
        def hook(module, args, output):
            out = first_tensor(output)
            state["h"][l + 1] = out
            sums["mlp"][l] += _cos_sum(state["mid"], out, state["w"])
            sums["block"][l] += _cos_sum(state["h"][l], out, state["w"])
        return hook

    handles = []
    try:
        for l in range(L):
            handles.append(adapter.layer(l).register_forward_pre_hook(pre_layer(l), with_kwargs=True))
            handles.append(adapter.mlp_norm(l).register_forward_pre_hook(pre_mlp_norm(l)))
            handles.append(adapter.layer(l).register_forward_hook(post_layer(l)))
        batches = _batches(prompts, batch_size, pad_id)
        device = adapter.device
        for ids, mask in _progress(batches, desc="scores", progress=progress):
            state["h"] = [None] * (L + 1)
            state["w"] = mask.to(device=device, dtype=torch.float32)
            tokens += int(mask.sum())
            adapter.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
            h = state["h"]
            for n in spans:
                for i in range(L - n + 1):
                    span_sums[n][i] += _cos_sum(h[i], h[i + n], state["w"])
    finally:
        for handle in handles:
            handle.remove()
        state.clear()
    if tokens == 0:
        raise UserError("no calibration tokens")
    means = {k: [s / tokens for s in v] for k, v in sums.items()}
    for l in range(L):  # a dropped sublayer is not a candidate any more
        if _attn_dropped(adapter, l):
            means["attn"][l] = float("nan")
        if _mlp_dropped(adapter, l):
            means["mlp"][l] = float("nan")
    span_means = {n: [s / tokens for s in v] for n, v in span_sums.items()}
    return ScoreResult(means["attn"], means["mlp"], means["block"], span_means, tokens)


def select_layers(scores: Sequence[float], k: int) -> list[int]:
    """The ``k`` layers with the highest similarity (NaN = not a candidate), ties to the lower
    index, in decreasing order of similarity."""
    candidates = [(-float(s), i) for i, s in enumerate(scores) if s is not None and not math.isnan(float(s))]
    if k > len(candidates):
        raise UserError(f"cannot drop {k} modules: only {len(candidates)} left to drop")
    return [i for _, i in sorted(candidates)[:k]]


# --------------------------------------------------------------------------------------------
# dropping
# --------------------------------------------------------------------------------------------


def remove_blocks(model, layers: Sequence[int]) -> nn.Module:
    """Remove whole decoder blocks in place; renumber the rest (cache slots, drop lists) and
    shrink ``config.num_hidden_layers`` (and ``layer_types`` where the config has it)."""
    adapter = _adapter(model)
    L = adapter.num_layers
    remove = set(int(l) for l in layers)
    if not remove:
        return adapter.model
    keep = [l for l in range(L) if l not in remove]
    new_layers = nn.ModuleList([adapter.layers[l] for l in keep])
    for new_index, layer in enumerate(new_layers):
        attn = getattr(layer, adapter.family.attn, None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_index
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_index
    setattr(adapter.base, adapter.family.layers, new_layers)
    config = adapter.model.config
    config.num_hidden_layers = len(keep)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, (list, tuple)) and len(layer_types) == L:
        config.layer_types = [layer_types[l] for l in keep]
    max_window = getattr(config, "max_window_layers", None)
    if isinstance(max_window, int) and max_window < L:
        config.max_window_layers = sum(1 for l in keep if l < max_window)
    if hasattr(config, "drop_attn_list") or hasattr(config, "drop_mlp_list"):
        config.drop_attn_list, config.drop_mlp_list = dropped_lists(adapter.model)
        if not config.drop_attn_list and not config.drop_mlp_list:
            _forget_drop_lists(config)
    return adapter.model


def _forget_drop_lists(config) -> None:
    for name in ("drop_attn_list", "drop_mlp_list"):
        if hasattr(config, name):
            try:
                delattr(config, name)
            except AttributeError:
                setattr(config, name, [])


def drop_modules(model, kind: str, layers: Sequence[int]) -> nn.Module:
    """Drop the ``kind`` modules of ``layers`` (indices of the model as it is now) in place."""
    _check_kind(kind)
    adapter = _adapter(model)
    _check_droppable(adapter)
    L = adapter.num_layers
    layers = [int(l) for l in layers]
    bad = [l for l in layers if not 0 <= l < L]
    if bad:
        raise UserError(f"layer(s) {bad} out of range: the model has {L} layers (0..{L - 1})")
    if len(set(layers)) != len(layers):
        raise UserError(f"layer list repeats a layer: {layers}")
    if not layers:
        return adapter.model
    if kind == "block":
        if len(layers) >= L:
            raise UserError(f"cannot drop all {L} blocks")
        return remove_blocks(adapter.model, layers)
    attn, mlp = dropped_lists(adapter.model)
    already = [l for l in layers if l in (attn if kind == "attn" else mlp)]
    if already:
        raise UserError(f"the {kind} sublayer of layer(s) {already} is already dropped")
    if kind == "attn":
        if len(set(attn) | set(layers)) >= L:
            raise UserError(f"cannot drop all {L} attention layers (a cache needs one)")
        attn = attn + layers
    else:
        mlp = mlp + layers
    return drop_sublayers(adapter.model, attn, mlp)


@dataclass
class DropResult:
    """What :func:`drop` did: ``dropped`` holds original layer indices in the order dropped;
    ``rounds`` the scores each round saw (one round for one-shot; ``kept`` maps a round's
    layer index to the original one, which differs only after blocks were removed)."""

    kind: str
    mode: str
    dropped: list[int]
    rounds: list[ScoreResult] = field(default_factory=list)
    kept: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mode": self.mode, "dropped": self.dropped,
                "rounds": [r.to_dict() for r in self.rounds], "kept": self.kept}


def drop(
    model,
    kind: str,
    n: int | None = None,
    *,
    layers: Sequence[int] | None = None,
    mode: str = "one-shot",
    prompts=None,
    batch_size: int = 4,
    pad_id: int = 0,
    scores: ScoreResult | None = None,
    progress: bool = False,
) -> DropResult:
    """Drop ``n`` modules of ``kind`` chosen by score (``one-shot`` or ``iterative``), or the
    explicit ``layers`` (original indices). The model changes in place."""
    _check_kind(kind)
    mode = _check_mode(mode)
    adapter = _adapter(model)
    _check_droppable(adapter)
    L = adapter.num_layers
    if layers is not None:
        layers = [int(l) for l in layers]
        drop_modules(adapter.model, kind, layers)
        rounds = [scores] if scores is not None else []
        return DropResult(kind, "layers", layers, rounds, [list(range(L))] if rounds else [])
    if n is None:
        raise UserError("give n (how many to drop) or layers")
    _check_count(kind, n, L, adapter)
    if n == 0:
        return DropResult(kind, mode, [], [scores] if scores is not None else [], [])
    if prompts is None and scores is None:
        raise UserError("scores need calibration prompts")

    def score():
        return compute_scores(adapter.model, prompts, batch_size=batch_size, pad_id=pad_id, progress=False)

    if mode == "one-shot":
        scores = scores or score()
        chosen = select_layers(scores.of(kind), n)
        drop_modules(adapter.model, kind, chosen)
        return DropResult(kind, mode, chosen, [scores], [list(range(L))])
    alive = list(range(L))
    result = DropResult(kind, mode, [])
    for round_index in _progress(range(n), total=n, desc=f"iterative {kind} drop", progress=progress):
        current = scores if (round_index == 0 and scores is not None) else score()
        (chosen,) = select_layers(current.of(kind), 1)
        result.rounds.append(current)
        result.kept.append(list(alive))
        result.dropped.append(alive[chosen])
        drop_modules(adapter.model, kind, [chosen])
        if kind == "block":
            alive.pop(chosen)
    return result


def _check_count(kind: str, n: int, L: int, adapter: DecoderAdapter | None = None) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise UserError(f"n must be a whole number >= 0, got {n!r}")
    limit = L if kind == "mlp" else L - 1
    if adapter is not None and kind != "block":
        attn, mlp = dropped_lists(adapter.model)
        limit -= len(attn if kind == "attn" else mlp)
    if n > limit:
        what = {"attn": "attention layers", "mlp": "MLP layers", "block": "blocks"}[kind]
        keep = "" if kind == "mlp" else " (at least one must stay)"
        raise UserError(f"cannot drop {n} {what}: the model has {L} layers, so at most {limit}{keep}")


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def perplexity(model, prompts, *, batch_size: int = 4, pad_id: int = 0, progress: bool = False) -> float:
    """exp(mean next-token negative log-likelihood) over ``prompts`` (padding excluded)."""
    adapter = _adapter(model)
    device = adapter.device
    total, count = 0.0, 0
    for ids, mask in _progress(_batches(prompts, batch_size, pad_id), desc="perplexity", progress=progress):
        ids, mask = ids.to(device), mask.to(device)
        logits = adapter.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = ids[:, 1:]
        nll = -logp.gather(-1, target[..., None])[..., 0]
        weight = (mask[:, 1:] * mask[:, :-1]).float()
        total += float((nll * weight).sum())
        count += int(weight.sum())
    if count == 0:
        raise UserError("no tokens to measure perplexity on")
    return math.exp(total / count)


def _read_mc(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise UserError(f"multiple-choice file not found: {path}")
    items = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"{path}:{number}: not JSON ({error.msg})") from None
            question = next((row[k] for k in ("question", "context", "prompt", "query") if k in row), None)
            choices = next((row[k] for k in ("choices", "endings", "options") if k in row), None)
            answer = next((row[k] for k in ("answer", "label", "gold") if k in row), None)
            if isinstance(choices, dict) and "text" in choices:  # ARC-style {"text": [...], "label": [...]}
                labels = choices.get("label")
                choices = choices["text"]
                if isinstance(answer, str) and labels and answer in labels:
                    answer = labels.index(answer)
            if not isinstance(question, str) or not isinstance(choices, list) or len(choices) < 2:
                raise UserError(f"{path}:{number}: needs 'question' (text) and 'choices' (a list of 2+ texts)")
            if isinstance(answer, str):
                if answer in choices:
                    answer = choices.index(answer)
                elif len(answer) == 1 and answer.upper().isalpha():
                    answer = ord(answer.upper()) - ord("A")
                elif answer.isdigit():
                    answer = int(answer)
            if not isinstance(answer, int) or not 0 <= answer < len(choices):
                raise UserError(f"{path}:{number}: 'answer' must index one of the {len(choices)} choices")
            items.append({"question": question, "choices": [str(c) for c in choices], "answer": answer})
    if not items:
        raise UserError(f"multiple-choice file {path} is empty")
    return items


@torch.no_grad()
def mc_accuracy(model, tokenizer, path_or_items, *, limit: int | None = None, progress: bool = False) -> dict:
    """Accuracy on a local multiple-choice set (JSONL: question, choices, answer): the choice
    with the highest log-likelihood given the question wins (``acc``), or the highest per
    character (``acc_norm``), as in lm-evaluation-harness."""
    items = _read_mc(path_or_items) if isinstance(path_or_items, str) else list(path_or_items)
    items = items[:limit] if limit else items
    adapter = _adapter(model)
    device = adapter.device
    correct = correct_norm = 0
    for item in _progress(items, desc="multiple choice", progress=progress):
        context = tokenizer(item["question"], add_special_tokens=True)["input_ids"]
        scores, normed = [], []
        for choice in item["choices"]:
            full = tokenizer(item["question"] + " " + choice, add_special_tokens=True)["input_ids"]
            start = len(context) if full[: len(context)] == context else max(1, len(full) - len(
                tokenizer(" " + choice, add_special_tokens=False)["input_ids"]))
            start = max(start, 1)
            ids = torch.tensor([full], device=device)
            logp = torch.log_softmax(adapter.model(input_ids=ids, use_cache=False).logits.float()[0, :-1], -1)
            target = ids[0, 1:]
            token_logp = logp.gather(-1, target[:, None])[:, 0][start - 1:]
            scores.append(float(token_logp.sum()))
            normed.append(scores[-1] / max(1, len(choice)))
        correct += int(max(range(len(scores)), key=scores.__getitem__) == item["answer"])
        correct_norm += int(max(range(len(normed)), key=normed.__getitem__) == item["answer"])
    return {"acc": correct / len(items), "acc_norm": correct_norm / len(items), "num_items": len(items)}


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
    adapter = _adapter(model)
    device = adapter.device
    ids = prompt.reshape(1, -1).repeat(batch_size, 1).to(device)
    now = _clock(clock)
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
    adapter = _adapter(model)
    device = adapter.device
    L = adapter.num_layers
    now = _clock(clock)
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

    handles = []
    for l in range(L):
        layer = adapter.layer(l)
        handles += [
            adapter.attn_norm(l).register_forward_pre_hook(start(f"a{l}")),
            adapter.attn(l).register_forward_hook(stop("attn", f"a{l}", l)),
            adapter.mlp_norm(l).register_forward_pre_hook(start(f"m{l}")),
            adapter.mlp(l).register_forward_hook(stop("mlp", f"m{l}", l)),
            layer.register_forward_pre_hook(start(f"b{l}")),
            layer.register_forward_hook(stop("block", f"b{l}", l)),
        ]
    ids = prompt.reshape(1, -1).to(device)
    best: dict[str, dict] = {}
    try:
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
    finally:
        for handle in handles:
            handle.remove()
    overhead = hook_overhead(adapter.hidden_size, device=device, dtype=adapter.dtype, clock=clock)
    for entry in best.values():
        entry["share"] = {k: sum(entry[k]) / entry["total_s"] for k in KINDS}
        entry["hook_overhead_s"] = overhead
    return best


def hook_overhead(hidden_size: int, *, device=None, dtype=torch.float32, calls: int = 300, clock: str = "wall") -> float:
    """Seconds one timed interval of :func:`module_times` adds by itself: two trivial modules,
    the first with the start pre-hook, the second with the stop hook (median of ``calls``).
    Subtract it per dropped module to compare with a stub that also costs a module call."""
    now = _clock(clock)
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

    h1 = first.register_forward_pre_hook(start)
    h2 = second.register_forward_hook(stop)
    x = torch.zeros(1, 1, hidden_size, device=device, dtype=dtype)
    try:
        for _ in range(calls):
            second(first(x))
    finally:
        h1.remove()
        h2.remove()
    return statistics.median(intervals)


@dataclass
class EvalResult:
    """One row of a before/after table."""

    kind: str
    mode: str
    k: int
    dropped: list[int]
    perplexity: float
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    kv_bytes_per_token: float | None = None
    num_parameters: int | None = None
    accuracy: float | None = None
    accuracy_norm: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(model, prompts, *, kind: str = "none", mode: str = "none", k: int = 0,
             dropped: Sequence[int] = (), tokenizer=None, mc=None, speed_prompt=None,
             new_tokens: int = 32, repeats: int = 3, batch_size: int = 4, pad_id: int = 0,
             mc_limit: int | None = None, clock: str = "wall") -> EvalResult:
    """Perplexity on ``prompts``, accuracy on ``mc`` (a JSONL path) when given, throughput and
    KV-cache size on ``speed_prompt`` when given."""
    adapter = _adapter(model)
    row = EvalResult(kind, mode, k, list(dropped), perplexity(adapter, prompts, batch_size=batch_size, pad_id=pad_id),
                     num_parameters=sum(p.numel() for p in adapter.model.parameters()))
    if speed_prompt is not None:
        speed = throughput(adapter, speed_prompt, new_tokens=new_tokens, repeats=repeats, clock=clock)
        row.prefill_tokens_per_s = speed["prefill_tokens_per_s"]
        row.decode_tokens_per_s = speed["decode_tokens_per_s"]
        row.kv_bytes_per_token = speed["kv_bytes_per_token"]
    if mc is not None:
        if tokenizer is None:
            raise UserError("multiple-choice accuracy needs the tokenizer")
        acc = mc_accuracy(adapter, tokenizer, mc, limit=mc_limit)
        row.accuracy, row.accuracy_norm = acc["acc"], acc["acc_norm"]
    return row


def _drop_orders(model, kind: str, modes: Sequence[str], max_k: int, prompts, batch_size: int,
                 pad_id: int, progress: bool) -> dict[str, DropResult]:
    """The order in which each mode drops ``max_k`` modules: one-shot takes the top k of one
    score pass, iterative drops one per round, so both orders are nested over k."""
    orders = {}
    base_scores = compute_scores(model, prompts, batch_size=batch_size, pad_id=pad_id)
    for mode in modes:
        if mode == "one-shot":
            chosen = select_layers(base_scores.of(kind), max_k)
            orders[mode] = DropResult(kind, mode, chosen, [base_scores], [list(range(len(base_scores.block)))])
        else:
            work = copy.deepcopy(model)
            orders[mode] = drop(work, kind, max_k, mode="iterative", prompts=prompts, batch_size=batch_size,
                                pad_id=pad_id, scores=base_scores, progress=progress)
            del work
    return orders


def sweep(model, prompts, eval_prompts, *, kinds: Sequence[str] = KINDS, ks: Sequence[int] = (1, 2, 4, 8),
          modes: Sequence[str] = ("one-shot",), tokenizer=None, mc=None, speed_prompt=None,
          new_tokens: int = 32, repeats: int = 3, batch_size: int = 4, pad_id: int = 0,
          progress: bool = False, on_row=None, clock: str = "wall") -> tuple[list[EvalResult], dict]:
    """Before/after table: the full model, then every kind × mode × k (each on a fresh copy of
    ``model``, dropping the first k of that mode's order). Returns (rows, orders)."""
    adapter = _adapter(model)
    own_memory(adapter.model)  # the full model and its deep copies in the same kind of memory
    L = adapter.num_layers
    ks = sorted({int(k) for k in ks if int(k) > 0})
    modes = [_check_mode(m) for m in modes]
    common = dict(tokenizer=tokenizer, mc=mc, speed_prompt=speed_prompt, new_tokens=new_tokens,
                  repeats=repeats, batch_size=batch_size, pad_id=pad_id, clock=clock)
    rows = [evaluate(adapter, eval_prompts, **common)]
    if on_row:
        on_row(rows[-1])
    orders: dict[str, dict] = {}
    for kind in kinds:
        _check_kind(kind)
        if not ks:
            break
        _check_count(kind, max(ks), L)
        kind_orders = _drop_orders(adapter.model, kind, modes, max(ks), prompts, batch_size, pad_id, progress)
        orders[kind] = {m: r.to_dict() for m, r in kind_orders.items()}
        for mode in modes:
            order = kind_orders[mode].dropped
            for k in _progress(ks, desc=f"{kind} {mode}", progress=progress):
                work = copy.deepcopy(adapter.model)
                drop_modules(work, kind, _current_indices(kind, order[:k]))
                rows.append(evaluate(work, eval_prompts, kind=kind, mode=mode, k=k, dropped=order[:k], **common))
                del work
                if on_row:
                    on_row(rows[-1])
    return rows, orders


def _current_indices(kind: str, original: Sequence[int]) -> list[int]:
    """Original layer indices are also the current ones when they are dropped all at once."""
    return list(original)


# --------------------------------------------------------------------------------------------
# saving: a repo that loads by name without zooscope
# --------------------------------------------------------------------------------------------


def save_dropped(model, tokenizer, repo_dir: str, *, card: str | None = None) -> list[str]:
    """Write ``model`` (with dropped modules) as a repo folder: config.json (``drop_attn_list``,
    ``drop_mlp_list``, ``auto_map``), model.safetensors, the modeling file when sublayers are
    dropped, the tokenizer, and README.md (``card``)."""
    adapter = _adapter(model)
    model = adapter.model
    clear_quantization(model)
    attn, mlp = dropped_lists(model)
    if attn or mlp:
        _check_droppable(adapter)
    os.makedirs(repo_dir, exist_ok=True)
    config = model.config
    if attn or mlp:
        config.drop_attn_list, config.drop_mlp_list = attn, mlp
    else:
        _forget_drop_lists(config)
    model.save_pretrained(repo_dir, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(repo_dir)
    config_path = os.path.join(repo_dir, "config.json")
    with open(config_path, encoding="utf-8") as handle:
        data = json.load(handle)
    data.pop("quantization_config", None)
    if attn or mlp:
        class_name = "Dropped" + FAMILY_CLASSES[adapter.family_name]
        data["architectures"] = [class_name]
        data["auto_map"] = {"AutoModelForCausalLM": f"modeling_dropped.{class_name}"}
        data["drop_attn_list"], data["drop_mlp_list"] = attn, mlp
        shutil.copyfile(os.path.join(MODELING_DIR, MODELING_FILE), os.path.join(repo_dir, MODELING_FILE))
    else:
        data.pop("auto_map", None)
        data.pop("drop_attn_list", None)
        data.pop("drop_mlp_list", None)
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    if card is not None:
        with open(os.path.join(repo_dir, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(card)
    return sorted(os.listdir(repo_dir))


def _fmt(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(rows: Sequence[EvalResult]) -> str:
    base = rows[0] if rows and rows[0].k == 0 else None
    has_acc = any(r.accuracy is not None for r in rows)
    head = "| kind | mode | k | dropped | perplexity | Δ ppl | prefill tok/s | decode tok/s | KV bytes/token |" + (" acc |" if has_acc else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        change = f"{100 * (r.perplexity / base.perplexity - 1):+.1f} %" if base and r is not base else "—"
        line = (f"| {r.kind} | {r.mode} | {r.k} | {','.join(map(str, r.dropped)) or '—'} | {_fmt(r.perplexity)} | "
                f"{change} | {_fmt(r.prefill_tokens_per_s, 0)} | {_fmt(r.decode_tokens_per_s, 1)} | "
                f"{_fmt(r.kv_bytes_per_token, 0)} |")
        if has_acc:
            line += f" {_fmt(r.accuracy, 3)} |"
        lines.append(line)
    return "\n".join(lines)


def model_card(*, repo_id: str, base_model: str, family: str, kind: str, mode: str, dropped: Sequence[int],
               attn: Sequence[int], mlp: Sequence[int], num_layers_before: int, num_layers_after: int,
               rows: Sequence[EvalResult], weights_sha256: str | None = None, calibration: str = "") -> str:
    """README.md for a dropped model: what was dropped, and what it cost (the before/after rows)."""
    from huggingface_hub import ModelCard, ModelCardData

    hub_base = base_model if (base_model.count("/") == 1 and not os.path.exists(base_model)) else None
    data = ModelCardData(library_name="transformers", license="other", base_model=hub_base,
                         tags=["zooscope", "layer-drop", f"{kind}-drop", family], pipeline_tag="text-generation",
                         model_name=repo_id)
    remote = bool(attn or mlp)
    load = ("AutoModelForCausalLM.from_pretrained(\"{0}\", trust_remote_code=True)" if remote
            else "AutoModelForCausalLM.from_pretrained(\"{0}\")").format(repo_id)
    what = {"attn": "attention sublayers", "mlp": "MLP sublayers", "block": "whole blocks"}[kind]
    body = f"""
# {repo_id}

`{base_model}` with {len(dropped)} {what} dropped ({mode}), after He et al. 2024, "What Matters
in Transformers? Not All Attention is Needed": a module whose output is most similar to its
input (cosine similarity on calibration tokens) matters least.

- dropped {kind} (original layer indices): {list(dropped) or 'none'}
- layers: {num_layers_before} → {num_layers_after}; attention dropped in layers {list(attn) or 'none'},
  MLP dropped in layers {list(mlp) or 'none'} (`drop_attn_list` / `drop_mlp_list` in config.json)
- a dropped attention layer computes nothing and keeps no KV cache{'; ' + calibration if calibration else ''}

## Usage

{"The modeling code (`modeling_dropped.py`, which wraps transformers' own " + family + " classes) ships with the repo, so zooscope need not be installed (transformers >= 5.23 for generation with a KV cache):" if remote else "A plain transformers model (blocks were removed, no custom code):"}

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = {load}
tokenizer = AutoTokenizer.from_pretrained("{repo_id}")
```

## What it cost

{_table(rows)}

Perplexity on held-out built-in text; throughput on one CPU/GPU as measured by `zoo-analysis drop`
(best of several runs), so compare rows, not machines.
"""
    if weights_sha256:
        body += f"\n## Files\n\n- `model.safetensors` sha256 `{weights_sha256}`\n"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


@dataclass
class DropReport:
    model: str
    family: str
    num_layers: int
    kind: str
    mode: str
    dropped: list[int]
    scores: ScoreResult
    result: DropResult
    rows: list[EvalResult]
    attn_list: list[int]
    mlp_list: list[int]
    calibration_tokens: int
    eval_tokens: int
    timing: dict | None = None
    repo_dir: str | None = None
    repo_id: str | None = None

    def to_dict(self) -> dict:
        return {
            "model": self.model, "family": self.family, "num_layers": self.num_layers, "kind": self.kind,
            "mode": self.mode, "dropped": self.dropped, "drop_attn_list": self.attn_list,
            "drop_mlp_list": self.mlp_list, "scores": self.scores.to_dict(), "result": self.result.to_dict(),
            "rows": [r.to_dict() for r in self.rows], "calibration_tokens": self.calibration_tokens,
            "eval_tokens": self.eval_tokens, "timing": self.timing, "repo_dir": self.repo_dir,
            "repo_id": self.repo_id,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_markdown(self) -> str:
        lines = [f"# Layer dropping: {self.model}", "",
                 f"{self.family}, {self.num_layers} layers; dropped {self.kind} ({self.mode}): "
                 f"{self.dropped or 'nothing'}; {self.calibration_tokens} calibration tokens, "
                 f"{self.eval_tokens} evaluation tokens.", "",
                 "## Before / after", "", _table(self.rows), "",
                 "## Scores (cosine similarity of input and output; higher = more droppable)", "",
                 "| layer | attention | MLP | block |", "|---|---|---|---|"]
        for l in range(self.scores.num_layers):
            mark = lambda kind: " ✗" if (kind == self.kind and l in self.dropped) else ""  # noqa: E731
            lines.append(f"| {l} | {_fmt(self.scores.attn[l], 4)}{mark('attn')} | {_fmt(self.scores.mlp[l], 4)}{mark('mlp')} "
                         f"| {_fmt(self.scores.block[l], 4)}{mark('block')} |")
        if self.timing:
            lines += ["", "## Share of forward time (full model)", "",
                      "| phase | total ms | attention | MLP | blocks |", "|---|---|---|---|---|"]
            for phase, entry in self.timing.items():
                share = entry["share"]
                lines.append(f"| {phase} | {1000 * entry['total_s']:.2f} | {100 * share['attn']:.1f} % | "
                             f"{100 * share['mlp']:.1f} % | {100 * share['block']:.1f} % |")
        if self.repo_dir:
            lines += ["", f"Dropped model: `{self.repo_dir}`" + (f" (published as `{self.repo_id}`)" if self.repo_id else "")]
        return "\n".join(lines) + "\n"

    def plot(self, out_dir: str) -> list[str]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        written = [plot_scores(self.scores, os.path.join(out_dir, "scores.png"), kind=self.kind,
                               dropped=self.dropped, title=f"{self.model}: dropped {self.kind} (hatched) {self.dropped}")]
        if len(self.rows) > 2:
            written.append(plot_sweep(self.rows, os.path.join(out_dir, "sweep.png"), title=self.model))
        return written

    def write(self, out_dir: str) -> list[str]:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "report.json"), "w") as handle:
            handle.write(self.to_json())
        with open(os.path.join(out_dir, "report.md"), "w") as handle:
            handle.write(self.to_markdown())
        self.plot(out_dir)
        return sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir))


def plot_scores(scores: ScoreResult, path: str, *, kind: str | None = None, dropped: Sequence[int] = (),
                title: str = "") -> str:
    """Importance 1 − cos(X, out) per layer for attention, MLP and block (log scale); the
    dropped modules of ``kind`` hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L = scores.num_layers
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * L + 2), 3.4))
    width = 0.27
    for offset, name, label in ((-width, "attn", "attention"), (0, "mlp", "MLP"), (width, "block", "block")):
        values = [float("nan") if v is None else float(v) for v in scores.of(name)]
        bars = ax.bar([l + offset for l in range(L)], [max(1 - v, 1e-7) if not math.isnan(v) else 0 for v in values],
                      width, label=label)
        if name == kind:
            for l in dropped:
                if l < L:
                    bars[l].set_hatch("//")
                    bars[l].set_edgecolor("black")
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("importance 1 − cos(X, out)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_sweep(rows: Sequence[EvalResult], path: str, title: str = "") -> str:
    """Perplexity and decode tokens/s against k, one line per kind × mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = rows[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    groups: dict[tuple, list] = {}
    for r in rows[1:]:
        groups.setdefault((r.kind, r.mode), []).append(r)
    for (kind, mode), group in groups.items():
        ks = [0] + [r.k for r in group]
        style = "-" if mode == "one-shot" else "--"
        axes[0].plot(ks, [base.perplexity] + [r.perplexity for r in group], "o" + style, ms=3, label=f"{kind} {mode}")
        if base.decode_tokens_per_s:
            axes[1].plot(ks, [1.0] + [(r.decode_tokens_per_s or float("nan")) / base.decode_tokens_per_s for r in group],
                         "o" + style, ms=3, label=f"{kind} {mode}")
    axes[0].axhline(1.1 * base.perplexity, color="grey", lw=0.8, ls=":")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("k dropped")
    axes[0].set_ylabel("perplexity")
    axes[1].set_xlabel("k dropped")
    axes[1].set_ylabel("decode speed-up (× full)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def run_drop(
    model,
    tokenizer,
    *,
    kind: str,
    n: int | None = None,
    layers: Sequence[int] | None = None,
    mode: str = "one-shot",
    name: str = "model",
    prompts: str | None = None,
    num_prompts: int = 8,
    eval_prompts: int = 4,
    max_tokens: int = 256,
    batch_size: int = 4,
    eval_ks: Sequence[int] = (),
    mc: str | None = None,
    mc_limit: int | None = None,
    speed: bool = True,
    speed_tokens: int = 64,
    new_tokens: int = 16,
    repeats: int = 2,
    progress: bool = False,
) -> tuple[DropReport, nn.Module]:
    """Score, drop (in place) and evaluate; returns the report and the dropped model.

    ``eval_ks`` adds rows for other k (same kind and mode) to the before/after table."""
    _check_kind(kind)
    mode = _check_mode(mode)
    adapter = _adapter(model)
    _check_droppable(adapter)
    L = adapter.num_layers
    if layers is None:
        if n is None:
            raise UserError("give --n (how many to drop) or --layers")
        _check_count(kind, n, L, adapter)
    else:
        bad = [l for l in layers if not 0 <= l < L]
        if bad:
            raise UserError(f"layer(s) {bad} out of range: the model has {L} layers (0..{L - 1})")
        _check_count(kind, len(layers), L, adapter)
    for k in eval_ks:
        _check_count(kind, int(k), L, adapter)
    pad = _pad_id(tokenizer)
    texts = load_prompts(tokenizer, prompts, num_prompts=num_prompts + eval_prompts, max_tokens=max_tokens)
    if len(texts) < 2:
        raise UserError("need at least 2 prompts (calibration and evaluation)")
    eval_count = min(eval_prompts, len(texts) - 1)
    calib, held_out = texts[: len(texts) - eval_count], texts[len(texts) - eval_count:]
    speed_prompt = held_out[0][:speed_tokens] if speed else None
    common = dict(tokenizer=tokenizer, mc=mc, mc_limit=mc_limit, speed_prompt=speed_prompt, new_tokens=new_tokens,
                  repeats=repeats, batch_size=batch_size, pad_id=pad)
    if speed:
        own_memory(adapter.model)  # the full model and its deep copies in the same kind of memory
    scores = compute_scores(adapter, calib, batch_size=batch_size, pad_id=pad, progress=progress)
    timing = module_times(adapter, speed_prompt, new_tokens=new_tokens, repeats=repeats) if speed else None
    rows = [evaluate(adapter, held_out, **common)]
    extra_ks = sorted({int(k) for k in eval_ks if int(k) > 0 and int(k) != (n if layers is None else len(layers))})
    if extra_ks and layers is None:
        order_source = copy.deepcopy(adapter.model)
        order = drop(order_source, kind, max(extra_ks + [n]), mode=mode, prompts=calib, batch_size=batch_size,
                     pad_id=pad, scores=scores, progress=progress).dropped
        del order_source
        for k in extra_ks:
            work = copy.deepcopy(adapter.model)
            drop_modules(work, kind, order[:k])
            rows.append(evaluate(work, held_out, kind=kind, mode=mode, k=k, dropped=order[:k], **common))
            del work
    result = drop(adapter.model, kind, n, layers=layers, mode=mode, prompts=calib, batch_size=batch_size,
                  pad_id=pad, scores=scores, progress=progress)
    adapter = DecoderAdapter(adapter.model)
    rows.append(evaluate(adapter, held_out, kind=kind, mode=result.mode, k=len(result.dropped),
                         dropped=result.dropped, **common))
    rows = [rows[0]] + sorted(rows[1:], key=lambda r: r.k)
    attn, mlp = dropped_lists(adapter.model)
    report = DropReport(
        model=name, family=adapter.family_name, num_layers=L, kind=kind, mode=result.mode,
        dropped=result.dropped, scores=scores, result=result, rows=rows, attn_list=attn, mlp_list=mlp,
        calibration_tokens=scores.num_tokens, eval_tokens=int(sum(len(p) for p in held_out)), timing=timing,
    )
    return report, adapter.model


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UserError(f"{option} must be comma-separated layer indices, got {text!r}") from None


def _default_repo_id(model_name: str, kind: str, count: int) -> str:
    base = os.path.basename(os.path.normpath(model_name))
    for suffix in (".gguf",):
        base = base[: -len(suffix)] if base.endswith(suffix) else base
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in base).strip("-.") or "model"
    return f"zooscope/{base}-drop-{kind}-{count}"


def _cli(args) -> int:
    # validate everything cheap before loading anything or touching --out
    kind = _check_kind(args.kind)
    mode = _check_mode(args.mode)
    layers = _int_list(args.layers, "--layers")
    eval_ks = _int_list(args.eval_ks, "--eval-ks") or []
    if layers is None and args.n is None:
        raise UserError("give --n (how many to drop) or --layers")
    if layers is not None and args.n is not None and args.n != len(layers):
        raise UserError(f"--n {args.n} does not match the {len(layers)} --layers")
    if args.n is not None and args.n < 0:
        raise UserError("--n must be at least 0")
    if any(k < 0 for k in eval_ks):
        raise UserError("--eval-ks must be >= 0")
    for option in ("num_prompts", "eval_prompts", "max_tokens", "batch_size"):
        if getattr(args, option) < 1:
            raise UserError(f"--{option.replace('_', '-')} must be at least 1")
    if args.mc and not os.path.isfile(args.mc):
        raise UserError(f"multiple-choice file not found: {args.mc}")
    out = os.path.abspath(args.out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise UserError(f"--out {args.out} exists and is not an empty folder")
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = load_model(args.model, dtype=args.dtype, device=args.device,
                        trust_remote_code=True if args.trust_remote_code else None)
    adapter = DecoderAdapter(loaded.model)
    _check_droppable(adapter)
    L = adapter.num_layers
    report, dropped_model = run_drop(
        adapter, loaded.tokenizer, kind=kind, n=args.n, layers=layers, mode=mode, name=args.model,
        prompts=args.prompts, num_prompts=args.num_prompts, eval_prompts=args.eval_prompts,
        max_tokens=args.max_tokens, batch_size=args.batch_size, eval_ks=eval_ks, mc=args.mc,
        mc_limit=args.mc_limit, speed=not args.no_speed, new_tokens=args.new_tokens, progress=not args.quiet,
    )
    repo_id = args.repo_id or _default_repo_id(args.model, kind, len(report.dropped))
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".drop-", dir=parent)
    try:
        repo_dir = os.path.join(staging, "model")
        save_dropped(dropped_model, loaded.tokenizer, repo_dir)
        from zoo.hub import file_sha256

        weights = os.path.join(repo_dir, "model.safetensors")
        sha = file_sha256(weights) if os.path.isfile(weights) else None
        after = DecoderAdapter(dropped_model).num_layers
        card = model_card(repo_id=repo_id, base_model=args.model, family=report.family, kind=kind, mode=report.mode,
                          dropped=report.dropped, attn=report.attn_list, mlp=report.mlp_list, num_layers_before=L,
                          num_layers_after=after, rows=report.rows, weights_sha256=sha,
                          calibration=f"scores from {report.calibration_tokens} calibration tokens")
        with open(os.path.join(repo_dir, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(card)
        report.repo_dir = os.path.join(out, "model")
        if args.publish:
            report.repo_id = repo_id
        report.write(staging)
        if os.path.isdir(out):
            os.rmdir(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if args.publish:
        from zoo.hub import publish_to_cache

        revision = publish_to_cache(os.path.join(out, "model"), repo_id)
        print(f"published {repo_id} (revision {revision[:12]}) to the local Hugging Face cache")
    base = report.rows[0]
    last = next((r for r in report.rows[1:] if r.k == len(report.dropped) and r.dropped == report.dropped), report.rows[-1])
    print(f"dropped {kind} {report.dropped} ({report.mode}) from {args.model}: perplexity "
          f"{base.perplexity:.2f} -> {last.perplexity:.2f}"
          + (f", decode {base.decode_tokens_per_s:.1f} -> {last.decode_tokens_per_s:.1f} tokens/s"
             if base.decode_tokens_per_s and last.decode_tokens_per_s else ""))
    print(f"written to {out}:")
    for root, _, files in sorted(os.walk(out)):
        for name in sorted(files):
            print(f"  {os.path.join(root, name)}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "drop",
        help="drop the least important attention / MLP sublayers or blocks (LLM-Drop) and save the faster model",
        description="Attention, MLP and block dropping by input/output cosine similarity (He et al. 2024).",
    )
    parser.add_argument("--model", required=True, help="Hub id, local folder, .gguf file or zoo id")
    parser.add_argument("--kind", required=True, choices=KINDS, help="what to drop")
    parser.add_argument("--n", type=int, default=None, help="how many to drop (chosen by score)")
    parser.add_argument("--layers", default=None, help="drop exactly these layers (comma-separated) instead")
    parser.add_argument("--mode", default="one-shot", choices=MODES,
                        help="one-shot: top n of one score pass; iterative: one per round, rescoring each time")
    parser.add_argument("--out", required=True, help="new output folder: model/ (the repo), report.json/.md, figures")
    parser.add_argument("--repo-id", default=None, help="repo id for the card and --publish (default zooscope/<model>-drop-<kind>-<n>)")
    parser.add_argument("--publish", action="store_true", help="also place the repo in the local Hugging Face cache (loads by name)")
    parser.add_argument("--prompts", help="calibration/evaluation text: file (blank-line separated) or datasets name; default built-in text")
    parser.add_argument("--num-prompts", type=int, default=8, help="calibration prompts")
    parser.add_argument("--eval-prompts", type=int, default=4, help="held-out prompts for perplexity")
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens per prompt")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--eval-ks", default=None, help="more k for the before/after table, e.g. 1,2,4,8")
    parser.add_argument("--mc", default=None, help="multiple-choice JSONL (question, choices, answer) for accuracy")
    parser.add_argument("--mc-limit", type=int, default=None, help="use only the first N multiple-choice items")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens decoded for the generation speed")
    parser.add_argument("--no-speed", action="store_true", help="skip the throughput and timing measurements")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto")
    parser.add_argument("--device", default=None)
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a non-zooscope repo's own code")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_cli)
