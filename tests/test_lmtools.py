"""Issue 20: the language-model tools around their numbers — the fused, vocabulary-chunked logit
lens against the direct computation, the cost estimate behind the defaults, speed intervals,
exact-token inputs and the figures. Tiny random models; every check has an independent side."""
from __future__ import annotations

import pytest
import torch

from analysis import depth
from analysis.models import DecoderAdapter

from .analysis_fixtures import make_tiny, random_prompts


@torch.no_grad()
def _direct_lens(adapter, prompts, k, exclude):
    """KL(final ‖ lens) and top-k overlap from stored h_l and a full log-softmax per layer."""
    L = adapter.num_layers
    kl, overlap, n = torch.zeros(L + 1, dtype=torch.float64), torch.zeros(L + 1, dtype=torch.float64), 0
    for prompt in prompts:
        acts = depth.collect_activations(adapter, prompt[None])
        keep = torch.ones(len(prompt), dtype=torch.bool)
        keep[list(exclude)] = False
        ref = acts["logits"][0][keep].double().log_softmax(-1)
        ref_top = ref.topk(k, -1).indices
        hs = list(acts["h"][:L, 0]) + [acts["h"][L, 0]]
        for l, h in enumerate(hs):
            logp = adapter.logits(h[keep]).double().log_softmax(-1)
            kl[l] += float((ref.exp() * (ref - logp)).sum())
            top = logp.topk(k, -1).indices
            overlap[l] += float((top[:, :, None] == ref_top[:, None, :]).any(-1).sum()) / k
        n += int(keep.sum())
    return (kl / n).tolist(), (overlap / n).tolist()


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])  # plain, softcapped, fused-attention heads
def test_chunked_lens_equals_the_direct_computation(family):
    adapter = DecoderAdapter(make_tiny(family))
    prompts = random_prompts((12, 9, 16))
    kl, overlap = _direct_lens(adapter, prompts, k=3, exclude=(0,))
    # chunks that do not divide the vocabulary (256) or the tokens, and a batch with padding
    lens = depth.logit_lens(adapter, prompts, k=3, batch_size=2, chunk_tokens=5, vocab_chunk=37, progress=False)
    assert lens.num_tokens == 11 + 8 + 15
    # float32 chunks combined in float64: within 1e-7 nats of the float64 direct computation
    assert lens.kl == pytest.approx(kl, rel=1e-6, abs=1e-7)
    assert lens.topk_overlap == pytest.approx(overlap, abs=1e-6)  # float32 sums of 1/k
    assert lens.kl[-1] == pytest.approx(0, abs=1e-5) and lens.topk_overlap[-1] == 1.0
    assert max(lens.kl[:-1]) > 1e-4  # not trivially zero


def test_sampled_lens_is_unbiased_and_its_intervals_cover_the_exact_lens():
    """The stratified estimate from half of each batch's tokens, over 20 draws: its mean is the
    exact lens (unbiased) and its ±1.96 SE intervals cover the exact value about 95 % of the time;
    the exact lens (sample = 1) has standard error 0."""
    import numpy as np

    adapter = DecoderAdapter(make_tiny("llama"))
    prompts = random_prompts((24, 17, 30, 21, 26))
    exact = depth.logit_lens(adapter, prompts, batch_size=2, progress=False)
    assert exact.exact and exact.kl_se == [0.0] * 4 and exact.sampled_tokens == exact.num_tokens
    draws = [depth.logit_lens(adapter, prompts, batch_size=2, sample=0.5, seed=seed, progress=False)
             for seed in range(20)]
    # each batch keeps round(share x its measured tokens): batches of 39, 49 and 25 measured tokens
    assert all(d.sampled_tokens == 20 + 24 + 12 and d.num_tokens == exact.num_tokens and not d.exact for d in draws)
    for field in ("kl", "topk_overlap"):
        values = np.array([getattr(d, field)[:-1] for d in draws])  # h_L is the output: no spread
        se = np.array([getattr(d, field + "_se")[:-1] for d in draws])
        truth = np.array(getattr(exact, field)[:-1])
        assert (se > 0).all()
        covered = np.abs(values - truth) <= 1.96 * se
        assert covered.mean() >= 0.8, (field, covered.mean())
        # unbiased: the mean of 20 draws within 3 of its standard errors (SE / sqrt(20))
        assert (np.abs(values.mean(0) - truth) <= 3 * se.mean(0) / np.sqrt(20)).all(), field
    with pytest.raises(ValueError, match="sample"):
        depth.logit_lens(adapter, prompts, sample=0, progress=False)


