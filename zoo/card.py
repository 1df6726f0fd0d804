"""The model card of a published repo: the training-curve plot, the real input, usage snippets
that run with only torch + transformers, the paper beside our number, limitations, file hashes.

Everything here is computed from the run that made the weights (its recipe.yaml, config.json and
metrics.json); zoo.hub assembles the repo around it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .recipes import Recipe

CURVES_PNG = "training_curves.png"
DIAGRAM_PNG = "circuit_diagram.png"



def draw_card_diagram(model_dir: Path, path: Path) -> bool:
    """The architecture's neural circuit diagram (zoo.diagram) as a PNG for the card, drawn from
    the repo's own config.json; False (with a warning) when the model cannot be traced."""
    import warnings

    from .diagram import draw_diagram

    try:
        draw_diagram(str(model_dir), [path], title=f"{json.loads((model_dir / 'config.json').read_text())['model_type']}: "
                                                    "neural circuit diagram")
    except UserError as error:
        warnings.warn(f"the card has no circuit diagram: {error}", stacklevel=2)
        return False
    return True


def _curve_rows(metrics: dict) -> tuple[list[dict], str]:
    curves = [r for r in metrics.get("curves") or [] if isinstance(r, dict)]
    if curves:
        return curves, "per evaluation step"
    return [r for r in metrics.get("history") or [] if isinstance(r, dict)], "per epoch"


def plot_curves(metrics: dict, path: Path) -> bool:
    """Draw metrics.json's curves (else its per-epoch history) to a PNG; False when there is nothing to draw."""
    rows, granularity = _curve_rows(metrics)
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # "episode": a search's curve (e.g. the n2n trainer's) in place of the training steps
    x_key = next((k for k in ("step", "episode") if all(k in r for r in rows)), "epoch")
    granularity = "per episode" if x_key == "episode" else granularity
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k not in ("step", "epoch", "episode")})
    losses = [k for k in keys if k.endswith("loss")]
    scores = [k for k in keys if not k.endswith("loss")]
    panels = [p for p in (("loss", losses), ("metric", scores)) if p[1]]
    if not panels:
        return False
    figure = Figure(figsize=(5 * len(panels), 3.4), dpi=100)
    for i, (label, names) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        for name in names:
            points = [(r[x_key], r[name]) for r in rows if isinstance(r.get(name), (int, float)) and x_key in r]
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 60 else None, label=name)
        axes.set_xlabel(x_key)
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(f"training curves ({granularity})", fontsize=10)
    figure.tight_layout()
    # No metadata: the same metrics give the same bytes, so republishing keeps the revision.
    figure.savefig(path, format="png", metadata={"Software": None})
    return True


@dataclass
class InputSpec:
    name: str  # the forward argument, e.g. pixel_values
    shape: tuple[int, ...]  # one example
    dtype: str
    low: float
    high: float
    mean: float
    std: float
    about: str  # the data set's own description of its preprocessing

    def describe(self) -> str:
        shape = ", ".join(str(s) for s in self.shape)
        return (f"`{self.name}`: a {self.dtype} tensor of shape `(batch, {shape})`, values in "
                f"[{self.low:.3g}, {self.high:.3g}] (mean {self.mean:.3g}, std {self.std:.3g} on the evaluation split)")


