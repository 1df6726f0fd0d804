"""``zoo-analysis drop``: score, drop, evaluate, and save the faster model as a repo folder."""
from __future__ import annotations

import os

from .. import runner
from ..errors import AnalysisError
from .kinds import KINDS, MODES, check_kind, check_mode

# torch and the tool's modules load when the command runs, not when `zoo-analysis --help` builds
# the parser

__all__ = ["add_cli"]

DEFAULT_MAX_TOKENS = 256


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise AnalysisError(f"{option} must be comma-separated layer indices, got {text!r}") from None


def _validate(args) -> None:
    # everything cheap, before loading anything or touching --out
    check_kind(args.kind)
    check_mode(args.mode)
    layers = _int_list(args.layers, "--layers")
    eval_ks = _int_list(args.eval_ks, "--eval-ks") or []
    if layers is None and args.n is None:
        raise AnalysisError("give --n (how many to drop) or --layers")
    if layers is not None and args.n is not None and args.n != len(layers):
        raise AnalysisError(f"--n {args.n} does not match the {len(layers)} --layers")
    if args.n is not None and args.n < 0:
        raise AnalysisError("--n must be at least 0")
    if any(k < 0 for k in eval_ks):
        raise AnalysisError("--eval-ks must be >= 0")
    runner.check_at_least(args, "num_prompts", "eval_prompts", "max_tokens", "batch_size", "speed_rounds")
    runner.check_token_inputs(args, "prompts")
    if args.mc and not os.path.isfile(args.mc):
        raise AnalysisError(f"multiple-choice file not found: {args.mc}")


def _run(args, run: runner.Run) -> int:
    from ..models import DecoderAdapter
    from .export import default_repo_id, model_card, save_dropped
    from .report import run_drop
    from .surgery import check_droppable

    kind = check_kind(args.kind)
    mode = check_mode(args.mode)
    layers = _int_list(args.layers, "--layers")
    eval_ks = _int_list(args.eval_ks, "--eval-ks") or []
    out = run.out
    loaded = run.load(args.model)
    adapter = DecoderAdapter(loaded.model)
    check_droppable(adapter)
    max_tokens = runner.resolve_max_tokens(adapter, args.max_tokens, default=DEFAULT_MAX_TOKENS, names=[args.model])
    if not args.no_speed:  # the speed prompt (up to 64 tokens) plus the decoded ones
        limit = runner.max_positions(adapter)
        if limit is not None and min(max_tokens, 64) + args.new_tokens > limit:
            raise AnalysisError(f"--new-tokens {args.new_tokens} after a {min(max_tokens, 64)}-token prompt is "
                                f"longer than {args.model} can take ({limit} positions); lower --new-tokens")
    L = adapter.num_layers
    blocks, inputs = runner.token_inputs(args, loaded.tokenizer, num_blocks=args.num_prompts + args.eval_prompts,
                                         max_tokens=max_tokens if args.text_stream else (
                                             args.max_tokens or runner.max_positions(adapter)),
                                         vocab_size=getattr(adapter.config, "vocab_size", None))
    report, dropped_model = run_drop(
        adapter, loaded.tokenizer, kind=kind, n=args.n, layers=layers, mode=mode, name=args.model,
        prompts=args.prompts, num_prompts=args.num_prompts, eval_prompts=args.eval_prompts,
        max_tokens=max_tokens, batch_size=args.batch_size, eval_ks=eval_ks, mc=args.mc,
        mc_limit=args.mc_limit, speed=not args.no_speed, new_tokens=args.new_tokens, repeats=args.speed_rounds,
        progress=run.progress, tokens=blocks, inputs=inputs, add_special_tokens=args.add_special_tokens,
    )
    repo_id = args.repo_id or default_repo_id(args.model, kind, len(report.dropped))
    with run.staging() as staging:
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
    if args.publish:
        from zoo.hub import publish_to_cache

        revision = publish_to_cache(os.path.join(out, "model"), repo_id)
        print(f"published {repo_id} (revision {revision[:12]}) to the local Hugging Face cache")
    base = report.rows[0]
    last = next((r for r in report.rows[1:] if r.k == len(report.dropped) and r.dropped == report.dropped), report.rows[-1])
    print(f"dropped {kind} {report.dropped} ({report.mode}) from {args.model}: perplexity "
          f"{base.perplexity:.2f} -> {last.perplexity:.2f}" + speed_summary(base, last))
    run.print_files("written to")
    return 0


def speed_summary(base, last) -> str:
    """``, decode 10.1 [9.8–10.4] -> 10.6 [10.2–11.0] tokens/s (×1.05 [1.02–1.08] ...)`` from the rows'
    paired measurements (median [quartiles]; "not resolved" when the quartiles span no change)."""
    from .evaluation import speedup_text

    if not (base.speed and last.speed):
        return ""
    parts = []
    for phase, digits in (("prefill", 0), ("decode", 1)):
        cells = []
        for row in (base, last):
            q1, median, q3 = row.speed[f"{phase}_tokens_per_s"]
            cells.append(f"{median:.{digits}f} [{q1:.{digits}f}–{q3:.{digits}f}]")
        parts.append(f"{phase} {cells[0]} -> {cells[1]} tokens/s ({speedup_text(last, phase)})")
    return ", " + ", ".join(parts) + f"; median [quartiles] of {last.speed['rounds']} paired rounds, {last.speed['clock']} time"


def add_cli(subparsers) -> None:
    parser = runner.add_tool(
        subparsers, "drop", run=_run, validate=_validate,
        help="drop the least important attention / MLP sublayers or blocks (LLM-Drop) and save the faster model",
        description="Attention, MLP and block dropping by input/output cosine similarity (He et al. 2024).",
        out_help="new output folder: model/ (the repo), report.json/.md, figures",
    )
    parser.add_argument("--kind", required=True, choices=KINDS, help="what to drop")
    parser.add_argument("--n", type=int, default=None, help="how many to drop (chosen by score)")
    parser.add_argument("--layers", default=None, help="drop exactly these layers (comma-separated) instead")
    parser.add_argument("--mode", default="one-shot", choices=MODES,
                        help="one-shot: top n of one score pass; iterative: one per round, rescoring each time")
    parser.add_argument("--repo-id", default=None, help="repo id for the card and --publish (default zooscope/<model>-drop-<kind>-<n>)")
    parser.add_argument("--publish", action="store_true", help="also place the repo in the local Hugging Face cache (loads by name)")
    parser.add_argument("--prompts", help="calibration/evaluation text: file (blank-line separated) or datasets name; default built-in text")
    parser.add_argument("--num-prompts", type=int, default=8, help="calibration prompts")
    parser.add_argument("--eval-prompts", type=int, default=4, help="held-out prompts for perplexity")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help=f"tokens per prompt (default {DEFAULT_MAX_TOKENS}, or the model's positions if fewer)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--eval-ks", default=None, help="more k for the before/after table, e.g. 1,2,4,8")
    parser.add_argument("--mc", default=None, help="multiple-choice JSONL (question, choices, answer) for accuracy")
    parser.add_argument("--mc-limit", type=int, default=None, help="use only the first N multiple-choice items")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens decoded for the generation speed")
    parser.add_argument("--no-speed", action="store_true", help="skip the throughput and timing measurements")
    runner.add_token_inputs(parser, text_option="--prompts")
    parser.add_argument("--speed-rounds", type=int, default=5,
                        help="paired, alternating timing rounds (full model, dropped model) for the speed interval")
