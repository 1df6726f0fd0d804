"""``zoo-analysis depth``: the depth probes of one model (and the linear maps to a second one)."""
from __future__ import annotations

import math
import os

from .. import runner
from ..errors import AnalysisError

from .names import ANALYSES

# torch and the tool's modules load when the command runs, not when `zoo-analysis --help` builds
# the parser

__all__ = ["add_cli"]

DEFAULT_MAX_TOKENS = 256
DEFAULT_NUM_PROMPTS = 8
#: the analyses a plain run does: the ones costing one forward (plus, for the lens, the head per
#: layer); the skip test costs ~L²/2 layer passes per position and is opt-in (--analyses ...,skip)
DEFAULT_ANALYSES = "contributions,lens,map"


def _positions_arg(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise AnalysisError(f"--exclude-positions takes comma-separated integers or 'none', not {text!r}") from None


def _analyses_arg(text: str) -> list[str]:
    analyses = [a.strip() for a in text.split(",") if a.strip()]
    unknown = set(analyses) - set(ANALYSES)
    if unknown:
        raise AnalysisError(f"unknown --analyses {sorted(unknown)} (contributions, skip, lens, map)")
    return analyses


def _lens_sample_arg(text: str) -> str | float:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise AnalysisError(f"--lens-sample takes a share of the tokens in (0, 1] or 'auto', not {text!r}")
    return value


def _validate(args) -> None:
    # everything cheap, before loading anything or touching --out
    runner.check_at_least(args, "num_prompts", "max_tokens", "batch_size", "skip_positions")
    if args.max_tokens is not None and args.max_tokens < 2:
        raise AnalysisError("--max-tokens must be at least 2")
    runner.check_at_least(args, "map_tokens")
    _positions_arg(args.exclude_positions)
    _analyses_arg(args.analyses)
    _lens_sample_arg(args.lens_sample)
    runner.check_token_inputs(args, "prompts")
    if args.prompts and not os.path.isfile(args.prompts) and args.prompts.endswith((".txt", ".md")):
        raise AnalysisError(f"prompt file not found: {args.prompts}")


def _run(args, run: runner.Run) -> int:
    from ..models import DecoderAdapter
    from .report import run_depth
    from .resources import auto_lens_sample, check_max_tokens, estimate_memory

    exclude = _positions_arg(args.exclude_positions)
    analyses = _analyses_arg(args.analyses)
    loaded = run.load(args.model)
    adapter = DecoderAdapter(loaded.model)
    check_max_tokens(adapter, args.max_tokens or 0, name=args.model)  # before loading a second model
    compare = compare_tok = None
    if args.compare:
        other = run.load(args.compare)
        compare, compare_tok = DecoderAdapter(other.model), other.tokenizer
    models = [adapter] + ([compare] if compare is not None else [])
    max_tokens = runner.resolve_max_tokens(models, args.max_tokens, default=DEFAULT_MAX_TOKENS,
                                           names=[args.model, args.compare])
    limit = args.max_tokens or min([m for m in (runner.max_positions(a) for a in models) if m] or [None])
    blocks, inputs = runner.token_inputs(args, loaded.tokenizer, num_blocks=args.num_prompts,
                                         max_tokens=max_tokens if args.text_stream else limit,
                                         vocab_size=getattr(adapter.config, "vocab_size", None))
    if blocks is not None:
        max_tokens = max(len(b) for b in blocks)
    estimate = estimate_memory(adapter, max_tokens=max_tokens, batch_size=args.batch_size, analyses=analyses,
                               skip_positions=args.skip_positions, skip_max_tokens=args.skip_max_tokens,
                               map_tokens=args.map_tokens, compare=compare)
    worst = max((k for k in estimate if k != "peak"), key=estimate.get, default=None)
    lower = {"skip": "--skip-max-tokens or --skip-positions", "map": "--map-tokens or --batch-size"}.get(
        worst, "--max-tokens or --batch-size")
    runner.check_memory(estimate["peak"], what=f"depth probes of {args.model} ({worst})", lower=lower,
                        device=adapter.device)
    lens_sample = _lens_sample_arg(args.lens_sample)
    if lens_sample == "auto":
        lens_sample = auto_lens_sample(adapter, max_tokens)
    cost = _print_estimate(args, adapter, analyses, max_tokens, compare, lens_sample,
                           num_prompts=len(blocks) if blocks is not None else args.num_prompts)
    report = run_depth(
        adapter, loaded.tokenizer, name=args.model, compare=compare, compare_tokenizer=compare_tok,
        compare_name=args.compare or "compare", prompts=args.prompts, num_prompts=args.num_prompts,
        max_tokens=max_tokens, batch_size=args.batch_size, exclude_positions=exclude,
        analyses=analyses, skip_prompts=args.skip_prompts, skip_positions=args.skip_positions,
        skip_mode=args.skip_mode, skip_max_tokens=args.skip_max_tokens, map_tokens=args.map_tokens,
        lens_sample=lens_sample, progress=run.progress, tokens=blocks, inputs=inputs,
        add_special_tokens=args.add_special_tokens,
    )
    report.estimate = cost
    with run.staging() as folder:
        report.write_into(folder)
    run.print_files(f"depth probes for {args.model} written to")
    return 0


def _print_estimate(args, adapter, analyses, max_tokens, compare, lens_sample: float, num_prompts: int) -> dict:
    """The FLOPs of each analysis and the seconds they should take at this machine's rate (timed on
    one forward), printed before anything costly runs; returned for report.json."""
    import sys

    from .resources import estimate_flops, format_estimate, measure_rate

    flops = estimate_flops(adapter, num_prompts=num_prompts, max_tokens=max_tokens, analyses=analyses,
                           skip_prompts=args.skip_prompts, skip_positions=args.skip_positions,
                           skip_max_tokens=args.skip_max_tokens, map_tokens=args.map_tokens, compare=compare,
                           lens_sample=lens_sample)
    rate = measure_rate(adapter, min(max_tokens, 128))
    line = format_estimate(flops, rate, rate_from="timed on one forward here")
    if "skip" not in analyses:
        skip = estimate_flops(adapter, num_prompts=num_prompts, max_tokens=max_tokens, analyses=["skip"],
                              skip_prompts=args.skip_prompts, skip_positions=args.skip_positions,
                              skip_max_tokens=args.skip_max_tokens)["skip"]
        line += f" (the skip test, opt-in with --analyses ...,skip: ~{skip / rate:.0f} s)"
    if "lens" in analyses and lens_sample < 1:
        exact = estimate_flops(adapter, num_prompts=num_prompts, max_tokens=max_tokens, analyses=["lens"])["lens"]
        line += (f"; the lens runs on {100 * lens_sample:.1f} % of the tokens, with standard errors "
                 f"(--lens-sample 1 for the exact lens: ~{exact / rate:.0f} s)")
    if not args.quiet:
        print(line, file=sys.stderr, flush=True)
    return {"flops": flops, "flops_per_s": rate, "seconds": {k: v / rate for k, v in flops.items()}}


def add_cli(subparsers) -> None:
    parser = runner.add_tool(
        subparsers, "depth", run=_run, validate=_validate, device_map=True,
        help="residual-stream depth probes (contributions, skip effects, logit lens, linear maps)",
        description="How does a decoder LM use its depth? (Csordás et al. 2025)",
    )
    parser.add_argument("--compare", help="a second model (same tokenizer) for the linear maps")
    parser.add_argument("--prompts", help="text file (blank-line separated) or datasets name; default: built-in English text")
    parser.add_argument("--num-prompts", type=int, default=DEFAULT_NUM_PROMPTS)
    parser.add_argument("--max-tokens", type=int, default=None,
                        help=f"tokens per prompt, at most the model's positions (default {DEFAULT_MAX_TOKENS}, "
                             "or the model's positions if fewer)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--exclude-positions", default="0",
                        help="positions left out of the averages, comma-separated, or 'none' (default: 0, the attention sink)")
    parser.add_argument("--analyses", default=DEFAULT_ANALYSES,
                        help="comma-separated subset of contributions,skip,lens,map (default: "
                             f"{DEFAULT_ANALYSES}; map needs --compare; the skip test is costly: its estimate is printed)")
    parser.add_argument("--skip-prompts", type=int, default=None, help="prompts for the skip test (default: all)")
    parser.add_argument("--skip-positions", type=int, default=4, help="intervention positions per prompt")
    parser.add_argument("--skip-mode", choices=["from", "future"], default="from",
                        help="from: skip positions >= t; future: skip positions < t and measure >= t (the reference's test)")
    parser.add_argument("--skip-max-tokens", type=int, default=None, help="cut prompts to this length for the skip test")
    parser.add_argument("--map-tokens", type=int, default=4096, help="tokens for the linear maps")
    parser.add_argument("--lens-sample", default="auto",
                        help="share of the tokens the logit lens evaluates the head on, in (0, 1], or 'auto' "
                             "(default: 1 when the exact lens costs at most 2 forwards, else the share whose head "
                             "costs half a forward; a sampled lens reports standard errors)")
    runner.add_token_inputs(parser, text_option="--prompts")
