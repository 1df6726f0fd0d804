"""``zoo-analysis match``: the convergent-learning CLI, on the shared runner (analysis.runner):
common options (--models, --out, --dtype, --device, --threads, --quiet, --trust-remote-code),
validation before anything loads, the atomic --out staging and the one-line error path."""
from __future__ import annotations

import argparse

from .. import runner
from ..errors import AnalysisError, UserError

# torch and the tool's modules load when the command runs, not when `zoo-analysis --help` builds
# the parser

__all__ = ["add_cli"]


def _validate(args: argparse.Namespace) -> None:
    """Everything cheap, before anything is loaded or written (the runner has checked the
    common options, and --out when given, already)."""
    if args.list_layers:
        if not args.models:
            raise AnalysisError("--list-layers needs --models")
    else:
        if len(args.models) < 2:
            raise AnalysisError("match needs at least two --models")
        if not args.layers:
            raise AnalysisError("name the layers to compare with --layers (module paths; see --list-layers)")
        if not args.out:
            raise AnalysisError("--out is required (a new or empty folder)")
    runner.check_at_least(args, "batch_size", "limit", "num_prompts", "max_tokens")
    if args.mi_bins and args.mi_bins < 2:
        raise AnalysisError("--mi-bins must be at least 2")
    if not 0 < args.strong <= 1:
        raise AnalysisError("--strong must be in (0, 1]")
    runner.check_token_inputs(args, "text")
    if args.data:
        from zoo import data as zoo_data

        if args.data not in zoo_data.list_datasets():
            raise AnalysisError(f"unknown data set {args.data!r}; zoo data sets: {', '.join(zoo_data.list_datasets())}")


def _run(args: argparse.Namespace, run: runner.Run) -> int:
    import torch

    from .compare import compare_models
    from ..prompts import describe_tokens
    from .inputs import (check_inputs, check_layers, check_tokenizers_first, image_batches, layer_shapes, list_layers,
                         load_models, text_batches, text_prompts)

    options = runner.load_options(args)
    check_tokenizers_first(args.models, args.text, trust_remote_code=options["trust_remote_code"],
                           revision=options.get("revision"))
    loaded = load_models(args.models, **options)
    models = [item.model for item in loaded]
    kind = check_inputs(models, args.models)

    def make_batches(limit, batch_size):
        if kind == "pixel_values":
            if not args.data:
                from zoo import data as zoo_data

                raise AnalysisError(f"image models need --data (one of the zoo data sets: {', '.join(zoo_data.list_datasets())})")
            total, batches = image_batches(args.data, split=args.split, limit=limit, batch_size=batch_size)
            return total, batches, {"kind": kind, "description": f"zoo data set {args.data} ({args.split} split)",
                                    "data": args.data, "split": args.split}
        if kind == "input_ids":
            count = args.num_prompts if limit is None else min(limit, args.num_prompts)
            tokenizers = [i.tokenizer for i in loaded]
            blocks, described = runner.token_inputs(args, tokenizers[0], num_blocks=count, max_tokens=args.max_tokens,
                                                    vocab_size=min(getattr(m.config, "vocab_size", None) or 2**62
                                                                   for m in models))
            if blocks is None:
                blocks = text_prompts(tokenizers, args.models, args.text, num_prompts=count,
                                      max_tokens=args.max_tokens, add_special_tokens=args.add_special_tokens)
                described = describe_tokens(blocks, args.text or "builtin", "text", args.add_special_tokens)
            total, batches = text_batches(tokenizers, args.models, tokens=blocks, batch_size=batch_size)
            return total, batches, {"kind": kind, "description": f"{described['kind']} ({described['source']})",
                                    "text": args.text, "max_tokens": args.max_tokens, "tokens": described}
        raise AnalysisError(f"models taking {kind} are not supported yet (image pixel_values or text input_ids)")

    if args.list_layers:
        if kind == "pixel_values" and not args.data:  # shapes from the model's own dummy inputs
            dummy = getattr(models[0], "dummy_inputs", None)
            batch = {kind: dummy[kind]} if isinstance(dummy, dict) and kind in dummy else None
        else:
            _, batches, _ = make_batches(2, 2)
            try:
                batch = next(batches)
            except UserError:
                raise
            except Exception:
                batch = None
        for name, item in zip(args.models, loaded):
            shapes = layer_shapes(item.model, batch) if batch is not None else {}
            print(f"{name} ({type(item.model).__name__}, input {kind}): layer path, module, output shape")
            for layer, cls in list_layers(item.model):
                print(f"  {layer}  {cls}  {shapes.get(layer, '')}")
        return 0

    for item, name in zip(loaded, args.models):
        check_layers(item.model, args.layers, name)
    total, batches, inputs = make_batches(args.limit, args.batch_size)
    inputs["examples"] = total
    report = compare_models(models, args.layers, batches, names=args.models, inputs=inputs, total=total,
                            mi_bins=args.mi_bins, strong=args.strong, rotations=args.rotations,
                            sparse=not args.no_sparse, clusters=0 if args.no_clusters else args.clusters,
                            seed=args.seed, progress=run.progress,
                            compute_dtype=torch.float64 if args.float64 else torch.float32)
    with run.staging() as folder:
        report.write_files(folder, plots=not args.no_plots)
    print(report.summary_markdown())
    run.print_files("convergent-learning results written to")
    return 0


def add_cli(subparsers) -> None:
    parser = runner.add_tool(
        subparsers, "match", run=_run, validate=_validate, models="many", out="optional",
        out_help="new or empty output folder (not needed with --list-layers)",
        help="convergent learning: match units of two or more models (Li et al. 2015)",
        description="Correlate the units of the same layers of two or more models on the same inputs, in one "
                    "streaming pass, then match them one-to-one and semi-, compare with a random-rotation "
                    "baseline, predict one net's units sparsely from the other's, and cluster both nets' units.",
    )
    parser.add_argument("--layers", nargs="+", default=[],
                        help="module paths as named_modules() gives them (the module output is the units), "
                             "e.g. layers.0.act or model.layers.0.mlp.act_fn")
    parser.add_argument("--list-layers", action="store_true", help="list the layer names the models offer and exit")
    parser.add_argument("--data", help="zoo data set for image models (e.g. fashion_mnist)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="use the first N examples / prompts")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--text", help="text for language models: a file or a datasets name (default: built-in English)")
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--mi-bins", type=int, default=0, help="also match by binned mutual information with this many bins (e.g. 8)")
    parser.add_argument("--strong", type=float, default=0.5, help="correlation that counts as a strong match")
    parser.add_argument("--rotations", type=int, default=3,
                        help="random rotations averaged for the baseline (0 with --no-sparse --no-clusters: "
                             "matching only, from the cheaper cross-model statistics)")
    parser.add_argument("--clusters", type=int, default=16, help="spectral-clustering groups")
    parser.add_argument("--no-clusters", action="store_true")
    parser.add_argument("--no-sparse", action="store_true", help="skip the sparse-prediction λ path")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--float64", action="store_true", help="compute batch products in float64 (sums are always float64)")
    parser.add_argument("--seed", type=int, default=0)
    runner.add_token_inputs(parser, text_option="--text")
