"""The results table (docs/ZOO.md + docs/zoo_results.csv): every recipe, our number beside the paper's.

Like timm's results files, one row per recipe: the architecture, its parameter count, the data,
the metric we measured (from the run's ``outputs/<id>/metrics.json``, else from the copy
published in the local Hugging Face cache, else "not trained"), the paper's number for the same
metric, whether it reproduced, and the command that makes the number. The paper side comes from
the recipe's top-level ``paper:`` block, whose schema `validate_paper_block` checks:

    paper:
      title: "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms"
      citation: "Xiao et al. 2017"
      url: https://arxiv.org/abs/1708.07747
      bibtex: "@article{...}"          # optional
      claim: what the headline number measures
      metric: eval_accuracy            # the key of metrics.json "final" that is compared
      value: 0.871                     # the paper's number; null when it has none for this setting
      reproduced: yes | partly | no | n/a
      findings: docs/FINDINGS.md#...   # optional

`validate_paper_block` lives in zoo.paper (re-exported here), below zoo.recipes in the import
graph: recipes check the block while loading, and this table imports recipes.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UserError
from .paper import PAPER_OPTIONAL, PAPER_REQUIRED, REPRODUCED, paper_of, validate_paper_block  # noqa: F401 (re-exported)

NOT_TRAINED = "not trained"
# Measured full runs committed with the repo (metrics.json of a run that docs/FINDINGS.md names the
# command of): the table's last resort, so a fresh checkout still shows what was measured.
COMMITTED_RUNS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
DEFAULT_MD = Path("docs/ZOO.md")
DEFAULT_CSV = Path("docs/zoo_results.csv")
CSV_COLUMNS = ("recipe", "architecture", "parameters", "data", "metric", "measured", "measured_from",
               "paper_value", "paper", "paper_url", "reproduced", "note", "command")


@dataclass
class ResultRow:
    recipe: str
    architecture: str
    parameters: int
    data: str
    metric: str
    measured: float | None
    measured_from: str  # "outputs/<id>/metrics.json", "cache zooscope/<id>@<rev>" or "not trained"
    paper_value: float | None
    paper: str  # citation
    paper_url: str
    reproduced: str
    note: str
    command: str


def recipe_metric(recipe) -> str:
    """The metric a recipe is judged by: its paper block's, else its card's expected one, else accuracy."""
    paper = paper_of(recipe)
    if paper.get("metric"):
        return paper["metric"]
    expected = recipe.card.get("expected") or {}
    return next(iter(expected), "eval_accuracy")


def parameter_count(recipe) -> int:
    """Parameters of the recipe's model, built on the meta device (no memory, no weights)."""
    import torch

    from .registry import build_config, get_architecture

    arch = get_architecture(recipe.architecture)
    with torch.device("meta"):
        model = arch.model_class(build_config(arch.name, **recipe.config))
    return int(sum(p.numel() for p in model.parameters()))


def _run_differences(recipe, folder: Path) -> list[str]:
    """Dotted keys where the run in `folder` (its recipe.yaml) differs from `recipe`."""
    from .hub import recipe_differences
    from .recipes import load_recipe

    path = folder / "recipe.yaml"
    if not path.exists():
        return []
    try:
        run = load_recipe(path)
    except UserError:
        return ["recipe.yaml (unreadable)"]
    return [key for key, _, _ in recipe_differences(recipe, run)]