def test_auto_lens_sample_keeps_the_lens_within_two_forwards():
    """Exact where the head on L+1 streams is cheap (the tiny model); on a SmolLM2-shaped model the
    share whose head FLOPs are half a forward, so the estimated lens is 1.5 forwards."""
    from analysis.depth.resources import LENS_HEAD_SHARE, auto_lens_sample, estimate_flops

    assert auto_lens_sample(DecoderAdapter(make_tiny("llama")), 24) == 1.0
    adapter = _smollm2_shaped()
    share = auto_lens_sample(adapter, 256)
    per_token_head = 2 * 49152 * 576
    forward = estimate_flops(adapter, num_prompts=1, max_tokens=256, analyses=["contributions"])["contributions"]
    assert share == pytest.approx(LENS_HEAD_SHARE * forward / (31 * 256 * per_token_head))
    assert 0.05 < share < 0.1
    est = estimate_flops(adapter, num_prompts=1, max_tokens=256, analyses=["lens"], lens_sample=share)
    assert est["lens"] / forward == pytest.approx(1 + LENS_HEAD_SHARE, rel=1e-6)


# --- the cost estimate behind the defaults ----------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_flop_estimate_matches_counted_flops(family):
    """estimate_flops from the weight shapes against torch's FlopCounterMode on the real runs."""
    from torch.utils.flop_counter import FlopCounterMode

    from analysis.depth.resources import estimate_flops

    adapter = DecoderAdapter(make_tiny(family))
    prompts = [torch.randint(1, 256, (24,), generator=torch.Generator().manual_seed(i)) for i in range(3)]
    est = estimate_flops(adapter, num_prompts=3, max_tokens=24, analyses=["contributions", "lens", "skip"],
                         skip_positions=3)
    runs = {"contributions": lambda: depth.contributions(adapter, prompts, batch_size=2, progress=False),
            "lens": lambda: depth.logit_lens(adapter, prompts, batch_size=2, progress=False),
            "skip": lambda: depth.skip_effects(adapter, prompts, num_positions=3, progress=False)}
    for name, run in runs.items():
        with FlopCounterMode(display=False) as counter:
            run()
        assert 0.95 <= est[name] / counter.get_total_flops() <= 1.3, name
    assert est["total"] == est["contributions"] + est["lens"] + est["skip"]


