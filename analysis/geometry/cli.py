"""``zoo-analysis geometry``: representational geometry of layers of one or two models on a zoo
data set (CKA, RSA, kernel–target alignment, parallelism score, CCGP), or of two saved arrays."""
from __future__ import annotations

import argparse

from .. import runner
from ..errors import AnalysisError

__all__ = ["add_cli"]


def _parse_options(pairs: list[str]) -> dict:
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AnalysisError(f"--data-option takes key=value, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


def _validate(args: argparse.Namespace) -> None:
    if args.arrays:
        if args.models:
            raise AnalysisError("give either --models (with --data and --layers) or --arrays, not both")
        if len(args.arrays) != 2:
            raise AnalysisError("--arrays takes two .npy files (the two representations of the same examples)")
        return
    if not args.models:
        raise AnalysisError("geometry needs --models (one or two models) or --arrays A.npy B.npy")
    if len(args.models) > 2:
        raise AnalysisError("geometry compares one model's layers or two models' layers: give at most two --models")
    if not args.data:
        raise AnalysisError("--data is required with --models (a zoo data set, e.g. geometry_task)")
    if not args.layers:
        raise AnalysisError("name the layers with --layers (module paths as named_modules() gives them; 'input' is the input)")
    runner.check_at_least(args, "batch_size", "limit")
    _parse_options(args.data_option)
    from zoo import data as zoo_data

    if args.data not in zoo_data.list_datasets():
        raise AnalysisError(f"unknown data set {args.data!r}; zoo data sets: {', '.join(zoo_data.list_datasets())}")


def _load_array(path: str):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise AnalysisError(f"cannot read {path} as a .npy array: {error}") from None


def _run(args: argparse.Namespace, run: runner.Run) -> int:
    import numpy as np

    from .collect import INPUT, dataset_batches, layer_representations
    from .report import measure

    targets = variables = None
    input_name = None
    if args.arrays:
        representations = {f"A ({args.arrays[0]})": _load_array(args.arrays[0]),
                           f"B ({args.arrays[1]})": _load_array(args.arrays[1])}
        settings = {"arrays": args.arrays}
    else:
        options = _parse_options(args.data_option)
        representations = {}
        for name in args.models:
            loaded = run.load(name, task=args.task, tokenizer=False)
            model = loaded.model
            main = getattr(model, "main_input_name", "input_features")
            if main != "input_features":
                raise AnalysisError(f"{name} takes {main!r}; geometry supports vector-input models (input_features) so far")
            batches, columns = dataset_batches(args.data, options, args.split, args.limit, args.batch_size, main)
            reps = layer_representations(model, args.layers, batches, model_name=name)
            prefix = f"{name}:" if len(args.models) > 1 else ""
            for layer, array in reps.items():
                if layer == INPUT and INPUT in {k.split(":")[-1] for k in representations}:
                    continue  # the same input for both models
                representations[f"{prefix}{layer}" if layer != INPUT else INPUT] = array
        if INPUT in representations:
            input_name = INPUT
        if args.targets and args.targets in columns:
            targets = np.asarray(columns[args.targets])
        elif args.targets != "labels":
            raise AnalysisError(f"data set {args.data!r} has no column {args.targets!r}")
        if args.variables:
            if args.variables not in columns:
                raise AnalysisError(f"data set {args.data!r} has no column {args.variables!r} (--variables)")
            variables = np.asarray(columns[args.variables])
        settings = {"models": args.models, "layers": args.layers, "data": args.data, "data_options": options,
                    "split": args.split, "limit": args.limit, "targets": args.targets, "variables": args.variables}
    report = measure(representations, targets=targets, variables=variables, input_name=input_name)
    report.settings = settings
    with run.staging() as folder:
        report.write(folder, plots=not args.no_plots)
    print(report.summary_markdown())
    run.print_files("geometry results written to")
    return 0


def add_cli(subparsers) -> None:
    parser = runner.add_tool(
        subparsers, "geometry", run=_run, validate=_validate, models="many", out="required",
        help="representational geometry: CKA, RSA, kernel-target alignment, parallelism, CCGP",
        description="Measure the geometry of named layers of one or two models on a zoo data set: linear CKA "
                    "(unbiased HSIC) and RSA between every two representations, kernel-target alignment, RSA and "
                    "CKA against the targets, and, given binary condition variables, the parallelism score and "
                    "cross-condition generalisation per variable. Or compare two saved .npy representations.",
    )
    parser.add_argument("--layers", nargs="+", default=[], help="module paths (named_modules()); 'input' is the model input")
    parser.add_argument("--data", help="zoo data set (e.g. geometry_task)")
    parser.add_argument("--data-option", nargs="*", default=[], metavar="KEY=VALUE",
                        help="data set parameters, e.g. alignment=0.8 target=low")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="use the first N examples")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--targets", default="labels", help="the data set column of the targets (default labels)")
    parser.add_argument("--variables", default=None,
                        help="column of binary condition variables for the parallelism score and CCGP (e.g. latents)")
    parser.add_argument("--arrays", nargs="+", default=[], metavar="NPY", help="two .npy files to compare instead of models")
    parser.add_argument("--task", default="sequence-classification", choices=["sequence-classification", "auto"],
                        help="the Auto class to load with: the zoo's vector-input heads (default) or the backbone")
    parser.add_argument("--no-plots", action="store_true")
