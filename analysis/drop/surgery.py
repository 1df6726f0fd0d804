"""Dropping, in place: attention / MLP sublayers become stubs that compute nothing (a dropped
attention sublayer allocates no KV cache), dropped blocks are removed and ``num_hidden_layers``
shrinks (see ``analysis/dropped_modeling/modeling_dropped.py``, the code a dropped-model repo ships).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from torch import nn

from ..batching import progress as _progress
from ..dropped_modeling.modeling_dropped import FAMILY_CLASSES, drop_sublayers, dropped_lists
from ..errors import UserError
from ..models import DecoderAdapter, as_adapter
from .scores import ScoreResult, check_kind, check_mode, compute_scores, select_layers

__all__ = ["DROPPABLE_FAMILIES", "DropResult", "check_droppable", "check_count", "remove_blocks",
           "forget_drop_lists", "drop_modules", "drop"]

DROPPABLE_FAMILIES = tuple(FAMILY_CLASSES)


def check_droppable(adapter: DecoderAdapter) -> None:
    if adapter.family_name not in FAMILY_CLASSES:
        raise UserError(
            f"dropping supports the {', '.join(DROPPABLE_FAMILIES)} families, not "
            f"{adapter.family_name!r} (scores work for every family the decoder adapter knows)"
        )


def remove_blocks(model, layers: Sequence[int]) -> nn.Module:
    """Remove whole decoder blocks in place; renumber the rest (cache slots, drop lists) and
    shrink ``config.num_hidden_layers`` (and ``layer_types`` where the config has it)."""
    adapter = as_adapter(model)
    L = adapter.num_layers
    remove = set(int(l) for l in layers)
    if not remove:
        return adapter.model
    keep = [l for l in range(L) if l not in remove]
    new_layers = nn.ModuleList([adapter.layers[l] for l in keep])
    for new_index, layer in enumerate(new_layers):
        attn = getattr(layer, adapter.family.attn, None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_index
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_index
    setattr(adapter.base, adapter.family.layers, new_layers)
    config = adapter.model.config
    config.num_hidden_layers = len(keep)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, (list, tuple)) and len(layer_types) == L:
        config.layer_types = [layer_types[l] for l in keep]
    max_window = getattr(config, "max_window_layers", None)
    if isinstance(max_window, int) and max_window < L:
        config.max_window_layers = sum(1 for l in keep if l < max_window)
    if hasattr(config, "drop_attn_list") or hasattr(config, "drop_mlp_list"):
        config.drop_attn_list, config.drop_mlp_list = dropped_lists(adapter.model)
        if not config.drop_attn_list and not config.drop_mlp_list:
            forget_drop_lists(config)
    return adapter.model


def forget_drop_lists(config) -> None:
    for name in ("drop_attn_list", "drop_mlp_list"):
        if hasattr(config, name):
            try:
                delattr(config, name)
            except AttributeError:
                setattr(config, name, [])


def drop_modules(model, kind: str, layers: Sequence[int]) -> nn.Module:
    """Drop the ``kind`` modules of ``layers`` (indices of the model as it is now) in place."""
    check_kind(kind)
    adapter = as_adapter(model)
    check_droppable(adapter)
    L = adapter.num_layers
    layers = [int(l) for l in layers]
    bad = [l for l in layers if not 0 <= l < L]
    if bad:
        raise UserError(f"layer(s) {bad} out of range: the model has {L} layers (0..{L - 1})")
    if len(set(layers)) != len(layers):
        raise UserError(f"layer list repeats a layer: {layers}")
    if not layers:
        return adapter.model
    if kind == "block":
        if len(layers) >= L:
            raise UserError(f"cannot drop all {L} blocks")
        return remove_blocks(adapter.model, layers)
    attn, mlp = dropped_lists(adapter.model)
    already = [l for l in layers if l in (attn if kind == "attn" else mlp)]
    if already:
        raise UserError(f"the {kind} sublayer of layer(s) {already} is already dropped")
    if kind == "attn":
        if len(set(attn) | set(layers)) >= L:
            raise UserError(f"cannot drop all {L} attention layers (a cache needs one)")
        attn = attn + layers
    else:
        mlp = mlp + layers
    return drop_sublayers(adapter.model, attn, mlp)


@dataclass
class DropResult:
    """What :func:`drop` did: ``dropped`` holds original layer indices in the order dropped;
    ``rounds`` the scores each round saw (one round for one-shot; ``kept`` maps a round's
    layer index to the original one, which differs only after blocks were removed)."""

    kind: str
    mode: str
    dropped: list[int]
    rounds: list[ScoreResult] = field(default_factory=list)
    kept: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mode": self.mode, "dropped": self.dropped,
                "rounds": [r.to_dict() for r in self.rounds], "kept": self.kept}


def drop(
    model,
    kind: str,
    n: int | None = None,
    *,
    layers: Sequence[int] | None = None,
    mode: str = "one-shot",
    prompts=None,
    batch_size: int = 4,
    pad_id: int = 0,
    scores: ScoreResult | None = None,
    progress: bool = False,
) -> DropResult:
    """Drop ``n`` modules of ``kind`` chosen by score (``one-shot`` or ``iterative``), or the
    explicit ``layers`` (original indices). The model changes in place."""
    check_kind(kind)
    mode = check_mode(mode)
    adapter = as_adapter(model)
    check_droppable(adapter)
    L = adapter.num_layers
    if layers is not None:
        layers = [int(l) for l in layers]
        drop_modules(adapter.model, kind, layers)
        rounds = [scores] if scores is not None else []
        return DropResult(kind, "layers", layers, rounds, [list(range(L))] if rounds else [])
    if n is None:
        raise UserError("give n (how many to drop) or layers")
    check_count(kind, n, L, adapter)
    if n == 0:
        return DropResult(kind, mode, [], [scores] if scores is not None else [], [])
    if prompts is None and scores is None:
        raise UserError("scores need calibration prompts")

    def score():
        return compute_scores(adapter.model, prompts, batch_size=batch_size, pad_id=pad_id, progress=False)

    if mode == "one-shot":
        scores = scores or score()
        chosen = select_layers(scores.of(kind), n)
        drop_modules(adapter.model, kind, chosen)
        return DropResult(kind, mode, chosen, [scores], [list(range(L))])
    alive = list(range(L))
    result = DropResult(kind, mode, [])
    for round_index in _progress(range(n), total=n, desc=f"iterative {kind} drop", progress=progress):
        current = scores if (round_index == 0 and scores is not None) else score()
        (chosen,) = select_layers(current.of(kind), 1)
        result.rounds.append(current)
        result.kept.append(list(alive))
        result.dropped.append(alive[chosen])
        drop_modules(adapter.model, kind, [chosen])
        if kind == "block":
            alive.pop(chosen)
    return result


def check_count(kind: str, n: int, L: int, adapter: DecoderAdapter | None = None) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise UserError(f"n must be a whole number >= 0, got {n!r}")
    limit = L if kind == "mlp" else L - 1
    if adapter is not None and kind != "block":
        attn, mlp = dropped_lists(adapter.model)
        limit -= len(attn if kind == "attn" else mlp)
    if n > limit:
        what = {"attn": "attention layers", "mlp": "MLP layers", "block": "blocks"}[kind]
        keep = "" if kind == "mlp" else " (at least one must stay)"
        raise UserError(f"cannot drop {n} {what}: the model has {L} layers, so at most {limit}{keep}")