def input_spec(recipe: Recipe, arch) -> InputSpec | None:
    """What the model takes, measured on the recipe's own evaluation data (None if it cannot be loaded)."""
    from . import data as zoo_data

    name = getattr(arch.model_class, "main_input_name", None)
    split = recipe.data.get("eval_split", recipe.training.get("eval_split", "test"))
    try:
        dataset = zoo_data.load(recipe.data_name, split=split, **recipe.data_params)
    except UserError:
        return None
    if name not in dataset.column_names:
        name = next((c for c in dataset.column_names if c != "labels"), None)
        if name is None:
            return None
    sample = dataset[: min(len(dataset), 2048)][name].float()
    loader = zoo_data._get_loader(recipe.data_name)
    about = (loader.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    about = re.sub(r"\s+", " ", about)
    return InputSpec(name, tuple(sample.shape[1:]), str(dataset[0][name].dtype).replace("torch.", ""),
                     float(sample.min()), float(sample.max()), float(sample.mean()), float(sample.std()), about)


def _example_tensor(spec: InputSpec, batch: int) -> str:
    shape = ", ".join(str(s) for s in (batch, *spec.shape))
    if spec.low >= 0.0 and spec.high <= 1.0:
        return f"torch.rand({shape})  # uniform in [0, 1), the range of the recipe's data"
    sign = "+" if spec.mean >= 0 else "-"
    return f"torch.randn({shape}) * {spec.std:.3g} {sign} {abs(spec.mean):.3g}  # the evaluation data's mean and std"


def usage_snippets(repo_id: str, arch, spec: InputSpec | None, num_labels: int | None,
                   has_image_processor: bool) -> list[str]:
    """Python snippets for the card; each runs as it is with only torch + transformers installed."""
    auto = arch.task_auto_class or "AutoModel"
    batch = 4
    if spec is None:
        return [f'from transformers import {auto}\n\nmodel = {auto}.from_pretrained("{repo_id}", trust_remote_code=True).eval()\n']
    lines = [
        "import torch",
        f"from transformers import {auto}",
        "",
        f'model = {auto}.from_pretrained("{repo_id}", trust_remote_code=True).eval()',
        f"# {spec.name}: {spec.dtype}, shape (batch, {', '.join(map(str, spec.shape))}), "
        f"values in [{spec.low:.3g}, {spec.high:.3g}]",
        f"{spec.name} = {_example_tensor(spec, batch)}",
        "with torch.no_grad():",
        f"    outputs = model({spec.name}={spec.name})",
    ]
    if arch.task_auto_class and num_labels:
        lines += [
            f"print(outputs.logits.shape)  # torch.Size([{batch}, {num_labels}])",
            "print([model.config.id2label[i] for i in outputs.logits.argmax(-1).tolist()])",
        ]
    else:
        lines += ["print({k: tuple(v.shape) for k, v in outputs.items() if hasattr(v, 'shape')})"]
    snippets = ["\n".join(lines) + "\n"]
    task = arch.task
    if task == "image-classification" and has_image_processor and len(spec.shape) == 3:
        channels, height, width = spec.shape
        mode = {1: "L", 3: "RGB"}.get(channels)
        if mode:
            array = f"({height}, {width})" if channels == 1 else f"({height}, {width}, 3)"
            snippets.append("\n".join([
                "import numpy as np",
                "from PIL import Image",
                "from transformers import pipeline",
                "",
                f'classify = pipeline("image-classification", model="{repo_id}", trust_remote_code=True)',
                f"image = Image.fromarray((np.random.rand{array} * 255).astype(np.uint8))"
                f"  # {height}×{width} {'grey' if channels == 1 else 'colour'} pixels, like the training images",
                "print(classify(image, top_k=3))",
            ]) + "\n")
    return snippets


def _below_expected(final: dict, expected: dict) -> list[str]:
    warnings = []
    for key, target in expected.items():
        value = final.get(key)
        if not isinstance(target, (int, float)):
            continue
        if value is None:
            warnings.append(f"{key} was not measured (the recipe expects {target})")
        elif (value > target) if key.endswith("loss") else (value < target):
            warnings.append(f"{key} {value:.4f} measured, the recipe expects {'at most' if key.endswith('loss') else 'at least'} {target}")
    return warnings


def _fmt_value(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def recipe_path(recipe: Recipe) -> str:
    """How the card names the recipe file: relative to the working folder when it is inside it."""
    if recipe.source is not None:
        try:
            return Path(recipe.source).resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            pass
    return f"hub_configs/{recipe.id}.yaml"


def override_args(differences) -> list[str]:
    return [f"{key}={json.dumps(run_value, separators=(',', ':')) if not isinstance(run_value, str) else run_value}"
            for key, _, run_value in differences]


def model_card(recipe: Recipe, arch, metrics: dict, files_sha256: dict[str, str], differences=(),
               spec: InputSpec | None = None, has_curves: bool = False, has_image_processor: bool = False,
               config: dict | None = None, has_diagram: bool = False) -> str:
    """The README.md of a repo: metadata, usage with the real input, results beside the expected and the
    paper's, curves, limitations, citation, the exact recipe of the run, and the files' hashes."""
    import transformers
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    card = recipe.card
    from .paper import paper_of

    paper = paper_of(recipe)
    task = card.get("task") or arch.task
    final = metrics.get("final", {})
    datasets = card.get("datasets") or []
    split = recipe.data.get("eval_split", recipe.training["eval_split"])
    eval_results = [
        EvalResult(
            task_type=task or "other", dataset_type=(datasets or [recipe.data_name])[0], dataset_name=recipe.data_name,
            dataset_split=split, metric_type=key.removeprefix("eval_"), metric_value=round(value, 4), metric_name=key,
        )
        for key, value in final.items() if key.startswith("eval_") and isinstance(value, (int, float))
    ]
    data = ModelCardData(
        library_name="transformers", license=card.get("license", "apache-2.0"),
        tags=["zooscope", arch.name, *card.get("tags", [])], datasets=datasets or None,
        pipeline_tag=task, model_name=recipe.repo_id, eval_results=eval_results or None,
    )
    expected = card.get("expected", {})
    sections = [f"# {recipe.repo_id}", "", recipe.description or arch.description, ""]

    warnings = _below_expected(final, expected)
    if warnings:
        sections += ["> [!WARNING]", "> **Below the recipe's expected result**: " + "; ".join(warnings) + ".", ""]
    if differences:
        rows = "; ".join(f"`{k}` = {_fmt_value(r)} (recipe: {_fmt_value(n)})" for k, n, r in differences)
        sections += ["> [!NOTE]", f"> **Trained with overrides** of `{recipe_path(recipe)}`: {rows}. "
                     "Everything below describes this run, not the recipe file.", ""]

    cite = f"[{paper['citation']}: *{paper['title']}*]({paper['url']})" if paper else card.get("paper", "")
    sections += [f"Architecture `{arch.name}` of the zooscope model zoo: {arch.description}."
                 + (f" Paper: {cite}." if cite else ""), ""]

    num_labels = (config or {}).get("num_labels") or len((config or {}).get("id2label") or {}) or None
    requirement = getattr(arch, "requirement_note", None) or (
        "The modeling code ships with the repo, so zooscope need not be installed "
        f"(needs torch and transformers; published with transformers {transformers.__version__}).")
    sections += ["## Usage", "", requirement, ""]
    if spec is not None:
        sections += [f"Input: {spec.describe()}. Preprocessing: {spec.about}", ""]
    for snippet in usage_snippets(recipe.repo_id, arch, spec, num_labels, has_image_processor):
        sections += ["```python", snippet.rstrip(), "```", ""]

    sections += ["## Results", "",
                 f"Measured on the `{split}` split of `{recipe.data_name}` ({metrics.get('num_processes', 1)} "
                 f"process(es), {metrics.get('train_time_s', 0):.0f} s of training, step {metrics.get('step', '?')} "
                 f"of {metrics.get('total_steps', '?')}), beside the recipe's expected value and the paper's number:", "",
                 "| metric | measured | expected | paper |", "|---|---|---|---|"]
    for key, value in final.items():
        if key.startswith("eval_") and isinstance(value, (int, float)):
            theirs = paper.get("value") if paper and paper.get("metric") == key else None
            sections.append(f"| {key} | {value:.4f} | {expected.get(key, '—')} | {'—' if theirs is None else theirs} |")
    sections.append("")
    if paper:
        sections += [f"The paper's number measures: {paper['claim'].strip()} Reproduced here: **{paper['reproduced']}**"
                     + (f" (see {paper['findings']})." if paper.get("findings") else "."), ""]
    if card.get("reference"):
        sections += [card["reference"], ""]
    if has_curves:
        sections += ["### Training curves", "", f"![training curves]({CURVES_PNG})", ""]
    if has_diagram:
        sections += ["### Architecture", "", "The neural circuit diagram of this model, traced from one forward pass "
                     "(`zoo diagram`): each wire is one tensor axis, labelled with its size.", "",
                     f"![neural circuit diagram]({DIAGRAM_PNG})", ""]

    sections += ["## Limitations", ""]
    limitations = [
        f"Trained and measured on `{recipe.data_name}` only; it has not been tested on any other data.",
        "A research replica trained at CPU scale in the zooscope zoo, not a production model.",
    ]
    if spec is not None:
        limitations.append(f"It expects inputs prepared as its training data was ({spec.describe()}); "
                           "other scales or shapes give meaningless outputs.")
    if paper and paper.get("reproduced") in ("partly", "no"):
        limitations.append(f"The paper's result reproduced only {paper['reproduced'] == 'partly' and 'partly' or 'not at all'} "
                           "at this scale; read the findings before relying on it.")
    limitations += [str(x) for x in card.get("limitations", [])]
    sections += [f"- {x}" for x in limitations] + [""]

    command = " ".join([f"accelerate launch train.py {recipe_path(recipe)}", *override_args(differences)])
    sections += ["## Training recipe", "", f"`{command}`", "", "```yaml", recipe.to_yaml().rstrip(), "```", ""]
    if paper:
        sections += ["## Citation", "", f"{paper['citation']}, *{paper['title']}*, {paper['url']}", ""]
        if paper.get("bibtex"):
            sections += ["```bibtex", paper["bibtex"].strip(), "```", ""]
    sections += ["## Files", "", "| file | sha256 |", "|---|---|"]
    sections += [f"| {name} | `{digest}` |" for name, digest in files_sha256.items()]
    body = "\n".join(sections) + "\n"
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))
