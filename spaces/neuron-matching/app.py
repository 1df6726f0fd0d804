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

import contextlib
import os
import time

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
    SCHEDULER,
    Estimate,
    ModelCache,
    bounded,
    check_model_name,
    check_parameters,
    gradio_errors,
    launch,
    measure_speed,
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
    """The zoo's published models (complete snapshots in the cache; the Hub's list when online)."""
    from zooscope_spaces.explorer import published_ids

    return published_ids()


def model_choices() -> list[str]:
    return cached_zoo_repos()


def default_models() -> list[str]:
    published = cached_zoo_repos()
    if all(m in published for m in DEFAULT_MODELS) or len(published) < 2:
        return list(DEFAULT_MODELS)
    return published[:2]


def _load(name: str):
    from analysis.convergent import load_models

    # trust_remote_code is decided by analysis.models.load_model (zoo.hub.remote_code_trust)
    (item,) = load_models([name])
    check_parameters(item.model, name)
    return item


def _copy(item):
    """A private model for one request (matching hooks into it); the tokenizer is shared."""
    import copy
    import dataclasses

    return dataclasses.replace(item, model=copy.deepcopy(item.model))


MODELS = ModelCache(_load, size=LIMITS["models"], copier=_copy)
SPEEDS: dict[str, object] = {}


def input_name(model) -> str:
    """What the model takes: ``pixel_values`` (images) or ``input_ids`` (text)."""
    return getattr(model, "main_input_name", None) or "input_ids"


def _speed(name: str, model, kind: str, example):
    """Seconds per example (image or token) of one forward, measured once per model."""
    import torch

    if name not in SPEEDS:
        @torch.no_grad()
        def forward(n: int):
            if kind == "pixel_values":
                model(pixel_values=example.expand(n, *example.shape[1:]))
            else:
                model(input_ids=torch.zeros(1, n, dtype=torch.long))

        SPEEDS[name] = measure_speed(forward, tokens=32)
    return SPEEDS[name]


def estimate(speeds, *, examples: int, per_example: int, layers: int, pairs: int, calls: int) -> Estimate:
    """Seconds: every model's forward over the inputs (hooked: x1.3), then per model pair and
    layer the correlation statistics, matching, canonical correlations and sparse prediction —
    counted as five more passes over the examples (the units are capped by the model sizes)."""
    forward = sum(s.seconds(examples * per_example * 1.3, calls) for s in speeds)
    matching = pairs * layers * 5 * max(s.seconds(examples * per_example, calls) for s in speeds)
    return Estimate(forward + matching, f"{len(speeds)} models × {examples} inputs, {layers} layers",
                    "fewer inputs, layers or models")


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
    kinds = [input_name(m) for m in modules]
    if len(set(kinds)) > 1:
        described = ", ".join(f"{n} takes {k}" for n, k in zip(names, kinds))
        raise UserError(f"the models take different kinds of input ({described}); "
                        "convergent learning compares models on the same inputs")
    kind = kinds[0]
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
    batches = list(batches)  # bounded above (images / prompts): one pass to size, one to run
    example = next(iter(batches[0].values())) if batches else None
    if kind == "pixel_values":
        speeds = [_speed(n, m, kind, example[:1].float()) for n, m in zip(names, modules)]
        per_example = 1
    else:
        speeds = [_speed(n, m, kind, None) for n, m in zip(names, modules)]
        per_example = TEXT_TOKENS
    cost = estimate(speeds, examples=total, per_example=per_example, layers=len(layers),
                    pairs=len(names) * (len(names) - 1) // 2, calls=len(batches))
    short = [n.split("/")[-1] for n in names]
    with SCHEDULER.admit(cost, progress) as line, contextlib.ExitStack() as stack:
        private = [stack.enter_context(MODELS.borrow(n)).model for n in names]
        progress(0.1, desc="streaming activations")
        start = time.perf_counter()
        report = cv.compare_models(private, layers, iter(batches), names=short, inputs=inputs, total=total,
                                   mi_bins=mi_bins, clusters=clusters or None, progress=True)
        took = time.perf_counter() - start
    progress(0.9, desc="plotting")
    folder = output_folder("match")
    figures = report.plot(os.path.join(folder, "figures"))
    data = report.to_json()
    data["space"] = {"estimated_s": round(cost.seconds, 3), "took_s": round(took, 3), "line": line}
    path = write_json(data, folder, "matching-results.json")
    note = f"*Estimated {cost.seconds:.1f} s ({line} request), took {took:.1f} s.*\n\n"
    return figures, note + report.summary_markdown(), path, data["summary"]


def cleared():
    """Every output emptied when a run starts: after an error nothing of the last result stays."""
    return [], "", None, None


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
        plots = gr.Gallery(label="Figures", columns=1, height="auto", object_fit="contain", preview=False,
                           elem_id="plots", elem_classes=["zooscope-figures"])
        summary = gr.Markdown(elem_id="summary")
        with gr.Row():
            results = gr.File(label="matching-results.json", elem_id="results")
            rows = gr.JSON(label="Summary", elem_id="rows")

        def refresh():
            return gr.update(choices=model_choices(), value=default_models())

        demo.load(refresh, None, [models], api_name=False).then(initial_layers, [models], [layers], api_name=False)
        list_button.click(layers_of, [models], [layers], api_name="list_layers")
        outputs = [plots, summary, results, rows]
        run.click(cleared, None, outputs, queue=False, api_name=False).then(
            match, [models, layers, num_inputs, clusters, mi_bins], outputs, api_name="match")
    return demo


demo = build_demo()

if __name__ == "__main__":
    launch(demo)