def measured_metrics(recipe, outputs_root: str | Path | None = None, cache_dir: str | Path | None = None,
                     committed_root: str | Path | None = COMMITTED_RUNS):
    """(final metrics, where they came from, note) for a recipe; (None, "not trained", "") when none.

    The run's own output folder wins over a published copy: it is what the weights came from.
    A run that did not finish, or that ran with overrides of the recipe, is said so in the note.
    """
    folder = Path(outputs_root) / recipe.id if outputs_root else recipe.resolved_output_dir()
    metrics_path = folder / "metrics.json"
    if metrics_path.exists():
        try:
            metrics = json.loads(metrics_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            return None, NOT_TRAINED, f"{metrics_path} unreadable ({error})"
        notes = []
        if not metrics.get("finished", True):
            notes.append(f"unfinished run (step {metrics.get('step')}/{metrics.get('total_steps')})")
        diff = _run_differences(recipe, folder)
        if diff:
            notes.append("trained with overrides: " + ", ".join(diff))
        try:
            shown = metrics_path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            shown = metrics_path
        return metrics.get("final") or {}, shown.as_posix(), "; ".join(notes)
    from .hub import cached_snapshot

    snapshot = cached_snapshot(recipe.repo_id, cache_dir=cache_dir)
    if snapshot is not None and (snapshot / "metrics.json").exists():
        metrics = json.loads((snapshot / "metrics.json").read_text())
        diff = _run_differences(recipe, snapshot)  # the published recipe.yaml is the run's
        note = "trained with overrides: " + ", ".join(diff) if diff else ""
        return metrics.get("final") or {}, f"cache {recipe.repo_id}@{snapshot.name[:8]}", note
    if snapshot is not None and (snapshot / "README.md").exists():  # a card without metrics.json: its model-index
        from huggingface_hub import ModelCard

        results = ModelCard.load(snapshot / "README.md").data.eval_results or []
        final = {r.metric_name: r.metric_value for r in results if r.metric_name}
        if final:
            return final, f"card {recipe.repo_id}@{snapshot.name[:8]}", "from the card's model-index (4 decimals)"
    committed = Path(committed_root) / f"{recipe.id}.metrics.json" if committed_root else None
    if committed is not None and committed.is_file():
        metrics = json.loads(committed.read_text())
        if metrics.get("recipe") == recipe.id and metrics.get("finished", True):
            return metrics.get("final") or {}, f"benchmarks/results/{committed.name}", "committed run (docs/FINDINGS.md has its command)"
    return None, NOT_TRAINED, ""


def collect_results(recipe_ids: list[str] | None = None, outputs_root: str | Path | None = None,
                    cache_dir: str | Path | None = None,
                    committed_root: str | Path | None = COMMITTED_RUNS) -> list[ResultRow]:
    """One ResultRow per recipe (every recipe found by zoo.recipes.list_recipes by default)."""
    from .recipes import list_recipes, load_recipe

    rows = []
    for recipe_id in recipe_ids if recipe_ids is not None else list_recipes():
        recipe = load_recipe(recipe_id)
        metric = recipe_metric(recipe)
        final, source, note = measured_metrics(recipe, outputs_root=outputs_root, cache_dir=cache_dir,
                                               committed_root=committed_root)
        measured = None
        if final is not None:
            measured = final.get(metric)
            if measured is None:
                note = "; ".join(filter(None, [note, f"metrics have no {metric!r}"]))
        paper = paper_of(recipe)
        source_path = recipe.source
        try:
            shown = source_path.resolve().relative_to(Path.cwd().resolve()).as_posix() if source_path else None
        except ValueError:
            shown = None
        rows.append(ResultRow(
            recipe=recipe.id, architecture=recipe.architecture, parameters=parameter_count(recipe),
            data=_data_label(recipe), metric=metric, measured=measured, measured_from=source,
            paper_value=paper.get("value"), paper=paper.get("citation", recipe.card.get("paper", "")),
            paper_url=paper.get("url", ""), reproduced=paper.get("reproduced", "n/a"), note=note,
            command=f"python train.py {shown or f'hub_configs/{recipe.id}.yaml'}",
        ))
    return rows


def _data_label(recipe) -> str:
    params = ", ".join(f"{k}={v}" for k, v in recipe.data_params.items())
    return f"{recipe.data_name} ({params})" if params else recipe.data_name


def _fmt(value) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def to_markdown(rows: list[ResultRow]) -> str:
    lines = [
        "# The zoo: every recipe, our number beside the paper's",
        "",
        "Generated by `zoo results` from hub_configs/*.yaml (the `paper:` blocks) and each run's",
        "`outputs/<id>/metrics.json` (else the copy published in the local Hugging Face cache, else",
        "the full run committed as benchmarks/results/<id>.metrics.json, whose command docs/FINDINGS.md",
        "gives). Do not edit by hand: rerun `zoo results` after training or publishing. \"not trained\"",
        "means none of these was found on the machine that wrote this file; the other round-1 numbers",
        "are in docs/FINDINGS.md. *reproduced* is the recipe's `paper.reproduced`: what docs/FINDINGS.md",
        "concluded from those runs. The same table as CSV: docs/zoo_results.csv.",
        "",
        "Each row comes from the recipe's top-level `paper:` block (title, citation, url, optional",
        "bibtex, claim, metric: the metrics.json key compared, value: the paper's number or null,",
        "reproduced: yes | partly | no | n/a, optional findings link), checked by",
        "`zoo.results.validate_paper_block` whenever the recipe is loaded.",
        "",
        "| recipe | architecture | parameters | data | metric | measured | paper | reproduced | command |",
        "|---|---|---:|---|---|---:|---|---|---|",
    ]
    for r in rows:
        measured = _fmt(r.measured) if r.measured is not None else (
            NOT_TRAINED if r.measured_from == NOT_TRAINED else "—")
        if r.measured is not None:
            measured += f" <sub>({r.measured_from})</sub>"
        if r.note:
            measured += f" <sub>{r.note}</sub>"
        number = "—" if r.paper_value is None else f"{r.paper_value:g}"  # as the paper prints it
        paper = f"{number} ([{r.paper}]({r.paper_url}))" if r.paper_url else (r.paper or "—")
        lines.append(f"| `{r.recipe}` | {r.architecture} | {r.parameters:,} | {r.data} | {r.metric} | {measured} "
                     f"| {paper} | {r.reproduced} | `{r.command}` |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[ResultRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return buffer.getvalue()


def write_results(md_path: str | Path = DEFAULT_MD, csv_path: str | Path = DEFAULT_CSV,
                  rows: list[ResultRow] | None = None, **collect_kwargs) -> tuple[Path, Path]:
    """Write the markdown table and the CSV (each atomically: a reader never sees half a table)."""
    import os
    import tempfile

    rows = collect_results(**collect_kwargs) if rows is None else rows
    written = []
    for path, text in ((Path(md_path), to_markdown(rows)), (Path(csv_path), to_csv(rows))):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        written.append(path)
    return written[0], written[1]
