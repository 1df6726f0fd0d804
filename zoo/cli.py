"""`zoo`: list the zoo, train a recipe, publish it, evaluate a published checkpoint by name, draw an architecture."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_list(args) -> int:
    # Read from the files (zoo.catalog), not by importing the registry: no torch, so it starts fast.
    import fnmatch

    from . import catalog
    from .hub import published_ids, recipe_repo_prefix
    from .recipes import list_recipes, read_recipe_file

    def wanted(name):
        return args.pattern is None or fnmatch.fnmatch(name, args.pattern)

    published = set(published_ids())
    print("architectures:")
    for arch in catalog.architectures():
        if wanted(arch.name):
            print(f"  {arch.name:<20} {arch.task_auto_class or 'AutoModel':<34} {arch.description}")
    print("recipes:")
    recipe_ids = list_recipes()
    for recipe_id in filter(wanted, recipe_ids):
        raw = read_recipe_file(recipe_id)
        data_name = (raw.get("data") or {}).get("name", "?")
        where = "published" if recipe_id in published else "not published here"
        print(f"  {recipe_id:<32} {raw.get('architecture', '?'):<16} {data_name:<20} {recipe_repo_prefix()}{recipe_id} ({where})")
    others = sorted(published - set(recipe_ids))
    if others:
        print("published checkpoints without a recipe here:", ", ".join(others))
    print("data sets:", ", ".join(catalog.dataset_names()))
    return 0


def cmd_train(args) -> int:
    from .training import main

    argv = [args.recipe, *args.overrides] + (["--resume"] if args.resume else []) + (["--overwrite"] if args.overwrite else [])
    return main(argv + (["--output-dir", args.output_dir] if args.output_dir else []))


def cmd_publish(args) -> int:
    from .hub import publish

    result = publish(args.recipe, push=args.push, repo_dir=args.repo_dir, output_dir=args.output_dir)
    print(f"repo folder:  {result.repo_dir}")
    print(f"local cache:  {result.repo_id} @ {result.revision}")
    if result.overrides:
        print(f"note:         the run used overrides of the recipe ({' '.join(result.overrides)}); the card says so")
    if result.url:
        print(f"pushed:       {result.url}")
    import json

    from .registry import auto_class_for

    auto = auto_class_for(json.loads((result.repo_dir / "config.json").read_text())).__name__  # AutoModel: the backbone
    print(f'load it:      {auto}.from_pretrained("{result.repo_id}", trust_remote_code=True)')
    return 0


def _published_recipe(repo_id: str, revision: str | None = None):
    """The recipe a published repo was trained with (its recipe.yaml), else the local recipe of that id."""
    from .hub import cached_snapshot, hub_reachable
    from .recipes import list_recipes, load_recipe

    snapshot = cached_snapshot(repo_id, revision)
    path = snapshot / "recipe.yaml" if snapshot is not None else None
    if (path is None or not path.is_file()) and hub_reachable():
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(repo_id, "recipe.yaml", revision=revision))
        except Exception:  # noqa: BLE001 - no recipe.yaml on the Hub: fall back on the local recipe
            path = None
    if path is not None and path.is_file():
        return load_recipe(path)
    short = repo_id.split("/")[-1]
    if short in list_recipes():
        return load_recipe(short)
    from .errors import UserError

    raise UserError(f"{repo_id} has no recipe.yaml and there is no recipe {short!r} here: cannot tell what data to evaluate on")


def cmd_evaluate(args) -> int:
    from torch.utils.data import DataLoader

    from . import data
    from .errors import UserError
    from .hub import load_pretrained, recipe_repo_prefix
    from .training import TensorBatches, evaluate, whole_batch
    from .training.loop import model_input_columns

    model = load_pretrained(args.name, trust_remote_code=True if args.trust_remote_code else None, revision=args.revision)
    repo_id = args.name if "/" in args.name else recipe_repo_prefix() + args.name
    recipe = _published_recipe(repo_id, args.revision)
    split = recipe.data.get("eval_split", recipe.training.get("eval_split", "test"))
    dataset = data.load(recipe.data_name, split=split, **recipe.data_params)
    if len(dataset) == 0:
        raise UserError("evaluation split is empty")
    batches = DataLoader(TensorBatches(dataset, model_input_columns(model, dataset)), batch_size=1024, collate_fn=whole_batch)
    metrics = evaluate(model, batches)
    print(json.dumps({"model": repo_id, "data": recipe.data_name, "split": split, **metrics}, indent=2))
    return 0


def cmd_results(args) -> int:
    from .results import collect_results, write_results

    rows = collect_results(outputs_root=args.outputs)
    md, csv_path = write_results(args.out, args.csv, rows=rows)
    trained = sum(r.measured is not None for r in rows)
    print(f"{len(rows)} recipes ({trained} with a measured number) -> {md}, {csv_path}")
    return 0


def cmd_diagram(args) -> int:
    from .diagram import draw_diagram

    out = Path(args.out or f"{Path(args.name).name}.svg")
    paths = [out] + ([out.with_suffix(".png")] if args.png and out.suffix != ".png" else [])
    circuit = draw_diagram(args.name, paths, tiny=args.tiny)
    if args.json:
        json_path = out.with_suffix(".json")
        tmp = json_path.with_name(json_path.name + ".partial")
        tmp.write_text(json.dumps(circuit.to_json(), indent=1) + "\n")
        tmp.replace(json_path)
        paths.append(json_path)
    print(f"{circuit.model}: {len(circuit.operations)} operations, {len(circuit.wires)} wires -> "
          + ", ".join(map(str, paths)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="zooscope's model zoo: list, train, publish, evaluate, results, diagram.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="architectures, recipes (published checkpoints) and data sets")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'mlp*'")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train a recipe (same as `python train.py`; use accelerate launch / torchrun for N processes)")
    p.add_argument("recipe", help="recipe YAML or id")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete the run already in the output folder first")
    p.add_argument("--output-dir")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("publish", help="build the Hub repo of a trained recipe and place it in the local HF cache")
    p.add_argument("recipe", help="recipe YAML or id")
    p.add_argument("--push", action="store_true", help="also upload to the Hub (needs a token)")
    p.add_argument("--repo-dir", help="where to build the repo folder (default: hub_repos/<id>)")
    p.add_argument("--output-dir", help="the training output to publish (default: outputs/<id>)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("evaluate", help="load a published checkpoint by name and evaluate it on its recipe's data")
    p.add_argument("name", help="zooscope/<id> or <id>")
    p.add_argument("--revision", help="a branch, tag or 40-hex commit (a pinned commit's code is trusted)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run the repo's code even when it differs from the installed zooscope's")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("results", help="write docs/ZOO.md and docs/zoo_results.csv: every recipe, our number beside the paper's")
    p.add_argument("--out", default="docs/ZOO.md", help="the markdown table (default: docs/ZOO.md)")
    p.add_argument("--csv", default="docs/zoo_results.csv", help="the same table as CSV (default: docs/zoo_results.csv)")
    p.add_argument("--outputs", help="folder holding <id>/metrics.json for each recipe (default: each recipe's output_dir)")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("diagram", help="draw the neural circuit diagram of an architecture, recipe or saved model (SVG/PNG)")
    p.add_argument("name", help="an architecture (zoo list), a recipe id or YAML, or a folder with a saved model")
    p.add_argument("--out", help="output file, .svg / .png / .pdf (default: NAME.svg)")
    p.add_argument("--png", action="store_true", help="also write a PNG beside the SVG (what model cards embed)")
    p.add_argument("--json", action="store_true", help="also write the traced circuit (operations, wires, shapes) as JSON")
    p.add_argument("--tiny", action="store_true", help="draw an architecture at its tiny test configuration")
    p.set_defaults(func=cmd_diagram)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import run_cli

    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
