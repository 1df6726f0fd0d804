"""``zoo-analysis match``: the convergent-learning CLI (validation, loading, inputs, output)."""
from __future__ import annotations

import os

import torch

from ..errors import UserError
from .compare import compare_models
from .inputs import check_inputs, check_layers, image_batches, layer_shapes, list_layers, load_models, text_batches

__all__ = ["add_cli"]


def _cli(args) -> int:
    # validate everything cheap before loading anything or touching --out
    if args.list_layers:
        if not args.models:
            raise UserError("--list-layers needs --models")
    else:
        if len(args.models) < 2:
            raise UserError("match needs at least two --models")
        if not args.layers:
            raise UserError("name the layers to compare with --layers (module paths; see --list-layers)")
        if not args.out:
            raise UserError("--out is required (a new or empty folder)")
        out = os.path.abspath(args.out)
        if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
            raise UserError(f"--out {args.out} exists and is not an empty folder")
    for option in ("batch_size", "limit", "num_prompts", "max_tokens"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UserError(f"--{option.replace('_', '-')} must be at least 1")
    if args.mi_bins and args.mi_bins < 2:
        raise UserError("--mi-bins must be at least 2")
    if not 0 < args.strong <= 1:
        raise UserError("--strong must be in (0, 1]")
    if args.data:
        from zoo import data as zoo_data

        if args.data not in zoo_data.list_datasets():
            raise UserError(f"unknown data set {args.data!r}; zoo data sets: {', '.join(zoo_data.list_datasets())}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quiet:
        import transformers

        transformers.utils.logging.disable_progress_bar()

    loaded = load_models(args.models, dtype=args.dtype, device=args.device,
                         trust_remote_code=True if args.trust_remote_code else None)
    models = [item.model for item in loaded]
    kind = check_inputs(models, args.models)

    def make_batches(limit, batch_size):
        if kind == "pixel_values":
            if not args.data:
                from zoo import data as zoo_data

                raise UserError(f"image models need --data (one of the zoo data sets: {', '.join(zoo_data.list_datasets())})")
            total, batches = image_batches(args.data, split=args.split, limit=limit, batch_size=batch_size)
            return total, batches, {"kind": kind, "description": f"zoo data set {args.data} ({args.split} split)",
                                    "data": args.data, "split": args.split}
        if kind == "input_ids":
            total, batches = text_batches([i.tokenizer for i in loaded], args.models, args.text,
                                          num_prompts=args.num_prompts if limit is None else min(limit, args.num_prompts),
                                          max_tokens=args.max_tokens, batch_size=batch_size)
            return total, batches, {"kind": kind, "description": f"text ({args.text or 'built-in English'})",
                                    "text": args.text, "max_tokens": args.max_tokens}
        raise UserError(f"models taking {kind} are not supported yet (image pixel_values or text input_ids)")

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
                            seed=args.seed, progress=not args.quiet,
                            compute_dtype=torch.float64 if args.float64 else torch.float32)
    files = report.write(args.out, plots=not args.no_plots)
    print(report.summary_markdown())
    print(f"convergent-learning results written to {os.path.abspath(args.out)}:")
    for path in files:
        print(f"  {path}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "match", help="convergent learning: match units of two or more models (Li et al. 2015)",
        description="Correlate the units of the same layers of two or more models on the same inputs, in one "
                    "streaming pass, then match them one-to-one and semi-, compare with a random-rotation "
                    "baseline, predict one net's units sparsely from the other's, and cluster both nets' units.",
    )
    parser.add_argument("--models", nargs="+", default=[], help="zoo ids, Hub ids or folders (two or more)")
    parser.add_argument("--layers", nargs="+", default=[],
                        help="module paths as named_modules() gives them (the module output is the units), "
                             "e.g. layers.0.act or model.layers.0.mlp.act_fn")
    parser.add_argument("--list-layers", action="store_true", help="list the layer names the models offer and exit")
    parser.add_argument("--out", help="new or empty output folder")
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
    parser.add_argument("--dtype", default=None, help="model dtype: float32, bfloat16, float16 or auto")
    parser.add_argument("--device", default=None)
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a non-zooscope repo's own code")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_cli)
