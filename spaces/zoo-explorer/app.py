"""zoo-explorer: browse the zooscope model zoo and try each model.

Everything on the page is read from the zoo itself, with no per-entry code: the catalogue
lists every architecture and recipe (the registry and hub_configs/) with the paper's number
beside ours; choosing a published model shows its card, config, recipe, training curves
(metrics.json's per-evaluation ``curves``, else its per-epoch ``history``) and our number
beside the paper's (the recipe's ``paper:`` block); "Try it" follows from the architecture's
input kind (``zooscope_spaces.explorer.input_kind``: image, sequence, tabular, grid), with the
XOR-cluster plane and the modular-arithmetic pair as extras for those data sets, and a test
field beside the model's prediction for the operators that output a field (the registry's
``output: field``); "Architecture"
shows the model's neural circuit diagram (zoo.diagram). Only published ids are offered.

Run locally: ``python spaces/zoo-explorer/app.py`` (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
are honoured). Models come from the local Hugging Face cache (``zoo publish``) or the Hub.
"""
from __future__ import annotations

import json
import os
import random

os.environ.setdefault("MPLBACKEND", "Agg")

import gradio as gr  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import zoo  # noqa: E402
from zoo.errors import UserError  # noqa: E402
import sys  # noqa: E402

try:  # a deployed Space folder carries the shared code next to app.py (python -m spaces.export)
    import zooscope_spaces  # noqa: E402, F401
except ModuleNotFoundError as error:  # a checkout: it lives in spaces/_shared
    if error.name != "zooscope_spaces":
        raise
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from zooscope_spaces import ModelCache, bounded, gradio_errors, image_to_pixels, launch, widget_kind  # noqa: E402
from zooscope_spaces import explorer  # noqa: E402

HUB_ORG = "zooscope"
GRID = 121  # decision-boundary grid per side
PREVIEW_SIZE = 168  # pixels of the "what the model sees" picture
WIDGETS = ("image", "plane", "pair", "example", "field")  # panels; "example" is the sequence / tabular / grid one
MAX_INPUT = 4096  # numbers typed into the generic input box


# ------------------------------------------------------------------------------------------
# names and repos
# ------------------------------------------------------------------------------------------


def cached_zoo_repos() -> list[str]:
    """Ids of the zoo's published models: complete zooscope/<id> snapshots in the local cache
    (and the Hub's list when online)."""
    return explorer.published_ids()


def model_names() -> list[str]:
    """What the dropdown offers: published ids only (a recipe that was never published would fail)."""
    return cached_zoo_repos()


def _repo_id(name: str) -> str:
    if not name or not str(name).strip():
        raise UserError("choose a model: the name is empty")
    name = str(name).strip()
    bare = name.removeprefix(f"{HUB_ORG}/")
    if "/" in bare or not bare or bare.startswith("."):
        raise UserError(f"{name!r} is not a zoo model: zoo ids look like 'mlp-fashion-mnist' or 'zooscope/<id>'")
    return f"{HUB_ORG}/{bare}"


def repo_folder(name: str) -> str:
    """The published repo's folder (local cache first; the Hub when online)."""
    from huggingface_hub import constants, snapshot_download

    repo_id = _repo_id(name)
    patterns = ["*.json", "*.md", "*.yaml"]
    try:
        return snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns)
    except Exception:  # noqa: BLE001 - not in the cache: try the Hub, unless offline
        if constants.HF_HUB_OFFLINE:
            pass
        else:
            try:
                return snapshot_download(repo_id, allow_patterns=patterns)
            except Exception:  # noqa: BLE001
                pass
    bare = repo_id.split("/", 1)[1]
    known = bare in explorer.recipe_files()
    hint = (f"train and publish it first: accelerate launch train.py hub_configs/{bare}.yaml && zoo publish {bare}"
            if known else f"known zoo models: {', '.join(model_names()) or '(none)'}")
    raise UserError(f"zoo model {repo_id!r} is not published (not in the local cache or on the Hub); {hint}")


def _read(folder: str, filename: str) -> str | None:
    path = os.path.join(folder, filename)
    return open(path, encoding="utf-8").read() if os.path.isfile(path) else None


