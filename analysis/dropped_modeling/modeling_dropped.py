"""Decoder LMs with dropped attention / MLP sublayers (after He et al. 2024, "What Matters in
Transformers? Not All Attention is Needed").

This file ships inside every dropped-model repo as remote code, so it imports only torch and
transformers. It wraps transformers' own family classes (Llama, Mistral, Qwen2, Qwen3) rather
than copying them: ``config.json`` keeps the family's ``model_type`` and adds two fields,

* ``drop_attn_list`` — indices of the decoder layers whose attention sublayer is gone,
* ``drop_mlp_list`` — indices of the decoder layers whose MLP sublayer is gone,

and ``auto_map`` points ``AutoModelForCausalLM`` at ``Dropped<Family>ForCausalLM`` below, which
builds the family model and then calls :func:`drop_sublayers`.

A dropped sublayer really costs nothing: its pre-norm becomes ``nn.Identity`` and the sublayer
itself returns a 0-dim zero (so the layer's ``residual + sublayer(...)`` passes the residual
through); it holds no weights, and a dropped attention layer marks its slot of the KV cache as
a transformers ``DummyLayer`` that never stores keys or values. Whole blocks are dropped by
removing them (``num_hidden_layers`` shrinks), which needs no code at all.
"""
from __future__ import annotations

import torch
from torch import nn
import transformers

try:  # transformers >= 5.23: a cache slot that never stores anything
    from transformers.cache_utils import DummyLayer
except ImportError:  # older transformers: the model runs, but not with a KV cache (see below)
    DummyLayer = None

__all__ = [
    "DroppedAttention",
    "DroppedMLP",
    "drop_sublayers",
    "dropped_lists",
    "FAMILY_CLASSES",
    "DroppedLlamaForCausalLM",
    "DroppedMistralForCausalLM",
    "DroppedQwen2ForCausalLM",
    "DroppedQwen3ForCausalLM",
]

# model_type -> the transformers causal-LM class a dropped model wraps
FAMILY_CLASSES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}


def _mark_dropped_slot(cache, layer_idx: int) -> None:
    """Make slot ``layer_idx`` of a transformers Cache a DummyLayer (never stores anything).

    Caches built from the config hold one layer per decoder layer; lazily grown caches append
    layers as they are updated, so the slot is appended here in order.
    """
    if cache is None or not hasattr(cache, "layers"):
        return
    if DummyLayer is None:
        # Without it the dropped layer's slot stays an empty ordinary layer, and a cache that
        # reads the sequence length from slot 0 would restart positions at 0: wrong tokens,
        # silently. Refuse instead.
        raise RuntimeError(
            f"this model drops attention layers, and using it with a KV cache needs transformers >= 5.23 "
            f"(DummyLayer cache slots); found {transformers.__version__}. Upgrade transformers, or pass "
            "use_cache=False.")
    layers = cache.layers
    if len(layers) > layer_idx:
        slot = layers[layer_idx]
        if not isinstance(slot, DummyLayer) and getattr(slot, "keys", None) is None:
            layers[layer_idx] = DummyLayer()
        return
    replicate = getattr(cache, "layer_class_to_replicate", None)
    while len(layers) < layer_idx:
        layers.append(replicate() if replicate is not None else DummyLayer())
    layers.append(DummyLayer())


class DroppedAttention(nn.Module):
    """Stands in for a dropped attention sublayer: computes nothing, caches nothing."""

    def __init__(self, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx

    def forward(self, hidden_states=None, *args, cache=None, past_key_values=None, **kwargs):
        _mark_dropped_slot(cache if cache is not None else past_key_values, self.layer_idx)
        return hidden_states.new_zeros(()), None

    def extra_repr(self) -> str:
        return f"layer_idx={self.layer_idx}"


class DroppedMLP(nn.Module):
    """Stands in for a dropped MLP sublayer: computes nothing."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states.new_zeros(())


def _decoder_layers(model: nn.Module) -> nn.ModuleList:
    base = getattr(model, "model", model)
    layers = getattr(base, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(model).__name__} has no decoder layers at .model.layers")
    return layers


def _check_list(name: str, values, num_layers: int) -> list[int]:
    if values is None:
        return []
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a list of layer indices, got {values!r}")
    bad = [v for v in values if not 0 <= v < num_layers]
    if bad:
        raise ValueError(f"{name} holds {bad}, outside 0..{num_layers - 1}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} repeats a layer: {values!r}")
    return sorted(values)


def dropped_lists(model: nn.Module) -> tuple[list[int], list[int]]:
    """The layers whose attention / MLP sublayer is currently dropped in ``model``."""
    attn, mlp = [], []
    for index, layer in enumerate(_decoder_layers(model)):
        if isinstance(getattr(layer, "self_attn", None), DroppedAttention):
            attn.append(index)
        if isinstance(getattr(layer, "mlp", None), DroppedMLP):
            mlp.append(index)
    return attn, mlp


def drop_sublayers(model: nn.Module, drop_attn_list=(), drop_mlp_list=()) -> nn.Module:
    """Drop attention / MLP sublayers of a Llama-style decoder LM in place, and record the full
    lists (old and new drops) as ``config.drop_attn_list`` / ``config.drop_mlp_list``."""
    layers = _decoder_layers(model)
    attn = _check_list("drop_attn_list", list(drop_attn_list or []), len(layers))
    mlp = _check_list("drop_mlp_list", list(drop_mlp_list or []), len(layers))
    for index in attn:
        layer = layers[index]
        if not isinstance(layer.self_attn, DroppedAttention):
            layer.self_attn = DroppedAttention(index)
            layer.input_layernorm = nn.Identity()
    for index in mlp:
        layer = layers[index]
        if not isinstance(layer.mlp, DroppedMLP):
            layer.mlp = DroppedMLP()
            layer.post_attention_layernorm = nn.Identity()
    config = getattr(model, "config", None)
    if config is not None:
        config.drop_attn_list, config.drop_mlp_list = dropped_lists(model)
    return model


def _dropped_class(base_name: str):
    base = getattr(transformers, base_name)

    class Dropped(base):
        def __init__(self, config, *args, **kwargs):
            super().__init__(config, *args, **kwargs)
            drop_sublayers(self, getattr(config, "drop_attn_list", None) or [],
                           getattr(config, "drop_mlp_list", None) or [])

    Dropped.__name__ = Dropped.__qualname__ = "Dropped" + base_name
    Dropped.__doc__ = (f"{base_name} with the attention sublayers in ``config.drop_attn_list`` and "
                       "the MLP sublayers in ``config.drop_mlp_list`` dropped.")
    return Dropped


DroppedLlamaForCausalLM = _dropped_class("LlamaForCausalLM")
DroppedMistralForCausalLM = _dropped_class("MistralForCausalLM")
DroppedQwen2ForCausalLM = _dropped_class("Qwen2ForCausalLM")
DroppedQwen3ForCausalLM = _dropped_class("Qwen3ForCausalLM")
