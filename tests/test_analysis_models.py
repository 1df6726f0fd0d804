"""analysis.models: loading by name and the decoder adapter, on tiny random models."""
from __future__ import annotations

import copy
import os

import pytest
import torch
import transformers

from analysis.errors import UserError
from analysis.models import (
    SUPPORTED_FAMILIES,
    DecoderAdapter,
    clear_quantization,
    load_model,
    resolve_model_name,
)

from .analysis_fixtures import CORE, make_tiny, save_tiny

# family -> (layer list, attention, MLP, pre-attention norm, pre-MLP norm, final norm), by
# attribute path, written out independently of the adapter's own table
EXPECTED = {
    "llama": ("model.layers", "self_attn", "mlp", "input_layernorm", "post_attention_layernorm", "model.norm"),
    "gemma2": ("model.layers", "self_attn", "mlp", "input_layernorm", "pre_feedforward_layernorm", "model.norm"),
    "gemma3_text": ("model.layers", "self_attn", "mlp", "input_layernorm", "pre_feedforward_layernorm", "model.norm"),
    "gpt2": ("transformer.h", "attn", "mlp", "ln_1", "ln_2", "transformer.ln_f"),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _get(root, path):
    for part in path.split("."):
        root = getattr(root, part)
    return root


def _fake_cache(cache, repo_id, folder):
    """Place ``folder`` in a Hugging Face cache as the snapshot of ``repo_id`` (refs/main)."""
    revision = "0" * 39 + "1"
    repo = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as handle:
        handle.write(revision)
    os.makedirs(os.path.join(repo, "snapshots"))
    os.rename(folder, os.path.join(repo, "snapshots", revision))


# --- names ----------------------------------------------------------------------------------


def test_resolve_names(tmp_path):
    assert resolve_model_name("g2gnet-fashion-mnist").path == "zooscope/g2gnet-fashion-mnist"
    # trust is zoo.hub.remote_code_trust's: a zoo name whose code is not here to compare is not trusted
    assert not resolve_model_name("g2gnet-fashion-mnist").trusted
    hub = resolve_model_name("HuggingFaceTB/SmolLM2-135M")
    assert (hub.kind, hub.path, hub.trusted) == ("hub", "HuggingFaceTB/SmolLM2-135M", False)
    assert not resolve_model_name("zooscope/x").trusted
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    source = resolve_model_name(str(gguf))
    assert (source.kind, source.path, source.gguf_file) == ("gguf", str(tmp_path), "m.gguf")
    with pytest.raises(UserError, match="GGUF file not found"):
        resolve_model_name(str(tmp_path / "missing.gguf"))
    with pytest.raises(UserError, match="no such file"):
        resolve_model_name("./no/such/folder")
    with pytest.raises(UserError, match="no config.json"):
        resolve_model_name(str(tmp_path / ".."))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        resolve_model_name(str(tmp_path / "notes.txt"))


def test_load_folder_dtype_and_unpacking(tmp_path):
    folder = save_tiny(str(tmp_path / "tiny"), "llama")
    loaded = load_model(folder, dtype="bfloat16")
    model, tokenizer = loaded
    assert isinstance(model, transformers.LlamaForCausalLM)
    assert model.dtype == torch.bfloat16 and not model.training
    assert loaded.source.kind == "folder"
    assert tokenizer("the").input_ids[0] == tokenizer.bos_token_id
    with pytest.raises(UserError, match="unknown dtype"):
        load_model(folder, dtype="int3")


def test_unknown_names_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown model 'no-such-zoo-model'"):
        load_model("no-such-zoo-model")
    with pytest.raises(UserError, match="local Hugging Face cache"):
        load_model("nobody/no-such-model")
    with pytest.raises(UserError, match="GGUF file not found"):
        load_model(str(tmp_path / "x.gguf"))


def test_non_decoder_model_is_refused_but_loads_as_auto(tmp_path):
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    with pytest.raises(UserError, match="not a decoder language model"):
        load_model(str(tmp_path / "bert"))
    model, _ = load_model(str(tmp_path / "bert"), task="auto", tokenizer=False)
    assert isinstance(model, transformers.BertModel)


def test_zoo_id_from_local_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = str(tmp_path / "cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", cache)
    _fake_cache(cache, "zooscope/tiny-llama", save_tiny(str(tmp_path / "tiny"), "llama", seed=3))
    loaded = load_model("tiny-llama")
    assert loaded.source.kind == "zoo" and not loaded.source.trusted  # a llama: no code of its own to trust
    reference = make_tiny("llama", seed=3)
    ids = torch.randint(1, 256, (1, 7))
    torch.testing.assert_close(loaded.model(ids).logits, reference(ids).logits)
    # the same repo by its Hub id is found in the cache too
    assert load_model("zooscope/tiny-llama").source.kind == "hub"


def test_gguf_quantization_config_is_cleared_so_save_works(tmp_path):
    from transformers.quantizers.quantizer_gguf import GgufHfQuantizer
    from transformers.utils.quantization_config import GgufConfig

    model = make_tiny("llama")
    # what a GGUF load leaves behind: dequantized weights plus the quantizer bookkeeping
    model.config.quantization_config = GgufConfig()
    model.hf_quantizer = GgufHfQuantizer(model.config.quantization_config)
    with pytest.raises(Exception):
        model.save_pretrained(tmp_path / "refused")
    clear_quantization(model)
    model.save_pretrained(tmp_path / "saved")
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    ids = torch.randint(1, 256, (1, 6))
    torch.testing.assert_close(again(ids).logits, model(ids).logits)


# --- the adapter ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", CORE)
def test_adapter_parts(family):
    model = make_tiny(family)
    adapter = DecoderAdapter(model)
    assert adapter.num_layers == 3 and adapter.hidden_size == 32
    assert adapter.lm_head is model.get_output_embeddings()
    assert adapter.embed is model.get_input_embeddings()
    layers_path, attn, mlp, attn_norm, mlp_norm, final = EXPECTED.get(family, EXPECTED["llama"])
    layers = _get(model, layers_path)
    assert adapter.layers is layers
    for l in range(3):
        assert adapter.attn(l) is getattr(layers[l], attn)
        assert adapter.mlp(l) is getattr(layers[l], mlp)
        assert adapter.attn_norm(l) is getattr(layers[l], attn_norm)
        assert adapter.mlp_norm(l) is getattr(layers[l], mlp_norm)
    assert adapter.final_norm is _get(model, final)
    # the head reproduces the model's logits from the last residual state
    ids = torch.randint(1, 256, (2, 9))
    captured = {}
    handle = adapter.layers[-1].register_forward_hook(lambda m, a, o: captured.update(h=o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        logits = model(ids).logits
    handle.remove()
    torch.testing.assert_close(adapter.logits(captured["h"]), logits, atol=1e-5, rtol=1e-5)


def test_adapter_names_supported_families():
    config = transformers.OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                    num_attention_heads=2, word_embed_proj_dim=16)
    with pytest.raises(UserError) as error:
        DecoderAdapter(transformers.OPTForCausalLM(config))
    message = str(error.value)
    assert "'opt'" in message
    for family in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "gpt2"):
        assert family in message
    assert set(SUPPORTED_FAMILIES) >= {"llama", "gemma3_text", "gpt2"}


def test_adapter_refuses_headless_model():
    model = make_tiny("llama").model
    with pytest.raises(UserError):
        DecoderAdapter(model)


class _TupleLayer(torch.nn.Module):
    """A decoder layer that returns (hidden, None) like older transformers versions."""

    def __init__(self, layer):
        super().__init__()
        self.inner = layer
        self.self_attn, self.mlp = layer.self_attn, layer.mlp
        self.input_layernorm, self.post_attention_layernorm = layer.input_layernorm, layer.post_attention_layernorm

    def forward(self, hidden_states, *args, **kwargs):
        return (self.inner(hidden_states, *args, **kwargs), None)


def test_tuple_returning_layers_give_the_same_statistics():
    from analysis import depth
    from .analysis_fixtures import random_prompts

    model = make_tiny("llama")
    wrapped = copy.deepcopy(model)
    wrapped.model.layers = torch.nn.ModuleList(_TupleLayer(layer) for layer in wrapped.model.layers)

    prompts = random_prompts()
    adapter = DecoderAdapter(model)
    wrapped_adapter = DecoderAdapter(wrapped)
    # hooks see tuples from the wrapped layers
    seen = []
    handle = wrapped_adapter.layer(1).register_forward_hook(lambda m, a, o: seen.append(type(o)))
    stats_wrapped = _contributions_through_tuple_layers(wrapped_adapter, prompts)
    handle.remove()
    assert seen and seen[0] is tuple
    stats = depth.contributions(adapter, prompts, progress=False)
    assert stats_wrapped.layer_ratio == pytest.approx(stats.layer_ratio, abs=1e-6)
    assert stats_wrapped.attn_cos == pytest.approx(stats.attn_cos, abs=1e-6)


def _contributions_through_tuple_layers(adapter, prompts):
    """Run contributions while the model's own loop unwraps the tuples (as old versions did)."""
    from analysis import depth

    model_layers = adapter.model.model.layers
    handles = []
    for index in range(1, len(model_layers)):
        # layer l+1 receives a tuple from layer l; take its first element
        handles.append(model_layers[index].register_forward_pre_hook(
            lambda m, args, kwargs: ((args[0][0] if isinstance(args[0], tuple) else args[0],) + args[1:], kwargs),
            with_kwargs=True))
    final_norm = adapter.model.model.norm
    handles.append(final_norm.register_forward_pre_hook(
        lambda m, args: (args[0][0] if isinstance(args[0], tuple) else args[0],)))
    try:
        return depth.contributions(adapter, prompts, progress=False)
    finally:
        for handle in handles:
            handle.remove()


def test_gguf_without_the_gguf_package_is_one_clear_line(hf_env):
    """transformers raises a bare ImportError deep in its GGUF loader; the user gets the install line."""
    from analysis.models import packaged_smollm2_gguf
    from tests.conftest import run_python

    code = ("import sys; sys.modules['gguf'] = None\n"
            "from analysis.models import load_model\n"
            "from zoo.errors import UserError\n"
            f"try:\n    load_model({packaged_smollm2_gguf()!r})\n"
            "except UserError as error:\n    print('USER', error)\n")
    result = run_python(code, env=hf_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "USER" in result.stdout and "pip install 'zooscope[gguf]'" in result.stdout
