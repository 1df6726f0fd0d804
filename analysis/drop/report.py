"""The report of a drop run (JSON, Markdown, figures) and :func:`run_drop`."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from typing import Sequence

from torch import nn

from ..batching import pad_id
from ..dropped_modeling.modeling_dropped import dropped_lists
from ..errors import UserError
from ..models import DecoderAdapter, as_adapter
from ..prompts import describe_tokens, load_prompts
from .evaluation import EvalResult, evaluate, fmt_value, rows_table
from .plots import plot_scores, plot_sweep
from .scores import ScoreResult, check_kind, check_mode, compute_scores
from .speed import module_times, own_memory
from .surgery import DropResult, check_count, check_droppable, drop, drop_modules

__all__ = ["DropReport", "run_drop"]


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
    inputs: dict | None = None
    repo_dir: str | None = None
    repo_id: str | None = None

    def to_dict(self) -> dict:
        return {
            "model": self.model, "family": self.family, "num_layers": self.num_layers, "kind": self.kind,
            "mode": self.mode, "dropped": self.dropped, "drop_attn_list": self.attn_list,
            "drop_mlp_list": self.mlp_list, "scores": self.scores.to_dict(), "result": self.result.to_dict(),
            "rows": [r.to_dict() for r in self.rows], "calibration_tokens": self.calibration_tokens,
            "eval_tokens": self.eval_tokens, "timing": self.timing, "inputs": self.inputs, "repo_dir": self.repo_dir,
            "repo_id": self.repo_id,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_markdown(self) -> str:
        lines = [f"# Layer dropping: {self.model}", "",
                 f"{self.family}, {self.num_layers} layers; dropped {self.kind} ({self.mode}): "
                 f"{self.dropped or 'nothing'}; {self.calibration_tokens} calibration tokens, "
                 f"{self.eval_tokens} evaluation tokens" + (
                     f" ({self.inputs['kind']} {self.inputs['source']}, token ids sha256 "
                     f"`{self.inputs['token_ids_sha256'][:16]}…`)" if self.inputs else "") + ".", "",
                 "## Before / after", "", rows_table(self.rows), "",
                 "## Scores (cosine similarity of input and output; higher = more droppable)", "",
                 "| layer | attention | MLP | block |", "|---|---|---|---|"]
        for l in range(self.scores.num_layers):
            mark = lambda kind: " ✗" if (kind == self.kind and l in self.dropped) else ""  # noqa: E731
            lines.append(f"| {l} | {fmt_value(self.scores.attn[l], 4)}{mark('attn')} | {fmt_value(self.scores.mlp[l], 4)}{mark('mlp')} "
                         f"| {fmt_value(self.scores.block[l], 4)}{mark('block')} |")
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
    repeats: int = 5,
    progress: bool = False,
    tokens=None,
    inputs: dict | None = None,
    add_special_tokens: bool = True,
) -> tuple[DropReport, nn.Module]:
    """Score, drop (in place) and evaluate; returns the report and the dropped model.

    ``eval_ks`` adds rows for other k (same kind and mode) to the before/after table."""
    check_kind(kind)
    mode = check_mode(mode)
    adapter = as_adapter(model)
    check_droppable(adapter)
    L = adapter.num_layers
    if layers is None:
        if n is None:
            raise UserError("give --n (how many to drop) or --layers")
        check_count(kind, n, L, adapter)
    else:
        bad = [l for l in layers if not 0 <= l < L]
        if bad:
            raise UserError(f"layer(s) {bad} out of range: the model has {L} layers (0..{L - 1})")
        check_count(kind, len(layers), L, adapter)
    for k in eval_ks:
        check_count(kind, int(k), L, adapter)
    pad = pad_id(tokenizer)
    if tokens is None:
        texts = load_prompts(tokenizer, prompts, num_prompts=num_prompts + eval_prompts, max_tokens=max_tokens,
                             add_special_tokens=add_special_tokens)
        inputs = describe_tokens(texts, prompts or "builtin", "text", add_special_tokens)
    else:  # exact token blocks: the last eval_prompts of them are held out
        import torch

        texts = [torch.as_tensor(t, dtype=torch.long).reshape(-1) for t in tokens]
        inputs = inputs or describe_tokens(texts, "token ids (API)", "token-ids", None)
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
    timing = module_times(adapter, speed_prompt, new_tokens=new_tokens, repeats=min(repeats, 2)) if speed else None
    rows = [evaluate(adapter, held_out, **common)]
    if speed:  # the full model, kept beside the dropped ones for paired timing
        common["reference"] = copy.deepcopy(adapter.model)
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
    common.pop("reference", None)
    rows = [rows[0]] + sorted(rows[1:], key=lambda r: r.k)
    attn, mlp = dropped_lists(adapter.model)
    report = DropReport(
        model=name, family=adapter.family_name, num_layers=L, kind=kind, mode=result.mode,
        dropped=result.dropped, scores=scores, result=result, rows=rows, attn_list=attn, mlp_list=mlp,
        calibration_tokens=scores.num_tokens, eval_tokens=int(sum(len(p) for p in held_out)), timing=timing,
        inputs=inputs,
    )
    return report, adapter.model
