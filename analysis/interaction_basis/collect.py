"""The statistics behind the interaction basis, streamed over batches with forward hooks.

A *node layer* is a point of the forward pass whose tensor is a layer's activations: a module's
output (``post``), a module's input (``pre``, e.g. the input of an MLP's down-projection, the
hidden activations of a SwiGLU MLP) or the model's input. Tensors are (examples, units) or
(examples, tokens, units); every leading position is one sample (rows).

Per pair of consecutive node layers (src → dst), one forward pass per batch with src replaced by
a leaf tensor that requires grad, stopped as soon as dst is computed; backward passes through
just the piece src → dst give, for a set of output directions c_k, the rows ∂(g·c_k)/∂h of the
Jacobian. That needs the rows to be independent (an MLP, a token-wise sublayer): true for the
zoo's vector nets and for a decoder's MLP sublayer, not across attention.

- ``gram_matrices``: E[f fᵀ] of every node layer (float64);
- ``gradient_gram``: M = E[Σₖ (∂(g·cₖ)/∂h)ᵀ(∂(g·cₖ)/∂h)] for the dst directions C (d_dst × k);
- ``edge_attributions``: for bases of src and dst, the (k_dst × k_src) matrix
  E[(∂f̂_dst,k/∂f̂_src,i · f̂_src,i)²] (gradient × activation, squared, averaged over rows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..hooks import Hooks, hidden_from_call
from ..models import first_tensor, replace_first_tensor

__all__ = ["Node", "INPUT", "module_nodes", "decoder_mlp_nodes", "gram_matrices", "gradient_gram",
           "edge_attributions"]

INPUT = "input"
_ELEMENTS_PER_CHUNK = 4_000_000  # directions × rows × units of one batched backward


@dataclass(frozen=True, eq=False)
class Node:
    name: str
    module: nn.Module | None  # None: the model's input
    where: str  # "post", "pre" or "input"


def module_nodes(model: nn.Module, layers: Sequence[str], model_name: str = "model") -> list[Node]:
    """Node layers from module paths (their outputs); ``input`` names the model's input (first only)."""
    from ..convergent.inputs import check_layers  # the one layer-name check, listing the layers

    if len(layers) < 2:
        raise UserError("the interaction basis needs at least two node layers, in forward order "
                        "(e.g. input layers.0.act classifier)")
    if len(set(layers)) != len(layers):
        raise UserError(f"a layer is named twice: {' '.join(layers)}")
    if INPUT in layers[1:]:
        raise UserError("'input' (the model's input) can only be the first node layer")
    modules = check_layers(model, [layer for layer in layers if layer != INPUT], model_name)
    return [Node(layer, None, "input") if layer == INPUT else Node(layer, modules[layer], "post") for layer in layers]


def decoder_mlp_nodes(adapter, layer: int) -> list[Node]:
    """The MLP sublayer of decoder layer ``layer``: its (normalised) input, its hidden activations
    (the down-projection's input: act(gate)·up for SwiGLU, act(fc) for GPT-2) and what it adds to
    the residual stream."""
    if not 0 <= layer < adapter.num_layers:
        raise UserError(f"--mlp-layer {layer} is out of range: the model has layers 0..{adapter.num_layers - 1}")
    return [Node(f"layers.{layer}.mlp.input", adapter.mlp(layer), "pre"),
            Node(f"layers.{layer}.mlp.hidden", adapter.mlp_down(layer), "pre"),
            Node(f"layers.{layer}.mlp.output", adapter.mlp_contribution(layer), "post")]


class _Stop(Exception):
    """Raised in the dst hook: nothing after dst is needed."""