def _load_model(name: str):
    from zoo.hub import load_pretrained

    # trust_remote_code is decided by zoo.hub.load_pretrained (zoo.hub.remote_code_trust)
    return load_pretrained(_repo_id(name)).eval()


MODELS = ModelCache(_load_model, size=3)


class Entry:
    """Everything the page shows about one published model."""

    def __init__(self, name: str):
        self.repo_id = _repo_id(name)
        self.folder = repo_folder(name)
        self.config = json.loads(_read(self.folder, "config.json") or "{}")
        self.metrics = json.loads(_read(self.folder, "metrics.json") or "{}")
        recipe_text = _read(self.folder, "recipe.yaml")
        self.recipe = yaml.safe_load(recipe_text) if recipe_text else {}
        self.recipe_text = recipe_text or ""
        self.card = _read(self.folder, "README.md") or ""
        data = self.recipe.get("data") or {}
        self.data_name = data.get("name") if isinstance(data, dict) else data
        self.data_params = {k: v for k, v in data.items() if k not in ("name", "eval_split")} if isinstance(data, dict) else {}
        model_type = self.config.get("model_type", "")
        try:
            arch = zoo.get_architecture(model_type)
            self.description = arch.description
            self.task = arch.task_auto_class or "AutoModel"
            self.main_input = arch.model_class.main_input_name
            self.kind = explorer.architecture_kind(arch, self.config)
            self.output = arch.output
        except UserError:
            self.description, self.task, self.main_input = "", "AutoModel", "input_features"
            self.kind = explorer.input_kind(self.config, self.main_input)
            self.output = "classes"
        # the panel: a field for field outputs, else the input kind's, with round 1's
        # data-specific extras where they exist
        if self.output == "field":
            self.widget = "field"
        else:
            self.widget = "image" if self.kind == "image" else widget_kind(self.main_input, self.data_name)

    @property
    def model(self):
        return MODELS.get(self.repo_id)

    def paper_recipe(self) -> dict:
        """The recipe whose paper: block to show: the published recipe.yaml when it has one,
        else this zoo's recipe file of the same id (a block added after publishing)."""
        if isinstance(self.recipe.get("paper"), dict):
            return self.recipe
        path = explorer.recipe_files().get(self.repo_id.split("/", 1)[1])
        try:
            local = yaml.safe_load(path.read_text()) if path else None
        except (OSError, yaml.YAMLError):
            local = None
        return local if isinstance(local, dict) else self.recipe

    def labels(self) -> dict[int, str]:
        id2label = self.config.get("id2label") or {}
        return {int(k): str(v) for k, v in id2label.items()}

    def test_split(self):
        if not self.data_name:
            raise UserError(f"{self.repo_id} has no recipe.yaml naming its data set")
        split = (self.recipe.get("data") or {}).get("eval_split") or (self.recipe.get("training") or {}).get("eval_split", "test")
        return zoo.data.load(self.data_name, split=split, **self.data_params)


def _card_body(card: str) -> str:
    if card.startswith("---"):
        parts = card.split("---", 2)
        if len(parts) == 3:
            return parts[2].strip()
    return card


# ------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------


