"""What dropping costs: perplexity, multiple-choice accuracy, the before/after rows and the sweep."""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from ..batching import batches
from ..batching import progress as _progress
from ..errors import UserError
from ..models import as_adapter
from .scores import KINDS, check_kind, check_mode, compute_scores, select_layers
from .speed import compare_speed, format_interval, own_memory
from .surgery import DropResult, check_count, drop, drop_modules

__all__ = ["perplexity", "read_mc", "mc_accuracy", "EvalResult", "evaluate", "sweep", "fmt_value", "rows_table"]


@torch.no_grad()
def perplexity(model, prompts, *, batch_size: int = 4, pad_id: int = 0, progress: bool = False) -> float:
    """exp(mean next-token negative log-likelihood) over ``prompts`` (padding excluded)."""
    adapter = as_adapter(model)
    device = adapter.device
    total, count = 0.0, 0
    for ids, mask in _progress(batches(prompts, batch_size, pad_id), desc="perplexity", progress=progress):
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


def read_mc(path: str) -> list[dict]:
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
    items = read_mc(path_or_items) if isinstance(path_or_items, str) else list(path_or_items)
    items = items[:limit] if limit else items
    adapter = as_adapter(model)
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
    #: the speed measurement with its spread (analysis.drop.speed.compare_speed): tokens/s as
    #: [first quartile, median, third quartile] and, for a dropped row, its speed-up over the full
    #: model in paired rounds (median, quartiles, resolved)
    speed: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(model, prompts, *, kind: str = "none", mode: str = "none", k: int = 0,
             dropped: Sequence[int] = (), tokenizer=None, mc=None, speed_prompt=None,
             new_tokens: int = 32, repeats: int = 3, batch_size: int = 4, pad_id: int = 0,
             mc_limit: int | None = None, clock: str | None = None, reference=None) -> EvalResult:
    """Perplexity on ``prompts``, accuracy on ``mc`` (a JSONL path) when given, throughput and
    KV-cache size on ``speed_prompt`` when given: ``repeats`` paired, alternating rounds against
    ``reference`` (the full model; :func:`analysis.drop.speed.compare_speed`), medians with
    quartiles, on ``clock`` (default: CPU time on a CPU, wall time on a GPU)."""
    adapter = as_adapter(model)
    row = EvalResult(kind, mode, k, list(dropped), perplexity(adapter, prompts, batch_size=batch_size, pad_id=pad_id),
                     num_parameters=sum(p.numel() for p in adapter.model.parameters()))
    if speed_prompt is not None:
        clock = clock or ("cpu" if adapter.device.type == "cpu" else "wall")
        if reference is not None:
            speed = compare_speed(as_adapter(reference), adapter, speed_prompt, new_tokens=new_tokens,
                                  rounds=repeats, clock=clock)
        else:
            speed = compare_speed(adapter, None, speed_prompt, new_tokens=new_tokens, rounds=repeats, clock=clock)
        row.speed = speed
        row.prefill_tokens_per_s = speed["prefill_tokens_per_s"][1]
        row.decode_tokens_per_s = speed["decode_tokens_per_s"][1]
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
          progress: bool = False, on_row=None, clock: str | None = None) -> tuple[list[EvalResult], dict]:
    """Before/after table: the full model, then every kind × mode × k (each on a fresh copy of
    ``model``, dropping the first k of that mode's order). Returns (rows, orders)."""
    adapter = as_adapter(model)
    own_memory(adapter.model)  # the full model and its deep copies in the same kind of memory
    L = adapter.num_layers
    ks = sorted({int(k) for k in ks if int(k) > 0})
    modes = [check_mode(m) for m in modes]
    common = dict(tokenizer=tokenizer, mc=mc, speed_prompt=speed_prompt, new_tokens=new_tokens,
                  repeats=repeats, batch_size=batch_size, pad_id=pad_id, clock=clock)
    rows = [evaluate(adapter, eval_prompts, **common)]
    if on_row:
        on_row(rows[-1])
    orders: dict[str, dict] = {}
    for kind in kinds:
        check_kind(kind)
        if not ks:
            break
        check_count(kind, max(ks), L)
        kind_orders = _drop_orders(adapter.model, kind, modes, max(ks), prompts, batch_size, pad_id, progress)
        orders[kind] = {m: r.to_dict() for m, r in kind_orders.items()}
        for mode in modes:
            order = kind_orders[mode].dropped
            for k in _progress(ks, desc=f"{kind} {mode}", progress=progress):
                work = copy.deepcopy(adapter.model)
                drop_modules(work, kind, _current_indices(kind, order[:k]))
                rows.append(evaluate(work, eval_prompts, kind=kind, mode=mode, k=k, dropped=order[:k],
                                     reference=adapter.model, **common))
                del work
                if on_row:
                    on_row(rows[-1])
    return rows, orders


def _current_indices(kind: str, original: Sequence[int]) -> list[int]:
    """Original layer indices are also the current ones when they are dropped all at once."""
    return list(original)


def fmt_value(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _tokens_cell(row: EvalResult, key: str, digits: int) -> str:
    """``median [q1–q3]`` when the row has the measurement's spread, else the plain value."""
    spread = (row.speed or {}).get(key)
    if spread:
        q1, median, q3 = spread
        return f"{median:.{digits}f} [{q1:.{digits}f}–{q3:.{digits}f}]"
    return fmt_value(getattr(row, key), digits)


def speedup_text(row: EvalResult, phase: str = "decode") -> str:
    """A dropped row's speed-up over the full model, ``×median [q1–q3]`` (``not resolved`` when the
    quartiles contain ×1.00), or ``—``."""
    return format_interval((row.speed or {}).get(f"{phase}_speedup"))


def rows_table(rows: Sequence[EvalResult]) -> str:
    """The before/after table; speeds as median [quartiles] of paired rounds, speed-ups against
    the full model with ``not resolved`` where the quartiles span no change."""
    base = rows[0] if rows and rows[0].k == 0 else None
    has_acc = any(r.accuracy is not None for r in rows)
    has_speed = any(r.speed for r in rows)
    head = "| kind | mode | k | dropped | perplexity | Δ ppl | prefill tok/s | decode tok/s | KV bytes/token |"
    if has_speed:
        head += " prefill speed-up | decode speed-up |"
    head += " acc |" if has_acc else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        change = f"{100 * (r.perplexity / base.perplexity - 1):+.1f} %" if base and r is not base else "—"
        line = (f"| {r.kind} | {r.mode} | {r.k} | {','.join(map(str, r.dropped)) or '—'} | {fmt_value(r.perplexity)} | "
                f"{change} | {_tokens_cell(r, 'prefill_tokens_per_s', 0)} | {_tokens_cell(r, 'decode_tokens_per_s', 1)} | "
                f"{fmt_value(r.kv_bytes_per_token, 0)} |")
        if has_speed:
            line += f" {speedup_text(r, 'prefill')} | {speedup_text(r, 'decode')} |"
        if has_acc:
            line += f" {fmt_value(r.accuracy, 3)} |"
        lines.append(line)
    if has_speed:
        clock = next(r.speed["clock"] for r in rows if r.speed)
        rounds = next(r.speed["rounds"] for r in rows if r.speed)
        lines += ["", f"Speeds: median [quartiles] of {rounds} paired, alternating rounds against the full model "
                      f"({clock} clock); *not resolved*: the quartiles include no change (×1.00)."]
    return "\n".join(lines)
