"""neuron-matching: do networks that differ only in their seed learn the same units?
(Li, Yosinski, Clune, Lipson, Hopcroft 2015, "Convergent Learning")

Choose two or more models by name (default: the zoo's seed replicas) and the layers to compare
→ ``analysis.convergent.compare_models`` streams every model's units over the same inputs (the
first model's zoo data set for image models, the built-in text for language models) with a
progress bar, matches units one-to-one and semi, against a random-rotation baseline, with
canonical correlations, sparse prediction and spectral groups; then the figures, the summary
table and the results as downloadable JSON. Every request is bounded
(``zooscope_spaces.LIMITS``).

Run locally: ``python spaces/neuron-matching/app.py`` (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import gradio as gr  # noqa: E402

from zoo.errors import UserError  # noqa: E402
import sys  # noqa: E402

try:  # a deployed Space folder carries the shared code next to app.py (python -m spaces.export)
    import zooscope_spaces  # noqa: E402, F401
except ModuleNotFoundError as error:  # a checkout: it lives in spaces/_shared
    if error.name != "zooscope_spaces":
        raise
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from zooscope_spaces import (  # noqa: E402
    LIMITS,
    ModelCache,
    bounded,
    check_model_name,
    check_parameters,
    gradio_errors,
    launch,
    output_folder,
    write_json,
)

HUB_ORG = "zooscope"
DEFAULT_MODELS = ["convnet-fashion-mnist-seed0", "convnet-fashion-mnist-seed1"]
MAX_LAYERS = 4  # layers compared in one request
MAX_CLUSTERS = 32
TEXT_TOKENS = 128
ACTIVATIONS = ("ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "GELUActivation", "SiLUActivation", "NewGELUActivation",
               "PytorchGELUTanh", "QuickGELUActivation")


def cached_zoo_repos() -> list[str]:
    from huggingface_hub import constants

    try:
        entries = os.listdir(constants.HF_HUB_CACHE)
    except OSError:
        return []
    prefix = f"models--{HUB_ORG}--"
    return sorted(e[len(prefix):] for e in entries if e.startswith(prefix))


def model_choices() -> list[str]:
    import zoo

    published = cached_zoo_repos()
    return published + [r for r in zoo.list_models(pretrained=True) if r not in published]


def default_models() -> list[str]:
    published = cached_zoo_repos()
    if all(m in published for m in DEFAULT_MODELS) or len(published) < 2:
        return list(DEFAULT_MODELS)
    return published[:2]


def _load(name: str):
    from analysis.convergent import load_models

    (item,) = load_models([name])  # trust_remote_code only for zooscope/ repos
    check_parameters(item.model, name)
    return item


MODELS = ModelCache(_load, size=LIMITS["models"])


def _check_models(names) -> list[str]:
    names = [str(n).strip() for n in (names or []) if str(n).strip()]
    if len(names) < 2:
        raise UserError("choose at least two models to compare")
    if len(names) > LIMITS["models"]:
        raise UserError(f"at most {LIMITS['models']} models at once, not {len(names)}")
    if len(set(names)) != len(names):
        raise UserError("a model is chosen twice: choose different models (e.g. seed replicas)")
    allowed = model_choices()
    return [check_model_name(n, allowed) for n in names]


def recipe_of(name: str) -> dict:
    """The recipe a zoo repo was trained with (its recipe.yaml), or {}."""
    import yaml
    from huggingface_hub import constants, hf_hub_download

    repo_id = name if name.startswith(f"{HUB_ORG}/") else f"{HUB_ORG}/{name}"
    for local_only in (True, False):
        if not local_only and constants.HF_HUB_OFFLINE:
            break
        try:
            path = hf_hub_download(repo_id, "recipe.yaml", local_files_only=local_only)
            return yaml.safe_load(open(path, encoding="utf-8")) or {}
        except Exception:  # noqa: BLE001 - not a zoo repo, or no recipe: no default data
            continue
    return {}


def default_layers(model) -> list[str]:
    """The activation modules (ReLU, GELU, ...): the units the paper compares."""
    from analysis.convergent import list_layers

    return [name for name, cls in list_layers(model) if cls in ACTIVATIONS][:MAX_LAYERS]


@gradio_errors
def layers_of(models):
    """The layer dropdown for the first model: every module path, activations chosen."""
    from analysis.convergent import list_layers

    names = [str(n).strip() for n in (models or []) if str(n).strip()]
    if not names:
        raise UserError("choose the models first")
    name = check_model_name(names[0], model_choices())
    model = MODELS.get(name).model
    return gr.update(choices=[n for n, _ in list_layers(model)], value=default_layers(model))


def initial_layers(models):
    """layers_of when the page opens: silent when the default models are not available here."""
    try:
        return layers_of(models)
    except Exception:  # noqa: BLE001 - the visitor has not asked for anything yet
        return gr.update(choices=[], value=[])


@gradio_errors
def match(models, layers, num_inputs, clusters, mi_bins, progress=gr.Progress(track_tqdm=True)):
    """Returns (figures, summary markdown, results.json path, summary rows)."""
    from analysis import convergent as cv

    names = _check_models(models)
    layers = [str(layer).strip() for layer in (layers or []) if str(layer).strip()]
    if not layers:
        raise UserError("choose at least one layer to compare")
    if len(layers) > MAX_LAYERS:
        raise UserError(f"at most {MAX_LAYERS} layers at once, not {len(layers)}")
    clusters = bounded(clusters, "spectral groups", 0, MAX_CLUSTERS)
    mi_bins = bounded(mi_bins, "mutual-information bins", 0, 16)
    if mi_bins == 1:
        raise UserError("mutual-information bins must be 0 (off) or at least 2")
    progress(0.0, desc="loading models")
    loaded = [MODELS.get(n) for n in names]
    modules = [item.model for item in loaded]
    for model, name in zip(modules, names):
        cv.check_layers(model, layers, name)
    kind = cv._check_inputs(modules, names)
    if kind == "pixel_values":
        num_inputs = bounded(num_inputs, "number of images", 16, LIMITS["images"])
        data = (recipe_of(names[0]).get("data") or {})
        data = data if isinstance(data, dict) else {"name": data}
        if not data.get("name"):
            raise UserError(f"{names[0]} names no zoo data set (no recipe.yaml): image models need one")
        params = {k: v for k, v in data.items() if k not in ("name", "eval_split")}
        total, batches = cv.image_batches(data["name"], split="test", limit=num_inputs, batch_size=256, **params)
        inputs = {"kind": kind, "description": f"zoo data set {data['name']} (test split)", "data": data["name"],
                  "examples": total}
    elif kind == "input_ids":
        num_inputs = bounded(num_inputs, "number of prompts", 1, LIMITS["prompts"])
        total, batches = cv.text_batches([i.tokenizer for i in loaded], names, None, num_prompts=num_inputs,
                                         max_tokens=TEXT_TOKENS, batch_size=4)
        inputs = {"kind": kind, "description": "built-in English text", "examples": total, "max_tokens": TEXT_TOKENS}
    else:
        raise UserError(f"models taking {kind} are not supported here (image pixel_values or text input_ids)")
    progress(0.1, desc="streaming activations")
    short = [n.split("/")[-1] for n in names]
    report = cv.compare_models(modules, layers, batches, names=short, inputs=inputs, total=total, mi_bins=mi_bins,
                               clusters=clusters or None, progress=True)
    progress(0.9, desc="plotting")
    folder = output_folder("match")
    figures = report.plot(os.path.join(folder, "figures"))
    path = write_json(report.to_json(), folder, "matching-results.json")
    return figures, report.summary_markdown(), path, report.to_json()["summary"]


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="zooscope neuron matching") as demo:
        gr.Markdown(
            "# zooscope neuron matching\n"
            "Do networks that differ only in their random seed learn the same units? (Li, Yosinski, "
            "Clune, Lipson, Hopcroft 2015, *Convergent Learning*). Choose two or more models (the zoo's "
            "seed replicas by default; zoo ids or Hub ids) and the layers whose units to match.")
        with gr.Row():
            models = gr.Dropdown([], value=default_models(), multiselect=True, allow_custom_value=True,
                                 label=f"Models (2 to {LIMITS['models']})", elem_id="models", scale=3)
            list_button = gr.Button("List layers", elem_id="list-layers", scale=1)
        layers = gr.Dropdown([], value=[], multiselect=True, allow_custom_value=True,
                             label=f"Layers (module paths, at most {MAX_LAYERS}; activations are chosen for you)",
                             elem_id="layers")
        with gr.Row():
            num_inputs = gr.Slider(16, LIMITS["images"], value=500, step=1, elem_id="num-inputs",
                                   label="Inputs (test images; for language models: prompts, at most 16)")
            clusters = gr.Slider(0, MAX_CLUSTERS, value=8, step=1, label="Spectral groups (0: off)", elem_id="clusters")
            mi_bins = gr.Slider(0, 16, value=0, step=1, label="Mutual-information bins (0: off)", elem_id="mi-bins")
        run = gr.Button("Match units", variant="primary", elem_id="run")
        plots = gr.Gallery(label="Figures", columns=2, height="auto", object_fit="contain", preview=False, elem_id="plots")
        summary = gr.Markdown(elem_id="summary")
        with gr.Row():
            results = gr.File(label="matching-results.json", elem_id="results")
            rows = gr.JSON(label="Summary", elem_id="rows")

        def refresh():
            return gr.update(choices=model_choices(), value=default_models())

        demo.load(refresh, None, [models], api_name=False).then(initial_layers, [models], [layers], api_name=False)
        list_button.click(layers_of, [models], [layers], api_name="list_layers")
        run.click(match, [models, layers, num_inputs, clusters, mi_bins], [plots, summary, results, rows],
                  api_name="match")
    return demo


demo = build_demo()

if __name__ == "__main__":
    launch(demo)
