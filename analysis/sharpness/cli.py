"""``zoo-analysis sharpness``: Hessian trace (Hutchinson, with an interval), ‖H‖_F, top-k
eigenvalues (Lanczos) and, for tiny models, the exact spectrum, of a model's loss on the first
examples of a zoo data set; on the shared runner (analysis.runner)."""
from __future__ import annotations

import argparse

from .. import runner
from ..errors import AnalysisError

__all__ = ["add_cli"]


def _validate(args: argparse.Namespace) -> None:
    runner.check_at_least(args, "limit", "batch_size", "top_k", "chunk")
    runner.check_at_least(args, "probes", minimum=2)
    if args.iterations is not None and args.iterations < args.top_k:
        raise AnalysisError(f"--iterations {args.iterations} cannot give --top-k {args.top_k} eigenvalues")
    if not 0 < args.confidence < 1:
        raise AnalysisError("--confidence must be in (0, 1)")
    from zoo import data as zoo_data

    if args.data not in zoo_data.list_datasets():
        raise AnalysisError(f"unknown data set {args.data!r}; zoo data sets: {', '.join(zoo_data.list_datasets())}")
    from .inputs import parse_data_args

    parse_data_args(args.data_arg)


def _load(args, run):
    import zoo.registry  # noqa: F401  registers the zoo architectures with the Auto classes

    from ..errors import UserError
    from ..models import load_model

    options = runner.load_options(args)
    last = None
    for task in ("sequence-classification", "image-classification", "auto"):
        try:
            return load_model(args.model, task=task, tokenizer=False, **options).model
        except (UserError, ValueError, KeyError) as error:
            last = error
    raise last


def _run(args: argparse.Namespace, run: runner.Run) -> int:
    import torch

    from .inputs import dataset_batches, parse_data_args
    from .report import measure_sharpness

    model = _load(args, run)
    if args.float64:
        model = model.double()
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    device = next((p.device for p in model.parameters()), None)
    batches, described = dataset_batches(model, args.data, split=args.split, limit=args.limit,
                                         batch_size=args.batch_size, data_args=parse_data_args(args.data_arg),
                                         model_name=args.model, device=device, dtype=dtype)
    exact = {"auto": "auto", "yes": True, "no": False}[args.exact]
    report = measure_sharpness(model, batches, loss=args.loss, probes=args.probes, top_k=args.top_k,
                               iterations=args.iterations, exact=exact, seed=args.seed, chunk=args.chunk,
                               confidence=args.confidence, mode=args.hvp, model_name=args.model, data_name=described,
                               frobenius=not args.no_frobenius)
    print(report.summary_markdown())
    if run.out is not None:
        with run.staging() as folder:
            report.write(folder, plots=not args.no_plots)
        run.print_files("sharpness results written to")
    return 0


def add_cli(subparsers) -> None:
    from .names import LOSSES, MODES

    parser = runner.add_tool(
        subparsers, "sharpness", run=_run, validate=_validate, out="optional",
        help="Hessian sharpness of a model's loss: trace, Frobenius norm, top eigenvalues (Wu & Su 2023)",
        description="Hessian-vector products through torch.func (no P×P Hessian): Hutchinson's trace with a "
                    "confidence interval (all probes batched by vmap), ‖H‖_F from the same probes, the top-k "
                    "eigenvalues by Lanczos, and the exact spectrum for tiny models, of the model's loss on the "
                    "first --limit examples of a zoo data set.",
    )
    parser.add_argument("--data", required=True, help="zoo data set (e.g. xor_cluster, fashion_mnist)")
    parser.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="a data set parameter (repeatable), e.g. --data-arg label_noise=0.1; "
                             "dim defaults to the model's input_dim")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=512, help="use the first N examples")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--loss", choices=LOSSES, default="model", help="the model's own loss, or one from the logits")
    parser.add_argument("--probes", type=int, default=64, help="Hutchinson probes")
    parser.add_argument("--chunk", type=int, default=None, help="probes per batched pass (memory), default all")
    parser.add_argument("--top-k", type=int, default=1, help="eigenvalues from Lanczos")
    parser.add_argument("--iterations", type=int, default=None, help="Lanczos steps (default max(3k, 2k + 30))")
    parser.add_argument("--exact", choices=("auto", "yes", "no"), default="auto",
                        help="also build the exact Hessian (auto: up to 2000 parameters)")
    parser.add_argument("--hvp", choices=MODES, default="reverse",
                        help="Hessian-vector products: reverse (vjp of grad, one graph replayed) or forward (jvp of grad)")
    parser.add_argument("--no-frobenius", action="store_true",
                        help="skip ‖H‖_F: the trace then needs only the quadratic forms vᵀHv, computed by "
                             "second-order forward mode where the loss's operations allow (much faster than H v)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--float64", action="store_true", help="measure in float64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true")
