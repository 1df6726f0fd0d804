"""``zoo-analysis dnr``: the dead neuron rate of a checkpoint on a zoo data set, on the shared runner."""
from __future__ import annotations

import argparse

from .. import runner
from ..errors import AnalysisError

__all__ = ["add_cli"]


def _validate(args: argparse.Namespace) -> None:
    runner.check_at_least(args, "batch_size", "limit")
    from zoo import data as zoo_data

    if args.data not in zoo_data.list_datasets():
        raise AnalysisError(f"unknown data set {args.data!r}; zoo data sets: {', '.join(zoo_data.list_datasets())}")


def model_batches(model, data: str, split: str, limit: int | None, batch_size: int):
    """(examples, number of batches, iterator of input dicts) of a zoo data set's columns the model's forward takes."""
    import inspect

    from zoo import data as zoo_data

    dataset = zoo_data.load(data, split=split)
    accepted = set(inspect.signature(model.forward).parameters) - {"labels"}
    columns = [c for c in dataset.column_names if c in accepted]
    if not columns:
        raise AnalysisError(f"data set {data!r} has no column the model takes (its columns: {', '.join(dataset.column_names)}; "
                            f"the model's inputs: {', '.join(sorted(accepted))})")
    total = len(dataset) if limit is None else min(limit, len(dataset))

    def batches():
        for start in range(0, total, batch_size):
            rows = dataset[start:min(start + batch_size, total)]
            yield {c: rows[c] for c in columns}
    return total, -(-total // batch_size), batches()


def _run(args: argparse.Namespace, run: runner.Run) -> int:
    from ..convergent.inputs import load_models
    from .core import dead_neuron_rate
    from .report import summary_markdown, write_files

    # a causal LM where it is one, else the task class the checkpoint was saved with, else AutoModel
    model = load_models([args.model], **runner.load_options(args))[0].model
    total, n_batches, batches = model_batches(model, args.data, args.split, args.limit, args.batch_size)
    result = dead_neuron_rate(model, batches, model_name=args.model, data=f"{args.data} ({args.split})",
                              progress=run.progress, total=n_batches)
    with run.staging() as folder:
        write_files(result, folder, plots=not args.no_plots)
    print(summary_markdown(result))
    run.print_files("dead neuron rate written to")
    return 0


def add_cli(subparsers) -> None:
    parser = runner.add_tool(
        subparsers, "dnr", run=_run, validate=_validate, models="one", out="required",
        help="dead neuron rate: how often a model's ReLU units output zero (Activating-while-Pruning)",
        description="Count, over a zoo data set in eval mode, the fraction of ReLU-family unit outputs that are <= 0, "
                    "per layer and overall. During training the same count is the dynamic DNR (analysis.dnr.DNRMeter).",
    )
    parser.add_argument("--data", default="fashion_mnist", help="zoo data set (default: fashion_mnist)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="use the first N examples")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-plots", action="store_true")
