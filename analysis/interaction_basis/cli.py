"""``zoo-analysis interaction-basis``: the interaction basis of a chain of layers of a zoo MLP on a
zoo data set (``--layers``), or of a decoder LM's MLP sublayer on prompts (``--mlp-layer``), the
interaction graph between consecutive layers, and its sparsity against PCA and the neurons."""
from __future__ import annotations

import argparse

from .. import runner
from ..errors import AnalysisError

__all__ = ["add_cli"]


def _validate(args: argparse.Namespace) -> None:
    if (args.mlp_layer is None) == (not args.layers):
        raise AnalysisError("give either --layers (module paths of a zoo model, with --data) or --mlp-layer N "
                            "(a decoder LM's MLP sublayer, on prompts)")
    runner.check_at_least(args, "batch_size", "limit", "num_prompts")
    runner.check_at_least(args, "max_tokens", minimum=2)
    runner.check_at_least(args, "integration_steps", minimum=0)
    if not 0 < args.rtol < 1:
        raise AnalysisError("--rtol must be between 0 and 1")
    if args.layers:
        if not args.data:
            raise AnalysisError("--layers needs --data (a zoo data set, e.g. fashion_mnist)")
        if len(args.layers) < 2:
            raise AnalysisError("--layers needs at least two node layers in forward order (e.g. input layers.0.act)")
        from zoo import data as zoo_data

        if args.data not in zoo_data.list_datasets():
            raise AnalysisError(f"unknown data set {args.data!r}; zoo data sets: {', '.join(zoo_data.list_datasets())}")
        from ..geometry.cli import _parse_options

        _parse_options(args.data_option)


def _decoder(args, run: runner.Run):
    from ..models import DecoderAdapter
    from ..prompts import load_prompts
    from .collect import decoder_mlp_nodes

    loaded = run.load(args.model)
    adapter = DecoderAdapter(loaded.model)
    max_tokens = runner.resolve_max_tokens(adapter, args.max_tokens, default=32, names=[args.model])
    prompts = load_prompts(loaded.tokenizer, args.prompts, num_prompts=args.num_prompts, max_tokens=max_tokens)
    batches = [{"input_ids": p.reshape(1, -1).to(adapter.device)} for p in prompts]
    settings = {"mlp_layer": args.mlp_layer, "num_prompts": len(prompts), "max_tokens": max_tokens,
                "family": adapter.family_name}
    return loaded.model, decoder_mlp_nodes(adapter, args.mlp_layer), batches, "input_ids", settings


def _zoo_model(args, run: runner.Run):
    from ..convergent.inputs import load_models
    from ..geometry.cli import _parse_options
    from ..geometry.collect import dataset_batches
    from .collect import module_nodes

    options = runner.load_options(args)
    model = load_models([args.model], dtype=options["dtype"], device=options["device"],
                        trust_remote_code=options["trust_remote_code"])[0].model
    main = getattr(model, "main_input_name", None) or "input_features"
    nodes = module_nodes(model, args.layers, args.model)
    data_options = _parse_options(args.data_option)
    batches, _ = dataset_batches(args.data, data_options, args.split, args.limit, args.batch_size, main)
    device = next(iter(model.parameters())).device
    batches = [{main: b[main].to(device)} for b in batches]
    settings = {"layers": args.layers, "data": args.data, "data_options": data_options, "split": args.split,
                "limit": args.limit}
    return model, nodes, batches, main, settings


def _run(args: argparse.Namespace, run: runner.Run) -> int:
    from .report import interaction_basis

    model, nodes, batches, main, settings = (_decoder if args.mlp_layer is not None else _zoo_model)(args, run)
    report = interaction_basis(model, nodes, batches, main, rtol=args.rtol, model_name=args.model, progress=run.progress,
                               integration_steps=args.integration_steps)
    report.settings = settings
    with run.staging() as folder:
        report.write(folder, plots=not args.no_plots)
    print(report.summary_markdown())
    run.print_files("interaction basis written to")
    return 0


def add_cli(subparsers) -> None:
    parser = runner.add_tool(
        subparsers, "interaction-basis", run=_run, validate=_validate,
        help="the interaction basis of a layer chain (Bushnaq et al. 2024) and its interaction graph",
        description="Rotate each node layer's activations to remove linear dependence between activations and "
                    "between the gradients passed back to it (the interaction basis: float64 eigendecompositions, "
                    "near-zero directions truncated), then attribute each layer's directions to the next layer's "
                    "(gradient x activation, squared) and measure how sparse that graph is against PCA and the "
                    "neuron basis. A zoo model's layers (--layers, module paths in forward order; 'input' is the "
                    "model's input) on a zoo data set, or a decoder LM's MLP sublayer (--mlp-layer N: its input, "
                    "hidden activations and output) on prompts.",
    )
    parser.add_argument("--layers", nargs="+", default=[], help="module paths in forward order ('input' first for the input)")
    parser.add_argument("--data", help="zoo data set (with --layers)")
    parser.add_argument("--data-option", nargs="*", default=[], metavar="KEY=VALUE", help="data set parameters")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=1000, help="use the first N examples (default 1000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--mlp-layer", type=int, default=None, help="decoder LMs: the layer whose MLP sublayer to analyse")
    parser.add_argument("--prompts", default=None, help="text file or datasets name; default: built-in English text")
    parser.add_argument("--num-prompts", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens per prompt (default 32)")
    parser.add_argument("--rtol", type=float, default=1e-10,
                        help="drop eigen-directions below rtol x the largest eigenvalue (default 1e-10)")
    parser.add_argument("--integration-steps", type=int, default=0,
                        help="edges by integrated gradients over N midpoint steps (default 0: gradient x activation)")
    parser.add_argument("--no-plots", action="store_true")
