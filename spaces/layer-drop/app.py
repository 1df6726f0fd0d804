"""layer-drop: drop the least important attention / MLP sublayers or whole blocks of a decoder
LM, and see what it costs and gains (He et al. 2024, "What Matters in Transformers? Not All
Attention is Needed").

Choose a model by name (default: the packaged SmolLM2-135M-Instruct GGUF), what to drop (kind,
how many, one-shot or iterative) → ``analysis.drop.run_drop`` scores every module on
calibration prompts, drops a copy of the model and measures perplexity and speed before and
after (with a progress bar); then the importance plot, the before/after table, text generated
by the full and the dropped model, and the report as downloadable JSON. Every request is bounded
(``zooscope_spaces.LIMITS``).

Run locally: ``python spaces/layer-drop/app.py`` (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).
"""
from __future__ import annotations

import copy
import os
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import gradio as gr  # noqa: E402
import torch  # noqa: E402

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

FALLBACK_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
KINDS = {"attn": "attention sublayers", "mlp": "MLP sublayers", "block": "whole blocks"}
EVAL_PROMPTS = 8
SPEED_TOKENS = 64
SPEED_ROUNDS = 5  # interleaved full / dropped timings: their spread is the noise shown
SPEED_NEW_TOKENS = 16
DEFAULT_PROMPT = "The three most useful things to know about the Python programming language are"


def choices() -> list[tuple[str, str]]:
    return lm_choices() or [(FALLBACK_MODEL, FALLBACK_MODEL)]


def _load(name: str):
    from analysis.models import DecoderAdapter, load_model

    # trust_remote_code is decided by analysis.models.load_model (zoo.hub.remote_code_trust)
    loaded = load_model(name)
    check_parameters(loaded.model, name)
    layers = DecoderAdapter(loaded.model).num_layers
    if layers > LIMITS["layers"]:
        raise UserError(f"{name} has {layers} layers; this Space drops layers of models with at most {LIMITS['layers']}")

    @torch.no_grad()
    def forward(n: int):
        loaded.model(input_ids=torch.zeros(1, n, dtype=torch.long))

    return loaded, measure_speed(forward)