def training_curves(entry: Entry):
    """Losses on the left, every other metric (accuracies, ...) on the right, against the step
    (metrics.json "curves") or the epoch (its "history", for runs made before curves)."""
    x_name, series = explorer.curve_series(entry.metrics)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    if not series:
        for ax in axes:
            ax.text(0.5, 0.5, "no training curves in metrics.json", ha="center", va="center")
            ax.set_axis_off()
        return fig
    for key, points in sorted(series.items()):
        ax = axes[0] if "loss" in key else axes[1]
        xs, ys = zip(*points)
        ax.plot(xs, ys, "o-" if len(xs) < 40 else "-", ms=3, label=key)
    for ax, label in zip(axes, ("loss", "metric")):
        ax.set_xlabel(x_name)
        ax.set_ylabel(label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{entry.repo_id}: training curves (per {x_name})", fontsize=10)
    fig.tight_layout()
    return fig


@torch.no_grad()
def decision_boundary(entry: Entry):
    """The model's decision over the plane spanned by the two cluster directions (estimated
    from the test set's cluster means), with the test points projected onto it."""
    data = entry.test_split()
    if "cluster" not in data.column_names:
        raise UserError(f"{entry.data_name} has no cluster column: no plane to draw")
    columns = data[:]
    x = columns["input_features"].float()
    cluster = columns["cluster"].numpy()
    labels = columns["labels"].numpy()
    means = [x[cluster == c].mean(0) for c in range(4)]
    mu1 = (means[0] - means[1]) / 2
    mu2 = (means[2] - means[3]) / 2
    e1 = mu1 / mu1.norm()
    e2 = mu2 - (mu2 @ e1) * e1
    e2 = e2 / e2.norm()
    u, v = (x @ e1).numpy(), (x @ e2).numpy()
    extent = float(max(np.abs(u).max(), np.abs(v).max())) * 1.1
    grid = np.linspace(-extent, extent, GRID)
    gu, gv = np.meshgrid(grid, grid)
    points = torch.from_numpy(gu.ravel()).float()[:, None] * e1 + torch.from_numpy(gv.ravel()).float()[:, None] * e2
    model = entry.model
    probs = torch.softmax(model(input_features=points).logits.float(), -1)[:, 1].reshape(GRID, GRID).numpy()
    predicted = model(input_features=x).logits.argmax(-1).numpy()
    accuracy = float((predicted == labels).mean())
    names = entry.labels()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    image = ax.contourf(gu, gv, probs, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.75)
    ax.contour(gu, gv, probs, levels=[0.5], colors="black", linewidths=1)
    for label, marker in ((0, "o"), (1, "s")):
        chosen = labels == label
        ax.scatter(u[chosen], v[chosen], s=6, marker=marker, edgecolors="none",
                   c="navy" if label == 0 else "darkred", label=f"test: {names.get(label, label)}")
    fig.colorbar(image, ax=ax, label=f"P({names.get(1, 1)})")
    ax.set_xlabel("μ₁ direction")
    ax.set_ylabel("μ₂ direction")
    ax.set_title(f"{entry.repo_id}\ndecision boundary in the cluster plane (test accuracy {accuracy:.3f})", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig, accuracy


# ------------------------------------------------------------------------------------------
# event handlers
# ------------------------------------------------------------------------------------------


@gradio_errors
def show_model(name: str):
    """Card, config, curves, recipe, and the try-it panel that fits the model."""
    entry = Entry(name)
    final = entry.metrics.get("final") or {}
    summary = (f"**{entry.repo_id}** — `{entry.config.get('model_type', '?')}` ({entry.task}), "
               f"input `{entry.main_input}`, data `{entry.data_name}`. {entry.description}")
    if final:
        summary += "  \nFinal: " + ", ".join(f"{k} = {v:.4f}" for k, v in final.items()
                                              if isinstance(v, float))
    entry.model  # load now: a broken repo fails here, with a message
    plane = None
    plane_text = ""
    if entry.widget == "plane":
        plane, accuracy = decision_boundary(entry)
        plane_text = f"Test accuracy on the clean labels: **{accuracy:.4f}**"
    # the generic panel serves every non-image kind (next to the plane / pair extras)
    generic = entry.kind != "image" and entry.widget != "field"
    visible = [gr.update(visible=(entry.widget == w) or (w == "example" and generic)) for w in WIDGETS]
    hint = INPUT_HINTS.get(entry.kind, "")
    return (summary, _card_body(entry.card), entry.config, training_curves(entry), entry.recipe_text,
            plane, plane_text, *visible, explorer.comparison_markdown(entry.paper_recipe(), entry.metrics),
            gr.update(value="", label=f"Input ({entry.kind}): {hint}"))


@gradio_errors
def circuit_diagram(name: str):
    """The model's neural circuit diagram (zoo.diagram), drawn from its repo's config.json."""
    import tempfile

    from zoo.diagram import draw_diagram

    if not name or not str(name).strip():
        return gr.skip()
    folder = repo_folder(name)
    path = os.path.join(tempfile.mkdtemp(prefix="zoo-diagram-"), "circuit_diagram.png")
    draw_diagram(folder, [path], title=f"{_repo_id(name)}: neural circuit diagram")
    return path


INPUT_HINTS = {
    "tabular": "numbers separated by spaces or commas, one per feature",
    "sequence": "token ids separated by spaces",
    "grid": "one row of cell values per line",
}
OUTPUTS = 7 + len(WIDGETS) + 2


def show_if_named(name: str):
    """show_model for the dropdown's change event: a cleared box (while typing) is no request."""
    if not name or not str(name).strip():
        return tuple(gr.skip() for _ in range(OUTPUTS))
    return show_model(name)


def cleared_if_named(name: str):
    """cleared_model for the dropdown's change event (a cleared box while typing changes nothing)."""
    if not name or not str(name).strip():
        return tuple(gr.skip() for _ in range(OUTPUTS))
    return cleared_model()


def cleared_model():
    """Emptied outputs while a model is being shown: after an error nothing of the last one stays."""
    return ("", "", None, None, "", None, "", *[gr.update(visible=False) for _ in WIDGETS], "", gr.update(value=""))


def _classify(entry: Entry, pixels: torch.Tensor):
    size = int(entry.config.get("image_size", pixels.shape[-1]))
    channels = int(entry.config.get("num_channels", 1))
    if pixels.shape[-1] != size:
        pixels = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    if channels != pixels.shape[1]:
        pixels = pixels.expand(-1, channels, -1, -1)
    with torch.no_grad():
        probs = torch.softmax(entry.model(pixel_values=pixels).logits.float(), -1)[0]
    names = entry.labels()
    scores = {names.get(i, str(i)): float(p) for i, p in enumerate(probs)}
    scale = max(1, PREVIEW_SIZE // pixels.shape[-1])  # shown large, pixel for pixel
    preview = (np.kron(pixels[0, 0].numpy(), np.ones((scale, scale))) * 255).round().astype(np.uint8)
    return scores, preview


@gradio_errors
def classify_sketch(repo_id: str, sketch):
    entry = Entry(repo_id)
    if entry.widget != "image":
        raise UserError(f"{entry.repo_id} is not an image classifier")
    pixels = image_to_pixels(sketch, int(entry.config.get("image_size", 28)))
    return _classify(entry, pixels)


@gradio_errors
def classify_upload(repo_id: str, image):
    entry = Entry(repo_id)
    if entry.widget != "image":
        raise UserError(f"{entry.repo_id} is not an image classifier")
    if image is None:
        raise UserError("no image: upload a picture (or press 'Random test image') first")
    pixels = image_to_pixels(image, int(entry.config.get("image_size", 28)))
    return _classify(entry, pixels)


@gradio_errors
def sample_image(repo_id: str):
    """A random test image (upscaled for display) and its true label."""
    entry = Entry(repo_id)
    data = entry.test_split()
    index = random.randrange(len(data))
    item = data[index]
    pixels = item["pixel_values"].float()[0].numpy()
    label = entry.labels().get(int(item["labels"]), str(int(item["labels"])))
    scale = max(1, 224 // pixels.shape[-1])
    big = np.kron(pixels, np.ones((scale, scale)))
    return (big * 255).astype(np.uint8), f"Test image #{index}: true label **{label}**"


@gradio_errors
def predict_pair(repo_id: str, a, b):
    from zoo.data.synthetic import OPERATIONS

    entry = Entry(repo_id)
    modulus = int(entry.data_params.get("modulus", 23))
    operation = entry.data_params.get("operation", "add")
    a = bounded(a, "a", 0, modulus - 1)
    b = bounded(b, "b", 0, modulus - 1)
    if operation == "div" and b == 0:
        raise UserError("b must not be 0 for division")
    features = torch.zeros(1, 2 * modulus)
    features[0, a] = 1.0
    features[0, modulus + b] = 1.0
    with torch.no_grad():
        probs = torch.softmax(entry.model(input_features=features).logits.float(), -1)[0]
    expected = OPERATIONS[operation](a, b, modulus)
    predicted = int(probs.argmax())
    verdict = "correct" if predicted == expected else "wrong"
    return ({str(i): float(p) for i, p in enumerate(probs)},
            f"{a} {operation} {b} mod {modulus} = **{expected}**; the model says **{predicted}** ({verdict})")


def _as_text(value, kind: str) -> str:
    """A test example's input as the text the input box takes."""
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    if kind == "grid" and array.ndim == 2:
        return "\n".join(" ".join(_fmt(v) for v in row) for row in array)
    return " ".join(_fmt(v) for v in array.reshape(-1))


def _fmt(value) -> str:
    value = float(value)
    return str(int(value)) if value == int(value) else f"{value:.7g}"  # float32 precision


def _input_tensor(entry: Entry, text: str) -> torch.Tensor:
    """The input box's text → the model's main input, shaped and typed by the input kind."""
    if len(str(text or "")) > 20 * MAX_INPUT:
        raise UserError(f"the input is too long (at most {MAX_INPUT} numbers here)")
    if entry.kind == "sequence":
        ids = explorer.parse_numbers(text, "token ids", integer=True)
        vocab = int(entry.config.get("vocab_size") or 0)
        bad = [i for i in ids if i < 0 or (vocab and i >= vocab)]
        if bad:
            raise UserError(f"token id {bad[0]} is outside the vocabulary (0 to {vocab - 1})")
        return torch.tensor([ids], dtype=torch.long)
    if entry.kind == "grid":
        rows = [explorer.parse_numbers(line, "grid row") for line in str(text or "").strip().splitlines() if line.strip()]
        if not rows:
            raise UserError("the grid is empty: one row of numbers per line, or take a test example")
        if len({len(r) for r in rows}) != 1:
            raise UserError("the grid's rows have different lengths")
        grid = torch.tensor(rows)
        integral = bool((grid == grid.round()).all())
        return (grid.long() if integral else grid.float())[None]
    values = explorer.parse_numbers(text, "features")
    expected = entry.config.get("input_dim")
    if expected and len(values) != int(expected):
        raise UserError(f"{entry.repo_id} takes {expected} features, not {len(values)}")
    return torch.tensor([values], dtype=torch.float32)


def _prediction(entry: Entry, inputs: torch.Tensor):
    """(label → probability, a sentence): class probabilities for a classifier's [1, C] logits,
    the last position's next-token distribution for [1, T, V] (and every position's argmax)."""
    with torch.no_grad():
        output = entry.model(**{entry.main_input: inputs})
    logits = getattr(output, "logits", output[0] if isinstance(output, (tuple, list)) else output).float()
    names = entry.labels()
    if logits.ndim == 3:
        probs = torch.softmax(logits[0, -1], -1)
        argmax = logits[0].argmax(-1).tolist()
        text = f"per position, the most likely next value: `{' '.join(map(str, argmax[:64]))}`"
    elif logits.ndim == 4:  # per-cell classes of a grid: [1, H, W, C]
        grid = logits[0].argmax(-1)
        probs = torch.softmax(logits[0].reshape(-1, logits.shape[-1]).mean(0), -1)
        text = "predicted grid:\n```\n" + "\n".join(" ".join(map(str, row)) for row in grid.tolist()) + "\n```"
    else:
        if logits.shape[-1] == 1:
            return {}, f"predicted value: **{float(logits.reshape(-1)[0]):.4g}**"
        probs = torch.softmax(logits.reshape(-1), -1)
        best = int(probs.argmax())
        text = f"prediction: **{names.get(best, best)}**"
    return {names.get(i, str(i)): float(p) for i, p in enumerate(probs)}, text


@gradio_errors
def sample_example(repo_id: str):
    """A random test example: the model's prediction, the true label, the example, and its input
    as text for the input box (edit it and press Predict)."""
    entry = Entry(repo_id)
    data = entry.test_split()
    index = random.randrange(len(data))
    item = data[index]
    if entry.main_input not in item:
        raise UserError(f"{entry.data_name} has no {entry.main_input} column for {entry.repo_id}")
    inputs = item[entry.main_input][None]
    scores, text = _prediction(entry, inputs if inputs.dtype == torch.long else inputs.float())
    label = item.get("labels")
    if label is not None and getattr(label, "ndim", 1) == 0:
        names = entry.labels()
        text = f"Test example #{index}: true label **{names.get(int(label), str(int(label)))}**; {text}"
    else:
        text = f"Test example #{index}; {text}"
    shown = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in item.items()}
    return scores, text, shown, _as_text(item[entry.main_input], entry.kind)


@gradio_errors
@torch.no_grad()
def sample_field(repo_id: str):
    """A random test field of an operator model: its input, the true and the predicted output
    field and their difference, with the relative L2 error ‖u_pred − u‖ / ‖u‖ (the per-example
    quantity the zoo's operators train on and report as eval_loss)."""
    entry = Entry(repo_id)
    if entry.output != "field":
        raise UserError(f"{entry.repo_id} predicts classes, not a field")
    data = entry.test_split()
    index = random.randrange(len(data))
    item = data[index]
    inputs, target = item[entry.main_input].float(), item["labels"].float()
    predicted = entry.model(**{entry.main_input: inputs[None]}).logits[0].float()
    error = float((predicted - target).norm() / target.norm().clamp_min(torch.finfo(torch.float32).tiny))
    panels = [("input", inputs[0]), ("true output", target[0]), ("predicted", predicted[0]),
              ("predicted − true", (predicted - target)[0])]
    fig, axes = plt.subplots(1, 4, figsize=(11, 3))
    for ax, (title, field) in zip(axes, panels):
        image = ax.imshow(field.numpy(), cmap="RdBu_r" if "−" in title else "viridis", origin="lower")
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"{entry.repo_id}: test field #{index}, relative L2 error {error:.4f}", fontsize=10)
    fig.tight_layout()
    reported = (entry.metrics.get("final") or {}).get("eval_loss")
    text = f"Test field #{index}: relative L2 error **{error:.4f}**"
    if isinstance(reported, float):
        text += f" (the model's mean over its test set: {reported:.4f})"
    return fig, text


@gradio_errors
def predict_input(repo_id: str, text: str):
    """The model's prediction for the input typed in the box."""
    entry = Entry(repo_id)
    if entry.kind == "image":
        raise UserError(f"{entry.repo_id} takes images: draw or upload one")
    return _prediction(entry, _input_tensor(entry, text))


def catalogue_rows():
    return explorer.catalogue(cached_zoo_repos())


# ------------------------------------------------------------------------------------------
# the page
# ------------------------------------------------------------------------------------------


def refresh_names():
    """The dropdown's choices, read when the page opens (newly published models show up
    without a restart); the first published model is chosen."""
    names = model_names()
    published = cached_zoo_repos()
    return gr.update(choices=names, value=published[0] if published else None)


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="zooscope zoo explorer") as demo:
        gr.Markdown("# zooscope zoo explorer\nChoose a published zoo model: its card, config, training curves "
                    "and our number beside the paper's; then try it. *The zoo* lists every architecture and "
                    "recipe, published or not.")
        with gr.Row():
            name = gr.Dropdown([], value=None, label="Zoo model", allow_custom_value=True,
                               elem_id="model", scale=4)
            show = gr.Button("Show", variant="primary", elem_id="show", scale=1)
        summary = gr.Markdown(elem_id="summary")
        with gr.Tabs():
            with gr.Tab("Try it"):
                with gr.Group(visible=False) as image_group:
                    gr.Markdown("Draw a picture (bright object, dark background, or the other way round) "
                                "or upload one; it is scaled to the model's input size.")
                    with gr.Tabs():
                        with gr.Tab("Draw"):
                            sketch = gr.Sketchpad(label="Draw", elem_id="sketch", canvas_size=(280, 280))
                            classify_drawn = gr.Button("Classify drawing", elem_id="classify-sketch")
                        with gr.Tab("Upload"):
                            upload = gr.Image(label="Picture", type="numpy", elem_id="upload", format="png",
                                              sources=["upload", "clipboard"], height=260)
                            with gr.Row():
                                sample = gr.Button("Random test image", elem_id="sample")
                                classify_uploaded = gr.Button("Classify picture", variant="primary",
                                                              elem_id="classify-upload")
                            sample_text = gr.Markdown(elem_id="sample-text")
                    with gr.Row():
                        scores = gr.Label(num_top_classes=5, label="Prediction", elem_id="scores")
                        preview = gr.Image(label="What the model sees", elem_id="preview", height=200, format="png",
                                           interactive=False)
                with gr.Group(visible=False) as plane_group:
                    gr.Markdown("The model's decision over the plane of the two cluster directions "
                                "(μ₁ ⟂ μ₂), with the clean test points.")
                    plane_plot = gr.Plot(label="Decision boundary", elem_id="plane")
                    plane_text = gr.Markdown(elem_id="plane-text")
                with gr.Group(visible=False) as pair_group:
                    with gr.Row():
                        a = gr.Number(value=3, label="a", precision=0, elem_id="a")
                        b = gr.Number(value=5, label="b", precision=0, elem_id="b")
                        pair_button = gr.Button("Predict a ∘ b", variant="primary", elem_id="pair")
                    pair_scores = gr.Label(num_top_classes=5, label="Prediction", elem_id="pair-scores")
                    pair_text = gr.Markdown(elem_id="pair-text")
                with gr.Group(visible=False) as example_group:
                    features = gr.Textbox(label="Input", lines=3, elem_id="features", max_length=20 * MAX_INPUT)
                    with gr.Row():
                        example_button = gr.Button("Random test example", elem_id="example")
                        predict_button = gr.Button("Predict", variant="primary", elem_id="predict")
                    example_scores = gr.Label(num_top_classes=5, label="Prediction", elem_id="example-scores")
                    example_text = gr.Markdown(elem_id="example-text")
                    example_json = gr.JSON(label="Example", elem_id="example-json")
                with gr.Group(visible=False) as field_group:
                    gr.Markdown("A test field: the model's input, the true output field, the model's "
                                "prediction and their difference.")
                    field_button = gr.Button("Random test field", variant="primary", elem_id="field-sample")
                    field_plot = gr.Plot(label="Fields", elem_id="field-plot")
                    field_text = gr.Markdown(elem_id="field-text")
            with gr.Tab("Architecture"):
                gr.Markdown("The neural circuit diagram, traced from one forward pass of the model "
                            "(`zoo diagram`): one wire per tensor axis, labelled with its size; grey wires are "
                            "the axes a box is applied across; a dashed loop is a box applied several times.")
                diagram = gr.Image(label="Neural circuit diagram", elem_id="diagram", format="png", interactive=False)
            with gr.Tab("Training curves"):
                curves = gr.Plot(label="Training curves", elem_id="curves")
            with gr.Tab("Paper"):
                comparison = gr.Markdown(elem_id="comparison")
            with gr.Tab("Model card"):
                card = gr.Markdown(elem_id="card")
            with gr.Tab("Config"):
                config = gr.JSON(label="config.json", elem_id="config")
                recipe = gr.Code(label="recipe.yaml", language="yaml", elem_id="recipe")
            with gr.Tab("The zoo"):
                gr.Markdown("Every architecture and recipe in this zoo; the model list above offers the "
                            "published ones.")
                table = gr.Dataframe(headers=explorer.CATALOGUE_HEADERS, interactive=False, wrap=True,
                                     column_widths=["16%", "10%", "7%", "11%", "12%", "5%", "5%", "9%", "8%", "17%"],
                                     elem_id="catalogue")

        outputs = [summary, card, config, curves, recipe, plane_plot, plane_text,
                   image_group, plane_group, pair_group, example_group, field_group, comparison, features]
        show.click(cleared_model, None, outputs, queue=False, api_name=False).then(
            show_model, [name], outputs, api_name="show_model").then(
            circuit_diagram, [name], [diagram], api_name="circuit_diagram")
        name.change(cleared_if_named, [name], outputs, queue=False, api_name=False).then(
            show_if_named, [name], outputs, api_name=False).then(circuit_diagram, [name], [diagram], api_name=False)
        demo.load(refresh_names, None, [name], api_name=False)
        predict_button.click(predict_input, [name, features], [example_scores, example_text], api_name="predict")
        classify_drawn.click(classify_sketch, [name, sketch], [scores, preview], api_name="classify_sketch")
        classify_uploaded.click(classify_upload, [name, upload], [scores, preview], api_name="classify_image")
        sample.click(sample_image, [name], [upload, sample_text], api_name="sample_image")
        pair_button.click(predict_pair, [name, a, b], [pair_scores, pair_text], api_name="predict_pair")
        field_button.click(sample_field, [name], [field_plot, field_text], api_name="sample_field")
        example_button.click(sample_example, [name], [example_scores, example_text, example_json, features],
                             api_name="sample_example")
        demo.load(catalogue_rows, None, [table], api_name="catalogue")
    return demo


demo = build_demo()

if __name__ == "__main__":
    launch(demo)