def _attach(hooks: Hooks, node: Node, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> None:
    if node.where == "post":
        def post(module, args, output):
            new = fn(first_tensor(output))
            return None if new is None else replace_first_tensor(output, new)
        hooks.forward(node.module, post)
    elif node.where == "pre":
        def pre(module, args, kwargs):
            new = fn(hidden_from_call(args, kwargs) if args or "hidden_states" in kwargs else next(iter(kwargs.values())))
            if new is None:
                return None
            if args:
                return (new,) + tuple(args[1:]), kwargs
            key = "hidden_states" if "hidden_states" in kwargs else next(iter(kwargs))
            return args, {**kwargs, key: new}
        hooks.pre(node.module, pre, with_kwargs=True)
    else:
        raise ValueError(f"node {node.name}: where must be post or pre here, not {node.where!r}")


def _rows(tensor: torch.Tensor, node: Node) -> torch.Tensor:
    """(rows, units): the model's input is one row per example (an image's pixels, flattened)."""
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise UserError(f"layer {node.name} does not give a floating-point tensor")
    if node.where == "input":
        return tensor.reshape(tensor.shape[0], -1)
    if tensor.ndim not in (2, 3):
        raise UserError(f"layer {node.name} gives {tuple(tensor.shape)} tensors; interaction-basis takes layers "
                        "of (examples, units) or (examples, tokens, units)")
    return tensor.reshape(-1, tensor.shape[-1])


def _model_dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _input_of(model, batch: dict, main: str) -> torch.Tensor:
    x = batch[main]
    if not x.is_floating_point():
        raise UserError(f"the model's input {main!r} is not a vector of numbers (token ids?): 'input' cannot be a node layer")
    return x.to(_model_dtype(model))


def _progress(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


def gram_matrices(model: nn.Module, nodes: Sequence[Node], batches: Sequence[dict], main: str, *,
                  progress: bool = False) -> tuple[dict[str, np.ndarray], int]:
    """({node: E[f fᵀ] float64}, rows) over every batch, one forward pass each, no gradients."""
    sums: dict[str, torch.Tensor] = {}
    rows = {node.name: 0 for node in nodes}

    def add(node: Node, tensor: torch.Tensor) -> None:
        r = _rows(tensor, node).detach().double()
        sums[node.name] = sums.get(node.name, 0) + r.T @ r
        rows[node.name] += r.shape[0]

    with Hooks() as hooks, torch.no_grad():
        for node in nodes:
            if node.where != "input":
                _attach(hooks, node, lambda t, node=node: add(node, t))
        for batch in _progress(batches, progress, "activation Gram"):
            for node in nodes:
                if node.where == "input":
                    add(node, _input_of(model, batch, main))
            model(**batch)
    missing = [node.name for node in nodes if node.name not in sums]
    if missing:
        raise UserError(f"the forward pass never reached {', '.join(missing)}" if batches else "no inputs: the data gave no batches")
    counts = set(rows.values())
    if len(counts) != 1:
        raise UserError(f"the node layers see different numbers of rows ({rows}); they must be layers of the same examples")
    n = counts.pop()
    return {name: (s / n).numpy() for name, s in sums.items()}, n


def _run_to(model: nn.Module, batch: dict, src: Node, dst: Node, on_src, on_dst) -> None:
    """One forward pass with ``on_src`` on src (not the model's input: the batch carries that)
    and ``on_dst`` on dst, which ends the pass by raising _Stop."""
    with Hooks() as hooks:
        if src.where != "input":
            _attach(hooks, src, on_src)
        _attach(hooks, dst, on_dst)
        try:
            model(**batch)
        except _Stop:
            pass


def _pair(model: nn.Module, batch: dict, main: str, src: Node, dst: Node,
          scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(src, times ``scale``, as a leaf that requires grad; dst computed from it) for one batch."""
    captured: dict[str, torch.Tensor] = {}
    if src.where == "input":
        leaf = (_input_of(model, batch, main).detach() * scale).requires_grad_(True)
        batch = {**batch, main: leaf}
        captured["h"] = leaf

    def on_src(t):
        leaf = (t.detach() * scale).requires_grad_(True)
        captured["h"] = leaf
        return leaf

    def on_dst(t):
        if "h" not in captured:
            raise UserError(f"layer {dst.name} is computed before {src.name}: give the layers in forward order")
        captured["g"] = t
        raise _Stop

    with torch.enable_grad():
        _run_to(model, batch, src, dst, on_src, on_dst)
    if "g" not in captured:
        raise UserError(f"the forward pass never reached {dst.name if 'h' in captured else src.name}")
    h, g = captured["h"], captured["g"]
    if _rows(h, src).shape[0] != _rows(g, dst).shape[0] or (src.where != "input" and h.shape[:-1] != g.shape[:-1]):
        raise UserError(f"layers {src.name} {tuple(h.shape)} and {dst.name} {tuple(g.shape)} do not have the same "
                        "examples (tokens): the interaction basis needs row-wise maps between consecutive layers")
    if not g.requires_grad:
        raise UserError(f"layer {dst.name} does not depend on {src.name}")
    return h, g


def _direction_grads(h: torch.Tensor, g: torch.Tensor, directions: torch.Tensor, src: Node, dst: Node):
    """Yield (slice of directions, (n, rows, d_src) float64 gradients ∂(g·c_k)/∂h) in chunks."""
    rows, d_src = _rows(h, src).shape
    k = directions.shape[1]
    chunk = max(1, _ELEMENTS_PER_CHUNK // max(1, rows * d_src))
    directions = directions.to(g.dtype)
    for start in range(0, k, chunk):
        block = directions[:, start:start + chunk]  # (d_dst, n)
        outputs = block.T.reshape(block.shape[1], *([1] * (g.ndim - 1)), g.shape[-1]).expand(block.shape[1], *g.shape)
        try:
            grads = torch.autograd.grad(g, h, outputs, is_grads_batched=True, retain_graph=True)[0]
        except RuntimeError as error:
            if "not have been used in the graph" in str(error) or "does not require grad" in str(error):
                raise UserError(f"layer {dst.name} does not depend on {src.name}") from None
            grads = torch.stack([torch.autograd.grad(g, h, o, retain_graph=True)[0] for o in outputs])
        yield slice(start, start + block.shape[1]), grads.reshape(block.shape[1], rows, d_src).double()


def gradient_gram(model: nn.Module, src: Node, dst: Node, batches: Sequence[dict], main: str,
                  dst_directions: np.ndarray, *, progress: bool = False) -> np.ndarray:
    """M = E_rows[Σₖ Jₖᵀ Jₖ], Jₖ = ∂(dst · cₖ)/∂src for the columns cₖ of ``dst_directions``."""
    C = torch.as_tensor(dst_directions)
    total, n = None, 0
    for batch in _progress(batches, progress, f"gradients {dst.name} → {src.name}"):
        h, g = _pair(model, batch, main, src, dst)
        d = _rows(h, src).shape[1]
        m = torch.zeros(d, d, dtype=torch.float64)
        for _, grads in _direction_grads(h, g, C, src, dst):
            flat = grads.reshape(-1, grads.shape[-1])
            m += flat.T @ flat
        total = m if total is None else total + m
        n += _rows(h, src).shape[0]
    return (total / n).numpy()


def edge_attributions(model: nn.Module, src: Node, dst: Node, batches: Sequence[dict], main: str,
                      bases: dict[str, tuple[Any, Any]], *, progress: bool = False,
                      integration_steps: int = 0) -> dict[str, np.ndarray]:
    """{kind: (k_dst, k_src) E[(∂f̂_dst,k/∂f̂_src,i · f̂_src,i)²]} for ``bases`` {kind: (src basis, dst basis)}
    (LayerBasis objects: coordinates f̂ = Cᵀ f, Jacobians through the reconstruction C_pinvᵀ).

    ``integration_steps`` N > 0: integrated gradients instead, the gradient averaged over src
    scaled by αⱼ = (j + ½)/N (midpoint rule from 0 to the data), as the reference's squared edges:
    E[(f̂_src,i ∫₀¹ ∂f̂_dst,k/∂f̂_src,i(α f) dα)²]. For a linear map the two are the same."""
    alphas = [1.0] if integration_steps <= 0 else [(j + 0.5) / integration_steps for j in range(integration_steps)]
    sums: dict[str, torch.Tensor] = {}
    n = 0
    # the neuron basis (C = I) skips its two products with the identity (d_src² per row and direction)
    mats = {kind: (None, None, torch.as_tensor(d.C)) if s.kind == "neuron" else
            (torch.as_tensor(s.C), torch.as_tensor(s.C_pinv.T.copy()), torch.as_tensor(d.C))
            for kind, (s, d) in bases.items()}
    for batch in _progress(batches, progress, f"edges {src.name} → {dst.name}"):
        pairs = [_pair(model, batch, main, src, dst, scale=alpha) for alpha in alphas]
        coords_rows = _rows(pairs[-1][0].detach(), src).double() / alphas[-1]
        for kind, (C_src, P_src, C_dst) in mats.items():
            a = coords_rows if C_src is None else coords_rows @ C_src  # (rows, k_src)
            e = sums.setdefault(kind, torch.zeros(C_dst.shape[1], a.shape[1], dtype=torch.float64))
            # the same direction chunks at every α (same shapes): average the gradients over α
            for chunks in zip(*(_direction_grads(h, g, C_dst, src, dst) for h, g in pairs)):
                where, grads = chunks[0][0], sum(c[1] for c in chunks) / len(chunks)
                e[where] += ((grads if P_src is None else grads @ P_src) * a).pow(2).sum(1)
        n += coords_rows.shape[0]
    return {kind: (s / n).numpy() for kind, s in sums.items()}


def projection_effect(model: nn.Module, src: Node, dst: Node, batches: Sequence[dict], main: str,
                      projection: np.ndarray) -> float:
    """Σ‖g(P f) − g(f)‖² / Σ‖g(f) − mean‖²: how much dst changes when src is replaced by its
    projection ``P`` (d × d, applied as f ↦ P f) onto a basis's kept subspace."""
    P = torch.as_tensor(projection)
    changed, spread = 0.0, 0.0
    for batch in batches:
        outputs = []
        for edit in (False, True):
            captured = {}

            def on_src(t):
                return (t.double() @ P.T).to(t.dtype) if edit else None  # a layer's units: the last axis

            def on_dst(t):
                captured["g"] = t.detach().double()
                raise _Stop

            run_batch = batch
            if src.where == "input" and edit:
                x = _input_of(model, batch, main)
                run_batch = {**batch, main: (_rows(x, src).double() @ P.T).reshape(x.shape).to(x.dtype)}
            with torch.no_grad():
                _run_to(model, run_batch, src, dst, on_src, on_dst)
            outputs.append(captured["g"].reshape(-1, captured["g"].shape[-1]))
        changed += float((outputs[1] - outputs[0]).pow(2).sum())
        spread += float((outputs[0] - outputs[0].mean(0)).pow(2).sum())
    return changed / spread if spread > 0 else float("nan")