def estimate(speed, *, n: int, mode: str, num_prompts: int, max_tokens: int, new_tokens: int,
             num_layers: int) -> Estimate:
    """Seconds from the sizes: scoring is one hooked forward over the calibration prompts (one per
    dropped module when iterative), perplexity two forwards over the held-out prompts, the speed
    test SPEED_ROUNDS prefill + decode runs per model, generation new_tokens decoding steps per
    model; plus copying the model (about one forward's worth)."""
    rounds = n if mode == "iterative" else 1
    prompts = num_prompts * rounds + 2 * min(EVAL_PROMPTS, num_prompts)
    speed_tokens = min(SPEED_TOKENS, max_tokens)
    tokens = prompts * max_tokens * 1.3 + 2 * SPEED_ROUNDS * speed_tokens + max_tokens
    calls = -(-prompts // 4) + 2 * SPEED_ROUNDS * (1 + SPEED_NEW_TOKENS) + 2 * new_tokens
    return Estimate(speed.seconds(tokens, calls),
                    f"{num_prompts} calibration prompts × {max_tokens} tokens, {mode}, {new_tokens} new tokens, "
                    f"{num_layers} layers", "fewer prompts, fewer tokens or one-shot mode")


def measure_speeds(full, dropped, ids) -> dict:
    """Prefill and decode tokens/s of both models, SPEED_ROUNDS times each, interleaved so that a
    disturbance hits both alike. The spread of the rounds is the noise of the comparison."""
    from analysis.drop import throughput

    samples = {m: {"prefill_tokens_per_s": [], "decode_tokens_per_s": []} for m in ("full", "dropped")}
    kv = {}
    for _ in range(SPEED_ROUNDS):
        for label, model in (("full", full), ("dropped", dropped)):
            result = throughput(model, ids, new_tokens=SPEED_NEW_TOKENS, repeats=1)
            for key in samples[label]:
                samples[label][key].append(float(result[key]))
            kv[label] = result["kv_bytes_per_token"]
    out = {"rounds": SPEED_ROUNDS, "prompt_tokens": int(ids.numel()), "new_tokens": SPEED_NEW_TOKENS,
           "samples": samples, "kv_bytes_per_token": kv, "verdict": {}}
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s"):
        a, b = sorted(samples["full"][key]), sorted(samples["dropped"][key])
        overlap = a[0] <= b[-1] and b[0] <= a[-1]
        ratio = _median(b) / _median(a)
        out["verdict"][key] = {"ratio": ratio, "within_noise": overlap,
                               "text": (f"within noise ({ratio:.2f}×; the rounds' ranges overlap)" if overlap
                                        else f"{ratio:.2f}× ({'faster' if ratio > 1 else 'slower'}, outside the "
                                             "rounds' spread)")}
    return out


def _median(values) -> float:
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


MODELS = ModelCache(_load, size=1)


@torch.no_grad()
def generate(model, tokenizer, prompt: str, new_tokens: int) -> str:
    """Greedy continuation (through the chat template when the tokenizer has one)."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)["input_ids"]
    else:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    ids = ids[:, -LIMITS["max_tokens"]:]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                         do_sample=False, pad_token_id=pad)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def _number(value, digits=2) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _spread(values) -> str:
    return f"{_median(values):,.1f} ({min(values):,.1f}–{max(values):,.1f})"


def before_after(report, speed: dict) -> str:
    before, after = report.rows[0], report.rows[-1]
    lines = ["| | full model | dropped | change |", "|---|---|---|---|"]
    a, b = before.perplexity, after.perplexity
    lines.append(f"| perplexity | {_number(a, 3)} | {_number(b, 3)} | {f'{b / a:.3f}×' if a and b is not None else '—'} |")
    for label, key in (("prefill tokens/s", "prefill_tokens_per_s"), ("decode tokens/s", "decode_tokens_per_s")):
        lines.append(f"| {label} | {_spread(speed['samples']['full'][key])} | {_spread(speed['samples']['dropped'][key])} "
                     f"| {speed['verdict'][key]['text']} |")
    kv_a, kv_b = speed["kv_bytes_per_token"]["full"], speed["kv_bytes_per_token"]["dropped"]
    lines.append(f"| KV cache bytes/token | {_number(kv_a, 0)} | {_number(kv_b, 0)} | "
                 f"{f'{kv_b / kv_a:.3f}×' if kv_a else '—'} |")
    a, b = before.num_parameters, after.num_parameters
    lines.append(f"| parameters | {_number(a, 0)} | {_number(b, 0)} | {f'{b / a:.3f}×' if a and b is not None else '—'} |")
    return (f"Dropped {len(report.dropped)} {KINDS[report.kind]} ({report.mode}): layers **{report.dropped}** of "
            f"{report.num_layers}; {report.calibration_tokens} calibration tokens, {report.eval_tokens} held-out "
            "tokens for perplexity.\n\n" + "\n".join(lines) +
            f"\n\nSpeeds: median (lowest–highest) of {speed['rounds']} interleaved rounds on a "
            f"{speed['prompt_tokens']}-token prompt with {speed['new_tokens']} new tokens, on this shared machine; "
            "a change is called one only when the two models' ranges do not overlap.")


@gradio_errors
def drop_layers(model: str, kind: str, n, mode: str, num_prompts, max_tokens, prompt: str, new_tokens,
                progress=gr.Progress(track_tqdm=True)):
    """Returns (figures, before/after markdown, full model's text, dropped model's text,
    report.json path, dropped layers)."""
    from analysis.drop import run_drop

    name = check_model_name(model, [value for _, value in choices()])
    if kind not in KINDS:
        raise UserError(f"kind must be one of {', '.join(KINDS)}")
    if mode not in ("one-shot", "iterative"):
        raise UserError("mode must be one-shot or iterative")
    n = bounded(n, "number of modules to drop", 1, LIMITS["layers"])
    num_prompts = bounded(num_prompts, "calibration prompts", 1, LIMITS["prompts"])
    max_tokens = bounded(max_tokens, "tokens per prompt", 8, LIMITS["max_tokens"])
    new_tokens = bounded(new_tokens, "new tokens", 1, LIMITS["new_tokens"])
    prompt = check_text(prompt, "the generation prompt", max_chars=2000)
    progress(0.0, desc=f"loading {name}")
    loaded, speed = MODELS.get(name)
    from analysis.models import DecoderAdapter

    num_layers = DecoderAdapter(loaded.model).num_layers
    cost = estimate(speed, n=n, mode=mode, num_prompts=num_prompts, max_tokens=max_tokens, new_tokens=new_tokens,
                    num_layers=num_layers)
    with SCHEDULER.admit(cost, progress) as line:
        start = time.perf_counter()
        work = copy.deepcopy(loaded.model)  # run_drop drops in place; the cached model stays whole
        progress(0.1, desc="scoring and dropping")
        report, dropped = run_drop(
            work, loaded.tokenizer, kind=kind, n=n, mode=mode,
            name=os.path.basename(name) if name.endswith(".gguf") else name,
            num_prompts=num_prompts, eval_prompts=min(EVAL_PROMPTS, num_prompts), max_tokens=max_tokens,
            batch_size=4, speed=False, progress=True,
        )
        progress(0.7, desc="timing both models")
        ids = _speed_prompt(loaded.tokenizer, prompt, min(SPEED_TOKENS, max_tokens))
        speeds = measure_speeds(loaded.model, dropped, ids)
        progress(0.85, desc="generating")
        before_text = generate(loaded.model, loaded.tokenizer, prompt, new_tokens)
        after_text = generate(dropped, loaded.tokenizer, prompt, new_tokens)
        took = time.perf_counter() - start
    folder = output_folder("drop")
    figures = report.plot(folder)
    data = report.to_dict()
    for row, label in ((data["rows"][0], "full"), (data["rows"][-1], "dropped")):
        for key in ("prefill_tokens_per_s", "decode_tokens_per_s"):
            row[key] = _median(speeds["samples"][label][key])
        row["kv_bytes_per_token"] = speeds["kv_bytes_per_token"][label]
    data["speed"] = speeds
    data["generation"] = {"prompt": prompt, "new_tokens": new_tokens, "full": before_text, "dropped": after_text}
    data["space"] = {"estimated_s": round(cost.seconds, 3), "took_s": round(took, 3), "line": line}
    path = write_json(data, folder, "drop-report.json")
    del work, dropped
    note = f"\n\n*Estimated {cost.seconds:.1f} s ({line} request), took {took:.1f} s.*"
    return (figures, before_after(report, speeds) + note, before_text, after_text, path,
            {"kind": report.kind, "mode": report.mode, "dropped": report.dropped,
             "drop_attn_list": report.attn_list, "drop_mlp_list": report.mlp_list})


def _speed_prompt(tokenizer, prompt: str, tokens: int):
    """The speed test's prompt: the generation prompt's tokens, repeated up to ``tokens``."""
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"][0]
    if ids.numel() == 0:
        raise UserError("the generation prompt has no tokens")
    return ids.repeat(-(-tokens // ids.numel()))[:tokens][None]


def cleared():
    """Every output emptied when a run starts: after an error nothing of the last result stays."""
    return [], "", "", "", None, None


def build_demo() -> gr.Blocks:
    options = choices()
    with gr.Blocks(title="zooscope layer drop") as demo:
        gr.Markdown(
            "# zooscope layer drop\n"
            "Drop the attention sublayers, MLP sublayers or whole blocks whose output is most similar "
            "to their input (He et al. 2024, *What Matters in Transformers? Not All Attention is "
            "Needed*), then compare perplexity, speed and generated text before and after. Choose a "
            f"model — one of the list, a zoo id or a Hub id (at most {LIMITS['parameters'] / 1e9:.1f} B "
            "parameters).")
        with gr.Row():
            model = gr.Dropdown(options, value=options[0][1], label="Model", allow_custom_value=True,
                                elem_id="model", scale=3)
            run = gr.Button("Drop and compare", variant="primary", elem_id="run", scale=1)
        with gr.Row():
            kind = gr.Radio(list(KINDS), value="attn", label="Drop", elem_id="kind",
                            info="attn: attention sublayers, mlp: MLP sublayers, block: whole blocks")
            mode = gr.Radio(["one-shot", "iterative"], value="one-shot", label="Mode", elem_id="mode",
                            info="iterative re-scores after each drop")
            n = gr.Number(value=2, precision=0, label="How many", elem_id="n", minimum=1)
        with gr.Row():
            num_prompts = gr.Slider(1, LIMITS["prompts"], value=4, step=1, label="Calibration prompts",
                                    elem_id="num-prompts")
            max_tokens = gr.Slider(8, LIMITS["max_tokens"], value=64, step=8, label="Tokens per prompt",
                                   elem_id="max-tokens")
            new_tokens = gr.Slider(1, LIMITS["new_tokens"], value=24, step=1, label="New tokens to generate",
                                   elem_id="new-tokens")
        prompt = gr.Textbox(DEFAULT_PROMPT, label="Generation prompt", lines=2, elem_id="prompt", max_length=2000)
        table = gr.Markdown(elem_id="table")
        with gr.Row():
            before_text = gr.Textbox(label="Full model", lines=4, elem_id="before", interactive=False)
            after_text = gr.Textbox(label="Dropped model", lines=4, elem_id="after", interactive=False)
        plots = gr.Gallery(label="Importance (1 − cosine similarity); dropped ones hatched", columns=1,
                           height="auto", object_fit="contain", preview=False, elem_id="plots",
                           elem_classes=["zooscope-figures"])
        with gr.Row():
            report_file = gr.File(label="drop-report.json", elem_id="report")
            dropped = gr.JSON(label="Dropped", elem_id="dropped")
        outputs = [plots, table, before_text, after_text, report_file, dropped]
        run.click(cleared, None, outputs, queue=False, api_name=False).then(
            drop_layers, [model, kind, n, mode, num_prompts, max_tokens, prompt, new_tokens], outputs, api_name="drop")
    return demo


demo = build_demo()

if __name__ == "__main__":
    launch(demo)
