"""analysis.hooks: the residual-stream vocabulary read and edited through the DecoderAdapter,
checked against transformers' own hidden states, named modules and inputs_embeds."""
from __future__ import annotations

import pytest
import torch

from analysis import hooks as H
from analysis.models import DecoderAdapter

from .analysis_fixtures import make_tiny

# what each family adds to the residual stream, by module name inside a decoder layer —
# written out here independently of the adapter
ADDED = {"gemma2": ("post_attention_layernorm", "post_feedforward_layernorm"), "gpt2": ("attn", "mlp")}


def _layers(model):
    return model.transformer.h if hasattr(model, "transformer") else model.model.layers


def _hook_count(model):
    # transformers may keep hooks of its own (output recording): count, then compare
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_points_are_the_residual_stream(family):
    model = make_tiny(family)
    adapter = DecoderAdapter(model)
    L = adapter.num_layers
    ids = torch.randint(1, 256, (2, 9))
    with torch.no_grad():  # transformers installs its own output-recording hooks on first use
        model(input_ids=ids, output_hidden_states=True, use_cache=False)
    before = _hook_count(model)
    seen = {p: [None] * L for p in H.POINTS}
    with H.Hooks(adapter) as hooks:
        for point in H.POINTS:
            for l in range(L):
                hooks.read(point, l, lambda t, point=point, l=l: seen[point].__setitem__(l, t.detach().clone()))
        assert len(hooks) == len(H.POINTS) * L == _hook_count(model) - before
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    assert _hook_count(model) == before
    # independent: transformers' hidden states (the last one is after the final norm) and hooks
    # on the modules named above
    attn_name, mlp_name = ADDED.get(family, ("self_attn", "mlp"))
    added, handles = {"a": [], "m": []}, []
    for layer in _layers(model):
        handles.append(getattr(layer, attn_name).register_forward_hook(
            lambda mod, i, o: added["a"].append((o[0] if isinstance(o, tuple) else o).detach())))
        handles.append(getattr(layer, mlp_name).register_forward_hook(
            lambda mod, i, o: added["m"].append((o[0] if isinstance(o, tuple) else o).detach())))
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    for handle in handles:
        handle.remove()
    for l in range(L):
        torch.testing.assert_close(seen["resid_pre"][l], out.hidden_states[l], rtol=1e-6, atol=1e-6)
        if l + 1 < L:
            torch.testing.assert_close(seen["resid_post"][l], out.hidden_states[l + 1], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(seen["attn_out"][l], added["a"][l], rtol=0, atol=0)
        torch.testing.assert_close(seen["mlp_out"][l], added["m"][l], rtol=0, atol=0)
        # h_l + a_l = resid_mid, resid_mid + m_l = h_{l+1}
        torch.testing.assert_close(seen["resid_mid"][l], seen["resid_pre"][l] + seen["attn_out"][l], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(seen["resid_post"][l], seen["resid_mid"][l] + seen["mlp_out"][l], rtol=1e-5, atol=1e-5)


def test_editing_resid_pre_equals_changed_inputs_embeds():
    model = make_tiny("llama")
    adapter = DecoderAdapter(model)
    ids = torch.randint(1, 256, (1, 7))
    delta = 0.5 * torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(3))
    before = _hook_count(model)
    with torch.no_grad():
        expected = model(inputs_embeds=model.model.embed_tokens(ids) + delta, use_cache=False).logits
        plain = model(input_ids=ids, use_cache=False).logits
        with H.Hooks(adapter) as hooks:
            hooks.edit("resid_pre", 0, lambda h: h + delta)
            edited = model(input_ids=ids, use_cache=False).logits
        with H.Hooks(adapter) as hooks:
            hooks.edit("resid_pre", 0, lambda h: None)  # None leaves the stream alone
            untouched = model(input_ids=ids, use_cache=False).logits
    torch.testing.assert_close(edited, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(edited, plain, atol=1e-3)
    assert torch.equal(untouched, plain)
    assert _hook_count(model) == before


def test_editing_attn_out_to_zero_leaves_resid_mid_equal_to_resid_pre():
    model = make_tiny("gemma2")
    adapter = DecoderAdapter(model)
    ids = torch.randint(1, 256, (2, 6))
    got = {}
    with H.Hooks(adapter) as hooks, torch.no_grad():
        hooks.edit("attn_out", 1, torch.zeros_like)
        hooks.read("resid_pre", 1, lambda h: got.__setitem__("pre", h))
        hooks.read("resid_mid", 1, lambda h: got.__setitem__("mid", h))
        model(input_ids=ids, use_cache=False)
    assert torch.equal(got["pre"], got["mid"])
    with pytest.raises(ValueError, match="read-only"):
        H.Hooks(adapter).edit("resid_mid", 0, lambda h: h)
    with pytest.raises(ValueError, match="unknown residual-stream point"):
        H.Hooks(adapter).read("resid_final", 0, print)


def test_hooks_are_removed_when_the_block_fails():
    model = make_tiny("qwen2")
    adapter = DecoderAdapter(model)
    before = _hook_count(model)
    with pytest.raises(RuntimeError, match="inside"):
        with H.Hooks(adapter) as hooks:
            for l in range(adapter.num_layers):
                hooks.read("resid_post", l, lambda h: None)
            hooks.forward(adapter.attn(0), lambda *a: None)
            hooks.pre(adapter.mlp(0), lambda *a: None)
            assert _hook_count(model) == before + adapter.num_layers + 2
            raise RuntimeError("inside")
    assert _hook_count(model) == before