def _smollm2_shaped():
    """A SmolLM2-135M-shaped llama on the meta device: its shapes, no weights, no compute."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192,
                         tie_word_embeddings=True)
    with torch.device("meta"):
        return DecoderAdapter(LlamaForCausalLM(config))


def test_cli_defaults_take_about_a_minute_for_a_135m_model_on_a_laptop():
    from analysis.depth import cli
    from analysis.depth.resources import LAPTOP_FLOPS, auto_lens_sample, estimate_flops

    adapter = _smollm2_shaped()
    per_token_forward = 2 * (30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536) + 49152 * 576)
    analyses = cli.DEFAULT_ANALYSES.split(",")
    share = auto_lens_sample(adapter, cli.DEFAULT_MAX_TOKENS)  # what the CLI's --lens-sample auto picks
    est = estimate_flops(adapter, num_prompts=cli.DEFAULT_NUM_PROMPTS, max_tokens=cli.DEFAULT_MAX_TOKENS,
                         analyses=analyses, lens_sample=share)
    exact = estimate_flops(adapter, num_prompts=cli.DEFAULT_NUM_PROMPTS, max_tokens=cli.DEFAULT_MAX_TOKENS,
                           analyses=analyses)
    tokens = cli.DEFAULT_NUM_PROMPTS * cli.DEFAULT_MAX_TOKENS
    # independent count of the matrix products: the forward, plus the lens' 31 head products per token
    assert est["contributions"] == pytest.approx(tokens * per_token_forward, rel=0.1)
    assert exact["lens"] - exact["contributions"] == 31 * 2 * tokens * 49152 * 576
    assert est["lens"] - est["contributions"] == pytest.approx(share * 31 * 2 * tokens * 49152 * 576, rel=1e-9)
    assert "skip" not in est and "map" not in est  # opt-in / needs --compare
    assert est["total"] / LAPTOP_FLOPS <= 60
    # the skip test would not fit: that is why it is opt-in
    skip = estimate_flops(adapter, num_prompts=cli.DEFAULT_NUM_PROMPTS, max_tokens=cli.DEFAULT_MAX_TOKENS,
                          analyses=["skip"])["skip"]
    assert skip / LAPTOP_FLOPS > 600


def test_cli_prints_the_estimate_and_says_what_did_not_run(tmp_path, capsys, monkeypatch):
    import json

    from analysis.cli import main as cli_main
    from analysis.depth.resources import LAPTOP_FLOPS

    from .analysis_fixtures import save_tiny

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = save_tiny(str(tmp_path / "tiny"), "llama")
    out = tmp_path / "out"
    assert cli_main(["depth", "--model", folder, "--out", str(out), "--max-tokens", "32"]) == 0
    err = capsys.readouterr().err
    assert "estimated time at" in err and "contributions ~" in err and "skip test, opt-in" in err
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["analyses"] == ["contributions", "lens", "map"]
    assert report["skip"] is None and "opt-in" in report["not_run"]["skip"]
    assert "--compare" in report["not_run"]["map"]
    # the tiny model's defaults, bounded through the estimate (not a wall-clock race)
    assert report["estimate"]["flops"]["total"] / LAPTOP_FLOPS < 0.1
    assert set(report["estimate"]["flops"]) == {"contributions", "lens", "total"}


def test_cli_sampled_lens_says_so_in_the_report_and_the_figure(tmp_path, figures, monkeypatch):
    import json

    from analysis.cli import main as cli_main

    from .analysis_fixtures import save_tiny

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = save_tiny(str(tmp_path / "tiny"), "llama")
    out = tmp_path / "out"
    assert cli_main(["depth", "--model", folder, "--out", str(out), "--max-tokens", "32", "--num-prompts", "4",
                     "--analyses", "lens", "--lens-sample", "0.25", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    lens = report["lens"]
    assert report["settings"]["lens_sample"] == 0.25 and lens["sample"] == 0.25
    assert lens["sampled_tokens"] == round(0.25 * lens["num_tokens"]) and min(lens["kl_se"][:-1]) > 0
    text = (out / "report.md").read_text()
    assert f"estimated from a random {lens['sampled_tokens']} of the {lens['num_tokens']} tokens" in text
    assert "| h_l | KL | ± | top-k overlap | ± |" in text
    title = figures["logit_lens.png"]._suptitle.get_text()
    assert f"{lens['sampled_tokens']} of {lens['num_tokens']} tokens sampled, 95 % intervals" in title


# --- speed with its spread (drop) -------------------------------------------------------------


@pytest.fixture
def figures(monkeypatch):
    """Every matplotlib figure saved during the test, after it was drawn (tick labels set)."""
    from matplotlib.figure import Figure

    saved = {}
    original = Figure.savefig

    def savefig(self, path, *args, **kwargs):
        original(self, path, *args, **kwargs)
        saved[__import__("os").path.basename(str(path))] = self

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def test_speed_interval_that_spans_no_change_is_not_resolved():
    import numpy as np

    from analysis import drop

    noisy = [0.93, 1.04, 1.10, 0.98, 1.01]
    interval = drop.speed_interval(noisy)
    q1, q3 = np.percentile(noisy, [25, 75])
    assert interval["quartiles"] == pytest.approx([q1, q3]) and interval["median"] == pytest.approx(1.01)
    assert interval["resolved"] is False
    assert drop.format_interval(interval) == "×1.01 [0.98–1.04] not resolved"
    clear = drop.speed_interval([1.21, 1.18, 1.25, 1.19, 1.22])
    assert clear["resolved"] is True and "not resolved" not in drop.format_interval(clear)
    assert drop.speed_interval([0.80, 0.85, 0.82])["resolved"] is True  # a resolved slow-down
    # the order alternates between rounds
    calls = []
    drop.paired_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]


def test_drop_reports_speed_intervals_everywhere(tmp_path, figures):
    """run_drop with speed: paired rounds against the full model; the interval in the report
    table, the card, the CLI line and the sweep plot (error bars; hollow marker if unresolved)."""
    from analysis import drop
    from analysis.drop.cli import speed_summary

    from .analysis_fixtures import make_tokenizer

    model, tok = make_tiny("llama", num_layers=4), make_tokenizer()
    report, dropped = drop.run_drop(model, tok, kind="attn", n=2, num_prompts=2, eval_prompts=1, max_tokens=24,
                                    eval_ks=[1], speed_tokens=8, new_tokens=2, repeats=3)
    base, one, two = report.rows
    for row in (one, two):
        interval = row.speed["decode_speedup"]
        assert interval["rounds"] == 3 and len(interval["quartiles"]) == 2
        q1, median, q3 = row.speed["decode_tokens_per_s"]
        assert q1 <= median <= q3 and row.decode_tokens_per_s == median
    assert "decode_speedup" not in base.speed  # the full model has no speed-up of its own
    markdown = report.to_markdown()
    assert "decode speed-up" in markdown and "paired, alternating rounds" in markdown
    assert drop.format_interval(two.speed["decode_speedup"]) in markdown
    line = speed_summary(base, two)
    assert "decode" in line and "[" in line and "paired rounds, cpu time" in line
    # forced: one unresolved, one resolved row, drawn and printed as such
    one.speed["decode_speedup"] = {"median": 1.01, "quartiles": [0.97, 1.04], "rounds": 3, "resolved": False}
    two.speed["decode_speedup"] = {"median": 1.30, "quartiles": [1.25, 1.34], "rounds": 3, "resolved": True}
    # prefill too: its measured interval on a tiny model is noise, and could read "not resolved"
    two.speed["prefill_speedup"] = {"median": 1.20, "quartiles": [1.15, 1.24], "rounds": 3, "resolved": True}
    assert "×1.01 [0.97–1.04] not resolved" in drop.rows_table(report.rows)
    assert "not resolved" in speed_summary(base, one) and "not resolved" not in speed_summary(base, two)
    report.plot(str(tmp_path))
    ax = figures["sweep.png"].axes[1]
    markers = [l for l in ax.lines if l.get_marker() == "o" and len(l.get_xdata()) == 1]
    faces = {int(l.get_xdata()[0]): l.get_markerfacecolor() for l in markers}
    assert faces[1] in ("white", (1.0, 1.0, 1.0, 1.0)) and faces[2] not in ("white", (1.0, 1.0, 1.0, 1.0))
    assert len(ax.collections) >= 1  # the quartile error bars
    card = drop.model_card(repo_id="zooscope/x", base_model="tiny", family="llama", kind="attn", mode="one-shot",
                           dropped=[0, 1], attn=[0, 1], mlp=[], num_layers_before=4, num_layers_after=4, rows=report.rows)
    assert "×1.30 [1.25–1.34]" in card and "not resolved" in card


# --- exact token inputs -----------------------------------------------------------------------


def _sha256(blocks):
    """The token hash, written out independently: per block, int64 length then int64 ids (LE)."""
    import hashlib
    import struct

    digest = hashlib.sha256()
    for block in blocks:
        ids = [int(i) for i in block]
        digest.update(struct.pack("<q", len(ids)) + struct.pack(f"<{len(ids)}q", *ids))
    return digest.hexdigest()


@pytest.fixture
def tiny_folder(tmp_path, monkeypatch):
    from .analysis_fixtures import save_tiny

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return save_tiny(str(tmp_path / "tiny"), "llama")


def test_token_file_gives_the_api_statistics_on_the_same_ids(tmp_path, tiny_folder):
    import json

    from safetensors.torch import save_file

    from analysis.cli import main as cli_main
    from analysis.models import load_model

    ids = torch.randint(3, 256, (3, 16), generator=torch.Generator().manual_seed(7))
    save_file({"input_ids": ids}, str(tmp_path / "blocks.safetensors"))
    out = tmp_path / "out"
    assert cli_main(["depth", "--model", tiny_folder, "--out", str(out), "--token-file",
                     str(tmp_path / "blocks.safetensors"), "--analyses", "contributions,lens", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    model = load_model(tiny_folder).model
    api = depth.contributions(model, list(ids), progress=False)
    assert report["contributions"]["layer_ratio"] == api.layer_ratio  # the very same ids, bit for bit
    assert report["contributions"]["num_tokens"] == 3 * 15
    lens = depth.logit_lens(model, list(ids), progress=False)
    assert report["lens"]["kl"] == lens.kl
    inputs = report["settings"]["inputs"]
    assert inputs["token_ids_sha256"] == _sha256(ids.tolist()) and inputs["kind"] == "token-file"
    assert inputs["blocks"] == 3 and inputs["block_tokens"] == 16
    # a datasets file of the same ids reads back to the same blocks
    import datasets

    from analysis.prompts import load_token_blocks

    datasets.Dataset.from_dict({"input_ids": ids.tolist()}).to_parquet(str(tmp_path / "blocks.parquet"))
    again = load_token_blocks(str(tmp_path / "blocks.parquet"))
    assert [b.tolist() for b in again] == ids.tolist()


def test_text_stream_is_cut_into_exact_blocks(tmp_path, tiny_folder):
    import json

    from analysis.cli import main as cli_main
    from analysis.models import load_tokenizer
    from analysis.prompts import builtin_texts

    text = "\n\n".join(builtin_texts()[:3])
    (tmp_path / "stream.txt").write_text(text)
    tokenizer = load_tokenizer(tiny_folder)
    for special in (True, False):
        stream = tokenizer(text, add_special_tokens=special)["input_ids"]
        expected = [stream[i * 20:(i + 1) * 20] for i in range(2)]
        out = tmp_path / f"out-{special}"
        flag = "--add-special-tokens" if special else "--no-add-special-tokens"
        assert cli_main(["drop", "--model", tiny_folder, "--out", str(out), "--kind", "attn", "--n", "1",
                         "--text-stream", str(tmp_path / "stream.txt"), "--max-tokens", "20", "--num-prompts", "1",
                         "--eval-prompts", "1", flag, "--no-speed", "--quiet"]) == 0
        inputs = json.loads((out / "report.json").read_text())["inputs"]
        assert inputs["token_ids_sha256"] == _sha256(expected)
        assert inputs["add_special_tokens"] is special and inputs["blocks"] == 2
        assert (expected[0][0] == tokenizer.bos_token_id) is special  # BOS at the start of the stream only
        assert expected[1][0] != tokenizer.bos_token_id


def test_match_takes_token_blocks_like_the_api(tmp_path, tiny_folder, capsys):
    import json

    from safetensors.torch import save_file

    from analysis import convergent as cv
    from analysis.cli import main as cli_main
    from analysis.models import load_model

    from .analysis_fixtures import save_tiny

    other = save_tiny(str(tmp_path / "other"), "llama", seed=3)
    ids = torch.randint(3, 256, (4, 12), generator=torch.Generator().manual_seed(1))
    save_file({"input_ids": ids}, str(tmp_path / "blocks.safetensors"))
    out = tmp_path / "match"
    layer = "model.layers.0.mlp.act_fn"
    assert cli_main(["match", "--models", tiny_folder, other, "--layers", layer, "--out", str(out), "--token-file",
                     str(tmp_path / "blocks.safetensors"), "--rotations", "0", "--no-sparse", "--no-clusters",
                     "--no-plots", "--quiet"]) == 0
    written = json.loads(next(p for p in out.iterdir() if p.suffix == ".json").read_text())
    models = [load_model(f).model for f in (tiny_folder, other)]
    mask = torch.ones_like(ids)
    api = cv.compare_models(models, [layer], [{"input_ids": ids, "attention_mask": mask}], rotations=0, sparse=False,
                            clusters=0, progress=False)
    assert written["comparisons"][0]["mean_matched"] == api.comparisons[0].mean_matched
    assert written["inputs"]["tokens"]["token_ids_sha256"] == _sha256(ids.tolist())


@pytest.mark.parametrize("case", ["both", "out-of-vocab", "missing"])
def test_token_input_mistakes_are_one_line_errors(case, tmp_path, tiny_folder, capsys):
    from safetensors.torch import save_file

    from analysis.cli import main as cli_main

    path = str(tmp_path / "blocks.safetensors")
    save_file({"input_ids": torch.tensor([[5, 6, 7, 999]])}, path)
    args = {"both": ["--token-file", path, "--prompts", path],
            "out-of-vocab": ["--token-file", path],
            "missing": ["--token-file", str(tmp_path / "nope.safetensors")]}[case]
    assert cli_main(["depth", "--model", tiny_folder, "--out", str(tmp_path / "o"), *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert {"both": "give only one input", "out-of-vocab": "outside the vocabulary",
            "missing": "not found"}[case] in err
    assert not (tmp_path / "o").exists()


# --- figures and report.md ------------------------------------------------------------------


def _report(skip_prompts=3, skip_positions=3, analyses=("contributions", "skip", "lens")):
    from .analysis_fixtures import make_tokenizer

    return depth.run_depth(make_tiny("llama", num_layers=4), make_tokenizer(), name="tiny", num_prompts=3,
                           max_tokens=20, batch_size=3, analyses=analyses, skip_prompts=skip_prompts,
                           skip_positions=skip_positions, progress=False)


def test_figures_show_the_range_mask_the_unmeasured_and_label_dimensions(tmp_path, figures):
    import numpy as np

    report = _report()
    # a skip matrix whose values exceed the clip, as on real models (3-643)
    matrix = np.array(report.skip.layer_effect["layer"])
    matrix[0, 2] = 643.0
    report.skip.layer_effect["layer"] = matrix.tolist()
    report.write_into(str(tmp_path))
    # skip matrix: the colour bar's top label says "≥", the lower triangle is masked (grey)
    fig = figures["skip_layer.png"]
    bar_axis = fig.axes[1]
    labels = [t.get_text() for t in bar_axis.get_yticklabels()]
    assert labels[-1] == "≥ 1" and labels[0] == "0"
    image = fig.axes[0].images[0]
    data = image.get_array()
    L = report.num_layers
    assert data.mask[np.tril_indices(L, -1)].all() and not data.mask[np.triu_indices(L)].any()
    rgba = image.to_rgba(data)
    assert tuple(np.round(rgba[1, 0], 3)) == tuple(np.round(matplotlib_color("lightgrey"), 3))
    # a matrix within the scale has no "≥"
    assert [t.get_text() for t in figures["skip_mlp.png"].axes[1].get_yticklabels()][-1] in ("1", "≥ 1")
    # contributions: a panel without layer 0, tick labels on the log panel
    axes = figures["contributions.png"].axes
    assert "without layer 0" in axes[1].get_title()
    assert all(line.get_xdata()[0] == 1 for line in axes[1].lines if len(line.get_xdata()) == L - 1)
    assert len([t for t in axes[0].get_yticklabels() if t.get_text()]) >= 2
    # outliers: shares over all tokens, dimension labels, magnitudes on a log axis
    share_ax, magnitude_ax = figures["outliers.png"].axes
    top_dims = {str(o["all_positions"][0]["dim"]) for o in report.contributions.outliers}
    assert top_dims <= {t.get_text() for t in share_ax.texts}
    assert any("all tokens" in line.get_label() for line in share_ax.lines)
    assert magnitude_ax.get_yscale() == "log"
    # skip_output: median with quartile bars (9 samples per layer >= the minimum)
    assert "median" in figures["skip_output.png"].axes[0].get_title()
    markdown = (tmp_path / "report.md").read_text()
    assert "without layer 0" in markdown and "## What ran" in markdown
    assert "not run: **map**: not requested" in markdown and "- **skip**" in markdown


def matplotlib_color(name):
    from matplotlib.colors import to_rgba

    return to_rgba(name)


def test_outlier_share_over_all_tokens_is_e_h_squared(tmp_path):
    """all_positions share = Σ_tokens h_d² / Σ_tokens ‖h‖² from stored activations."""
    from analysis.batching import batches

    from .analysis_fixtures import make_tokenizer

    model = make_tiny("llama")
    prompts = random_prompts((12, 9, 16))
    result = depth.contributions(model, prompts, batch_size=2, progress=False)
    squared = None
    for ids, mask in batches(prompts, 2):
        h = depth.collect_activations(model, ids, mask)["h"].double()  # (L+1, B, T, d)
        part = (h.square() * mask[None, :, :, None]).sum((1, 2))
        squared = part if squared is None else squared + part
    share = squared / squared.sum(-1, keepdim=True)
    for l, entry in enumerate(result.outliers):
        top = entry["all_positions"][0]
        assert top["dim"] == int(share[l].argmax())
        assert top["share"] == pytest.approx(float(share[l].max()), rel=1e-5)


def test_skip_output_is_refused_below_the_sample_size(tmp_path, figures):
    report = _report(skip_prompts=2, skip_positions=2)  # 2 x 2 samples per layer
    assert all(len(v) == 4 for v in report.skip.output_samples["layer"])
    assert max(max(v) for v in report.skip.output_samples["attn"]) == pytest.approx(max(report.skip.output_effect["attn"]))
    report.write_into(str(tmp_path))
    assert not (tmp_path / "skip_output.png").exists() and "skip_output.png" not in figures
    markdown = (tmp_path / "report.md").read_text()
    assert "*skip_output.png* not drawn: 4 samples" in markdown
    assert "](skip_output.png)" not in markdown and "](skip_layer.png)" in markdown
