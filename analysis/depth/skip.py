"""Skip a layer (output := input), or an attention / MLP sublayer (output := 0), at some positions.

The relative change of every layer's contribution ‖Δ(h_{j+1}−h_j)‖/‖h_{j+1}−h_j‖ and of the
next-token distribution ‖p−p′‖₂, maxed over positions and prompts → L×L matrices. Variants share
the unchanged prefix of layers and run batched (:func:`skip_effects_reference` is the plain
one-forward-per-variant version).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from ..batching import forward
from ..batching import progress as _progress
from ..errors import UserError
from ..hooks import ATTN_OUT, MLP_OUT, RESID_POST, RESID_PRE, Hooks, hidden_from_call
from ..models import DecoderAdapter, as_adapter, first_tensor
from .resources import _forward_flops, _head_flops, _layer_flops, estimate_flops

__all__ = ["KINDS", "MIN_OUTPUT_SAMPLES", "skip_output_refusal", "SkipResult", "skip_masks", "skipping", "skip_forward", "choose_positions",
           "skip_effects", "skip_effects_reference"]

KINDS = ("layer", "attn", "mlp")
_POINT = {"attn": ATTN_OUT, "mlp": MLP_OUT}

def skip_masks(length: int, t: int, mode: str = "from", keep_first: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(skipped, measured) boolean masks over positions for one intervention point ``t``.

    ``mode="from"``: skip positions ≥ t (never the first ``keep_first``), measure positions ≥ t.
    ``mode="future"`` (the reference implementation's test): skip positions in
    [keep_first, t), measure positions ≥ t — only what flows forward through attention counts.
    """
    positions = torch.arange(length)
    if mode == "from":
        skipped = positions >= max(t, keep_first)
    elif mode == "future":
        skipped = (positions >= keep_first) & (positions < t)
    else:
        raise UserError(f"unknown skip mode {mode!r} (from or future)")
    return skipped, positions >= t


@contextlib.contextmanager
def skipping(model, kind: str, layer: int, skipped: torch.Tensor):
    """Within the block, ``kind`` ("layer", "attn" or "mlp") of ``layer`` is skipped at the
    positions where ``skipped`` (bool, (T,) or (B, T)) is true: a layer's output := its input,
    a sublayer's output := 0."""
    adapter = as_adapter(model)
    if kind not in KINDS:
        raise UserError(f"unknown skip kind {kind!r}; choose one of {KINDS}")
    if not 0 <= layer < adapter.num_layers:
        raise UserError(f"layer {layer} out of range (0..{adapter.num_layers - 1})")
    device = adapter.device
    skipped = skipped.to(device)
    mask = skipped[..., None]
    with Hooks(adapter) as hooks:
        if kind == "layer":
            store = {}

            def pre(h):
                store["h"] = h

            hooks.read(RESID_PRE, layer, pre)
            hooks.edit(RESID_POST, layer, lambda out: torch.where(mask, store.pop("h"), out))
        else:
            hooks.edit(_POINT[kind], layer, lambda out: out.masked_fill(mask, 0.0))
        yield adapter


@torch.no_grad()
def skip_forward(model, input_ids: torch.Tensor, *, kind: str, layer: int, start: int = 1,
                 skipped: torch.Tensor | None = None, attention_mask=None) -> torch.Tensor:
    """Logits with ``kind`` of ``layer`` skipped from position ``start`` on (or at ``skipped``)."""
    if skipped is None:
        skipped = torch.arange(input_ids.shape[-1]) >= start
    with skipping(model, kind, layer, skipped) as adapter:
        return forward(adapter, input_ids, attention_mask).logits


@dataclass
class SkipResult:
    """``layer_effect[kind][l][j]``: max relative change of layer j's contribution when
    ``kind`` of layer l is skipped; ``output_effect[kind][l]``: max ‖p−p′‖₂ of next-token
    probabilities. Maxed over the intervention positions and prompts."""

    mode: str
    kinds: list[str]
    layer_effect: dict[str, list[list[float]]]
    output_effect: dict[str, list[float]]
    positions: list[list[int]]
    num_prompts: int
    keep_first: int = 1
    #: ``output_samples[kind][l]``: the per-sample maxima behind ``output_effect`` (one per prompt
    #: and intervention position), so a figure can show their spread
    output_samples: dict[str, list[list[float]]] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def matrix(self, kind: str = "layer") -> torch.Tensor:
        return torch.tensor(self.layer_effect[kind], dtype=torch.float64)

    def later_effect(self, kind: str = "layer") -> list[float]:
        """For each skipped layer l, the largest effect on a *later* layer j > l."""
        matrix = self.matrix(kind)
        L = matrix.shape[0]
        return [float(matrix[l, l + 1:].max()) if l + 1 < L else 0.0 for l in range(L)]


#: below this many samples (prompts x positions) per layer, skip_output.png is not drawn: a
#: maximum over fewer values is noise
MIN_OUTPUT_SAMPLES = 8


def skip_output_refusal(result: "SkipResult") -> str | None:
    """Why the output-effect figure is not drawn (too few samples per layer), or None."""
    samples = result.output_samples
    if not samples:
        return "the result has no per-sample output effects"
    counts = [len(v) for kind in result.kinds for v in samples[kind]]
    fewest = min(counts) if counts else 0
    if fewest < MIN_OUTPUT_SAMPLES:
        return (f"{fewest} samples (prompts x positions) per layer, fewer than {MIN_OUTPUT_SAMPLES}: "
                "a maximum over so few is noise (raise --skip-prompts / --skip-positions)")
    return None


def choose_positions(length: int, count: int, mode: str, generator: torch.Generator) -> list[int]:
    low = 2 if mode == "future" else 1
    candidates = list(range(low, length))
    if not candidates:
        return []
    if count >= len(candidates):
        return candidates
    order = torch.randperm(len(candidates), generator=generator)[:count]
    return sorted(candidates[int(i)] for i in order)


def _expand_call(value: Any, n: int) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[0] == 1 and n != 1:
        return value.expand(n, *value.shape[1:])
    if isinstance(value, tuple):
        return tuple(_expand_call(v, n) for v in value)
    if isinstance(value, list):
        return [_expand_call(v, n) for v in value]
    return value


class _LayerCall:
    """The arguments one decoder layer got in a forward pass, to call it again on a batch."""

    def __init__(self, args: tuple, kwargs: dict):
        self.positional = bool(args)
        self.args = tuple(args[1:]) if args else ()
        self.kwargs = {k: v for k, v in kwargs.items() if k != "hidden_states"}

    def __call__(self, layer, hidden: torch.Tensor) -> torch.Tensor:
        n = hidden.shape[0]
        args = _expand_call(self.args, n)
        kwargs = {k: _expand_call(v, n) for k, v in self.kwargs.items()}
        if self.positional:
            return first_tensor(layer(hidden, *args, **kwargs))
        return first_tensor(layer(hidden_states=hidden, **kwargs))


@torch.no_grad()
def _baseline(adapter: DecoderAdapter, ids: torch.Tensor):
    L = adapter.num_layers
    hs: list = [None] * (L + 1)
    calls: list = [None] * L
    with Hooks(adapter) as hooks:
        for l in range(L):
            def pre(module, args, kwargs, l=l):
                hs[l] = hidden_from_call(args, kwargs)
                calls[l] = _LayerCall(args, kwargs)
            def post(out, l=l):
                hs[l + 1] = out
            hooks.pre(adapter.layer(l), pre, with_kwargs=True)
            hooks.read(RESID_POST, l, post)
        logits = forward(adapter, ids[None]).logits[0]
    return hs, calls, logits


def _row_max(values: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """Max over positions of (N, T) ``values`` where (N, T) ``measured``; 0 where none."""
    return torch.where(measured, values, torch.zeros((), device=values.device)).max(dim=1).values


@torch.no_grad()
def skip_effects(
    model,
    prompts: Sequence[torch.Tensor],
    *,
    kinds: Sequence[str] = KINDS,
    positions: Sequence[Sequence[int]] | None = None,
    num_positions: int = 4,
    mode: str = "from",
    keep_first: int = 1,
    max_batch: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> SkipResult:
    """Skip-effect matrices, batched and sharing each variant's unchanged prefix of layers.

    For each prompt and intervention position t (``positions[i]`` for prompt i, else
    ``num_positions`` random ones) and each kind and layer l, the variant "skip ``kind`` of
    layer l" is created at layer l from the stored clean residual h_l and then carried through
    layers l+1..L-1 together with every other live variant, in batches of ``max_batch``.
    """
    adapter = as_adapter(model)
    kinds = list(kinds)
    for kind in kinds:
        if kind not in KINDS:
            raise UserError(f"unknown skip kind {kind!r}; choose from {KINDS}")
    L = adapter.num_layers
    device = adapter.device
    effect = torch.zeros(len(kinds), L, L, dtype=torch.float64)
    out_effect = torch.zeros(len(kinds), L, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    chosen: list[list[int]] = []
    sub_kinds = [k for k in kinds if k != "layer"]

    keep = {"attn": None, "mlp": None}

    def make_hook(kind):
        def hook(out):
            mask = keep[kind]
            if mask is None:
                return None
            return out * mask
        return hook

    from tqdm.auto import tqdm

    # progress in GFLOPs, advanced after every batch of variants, so the ETA holds although the
    # later layers carry more variants than the first ones
    planned = sum(estimate_flops(adapter, num_prompts=1, max_tokens=len(p), analyses=["skip"],
                                 skip_positions=num_positions if positions is None else len(positions[i]),
                                 skip_kinds=len(kinds))["skip"] for i, p in enumerate(prompts))
    bar = tqdm(total=round(planned / 1e9, 3), unit="GFLOP", desc="skip effects", disable=not progress, leave=False)

    def advance(flops: int):
        bar.update(round(flops / 1e9, 3))

    samples: list[list[list[float]]] = [[[] for _ in range(L)] for _ in kinds]
    for index, prompt in enumerate(prompts):
        T = len(prompt)
        ts = list(positions[index]) if positions is not None else choose_positions(T, num_positions, mode, generator)
        chosen.append([int(t) for t in ts])
        if not ts:
            continue
        masks = [skip_masks(T, t, mode, keep_first) for t in ts]
        skipped_all = torch.stack([m[0] for m in masks]).to(device)  # (P, T)
        measured_all = torch.stack([m[1] for m in masks]).to(device)
        hs, calls, logits = _baseline(adapter, prompt.to(device))
        advance(_forward_flops(adapter, 1, T))
        base_probs = logits.float().softmax(-1)
        carried = hs[0].new_zeros((0, T, hs[0].shape[-1]))
        meta = torch.zeros((0, 3), dtype=torch.long)  # kind index, layer, position index
        hooks = Hooks(adapter)
        for l in range(L):
            hooks.edit(ATTN_OUT, l, make_hook("attn"))
        for l in range(L):
            hooks.edit(MLP_OUT, l, make_hook("mlp"))
        with hooks:
            for j in range(L):
                h_in, h_out = hs[j], hs[j + 1]
                base = (h_out - h_in)[0].float()  # (T, d)
                base_norm = base.norm(dim=-1).clamp_min(1e-6)
                # new sublayer variants start from the clean h_j
                new_meta = [(kinds.index(k), j, p) for k in sub_kinds for p in range(len(ts))]
                inputs = torch.cat([carried, h_in.expand(len(new_meta), -1, -1)]) if new_meta else carried
                all_meta = torch.cat([meta, torch.tensor(new_meta, dtype=torch.long).reshape(-1, 3)])
                n_carried = carried.shape[0]
                keep_masks = {}
                for kind in sub_kinds:
                    m = torch.ones(inputs.shape[0], T, 1, dtype=inputs.dtype, device=device)
                    rows = [n_carried + r for r, item in enumerate(new_meta) if kinds[item[0]] == kind]
                    if rows:
                        pos = torch.tensor([new_meta[r - n_carried][2] for r in rows], device=device)
                        m[torch.tensor(rows, device=device)] = (~skipped_all[pos])[..., None].to(m.dtype)
                    keep_masks[kind] = m
                outputs = []
                for start in range(0, inputs.shape[0], max_batch):
                    stop = start + max_batch
                    for kind in sub_kinds:
                        keep[kind] = keep_masks[kind][start:stop]
                    outputs.append(calls[j](adapter.layer(j), inputs[start:stop]))
                    keep["attn"] = keep["mlp"] = None
                    advance(_layer_flops(adapter, outputs[-1].shape[0] * T, T))
                outputs = torch.cat(outputs) if outputs else inputs
                if "layer" in kinds:  # output := input at the skipped positions; no compute
                    skipped_rows = torch.where(skipped_all[..., None], h_in, h_out)  # (P, T, d)
                    inputs = torch.cat([inputs, h_in.expand(len(ts), -1, -1)])
                    outputs = torch.cat([outputs, skipped_rows])
                    layer_meta = torch.tensor([(kinds.index("layer"), j, p) for p in range(len(ts))])
                    all_meta = torch.cat([all_meta, layer_meta])
                change = ((outputs - inputs).float() - base).norm(dim=-1) / base_norm  # (N, T)
                values = _row_max(change, measured_all[all_meta[:, 2].to(device)]).double().cpu()
                column = effect[:, :, j].reshape(-1)
                column.scatter_reduce_(0, all_meta[:, 0] * L + all_meta[:, 1], values, reduce="amax")
                effect[:, :, j] = column.reshape(len(kinds), L)
                carried, meta = outputs, all_meta
        # the output distribution of every variant
        vocab = base_probs.shape[-1]
        rows_per_chunk = max(1, min(max_batch, int(2**25 // max(1, T * vocab))))
        for start in range(0, carried.shape[0], rows_per_chunk):
            chunk = carried[start:start + rows_per_chunk]
            chunk_meta = meta[start:start + rows_per_chunk]
            # the head only where it is measured (positions >= t), not on the whole sequence
            rows, where = measured_all[chunk_meta[:, 2].to(device)].nonzero(as_tuple=True)
            probs = adapter.logits(chunk[rows, where]).float().softmax(-1)
            advance(_head_flops(adapter, len(rows)))
            change = (probs - base_probs[where]).norm(dim=-1)
            values = torch.zeros(chunk.shape[0], device=device).scatter_reduce_(
                0, rows, change, reduce="amax").double().cpu()
            out_effect.view(-1).scatter_reduce_(0, chunk_meta[:, 0] * L + chunk_meta[:, 1], values, reduce="amax")
            for (ki, layer, _), value in zip(chunk_meta.tolist(), values.tolist()):
                samples[ki][layer].append(value)
    bar.close()
    return SkipResult(
        mode=mode,
        kinds=kinds,
        layer_effect={k: effect[i].tolist() for i, k in enumerate(kinds)},
        output_effect={k: out_effect[i].tolist() for i, k in enumerate(kinds)},
        positions=chosen,
        num_prompts=len(prompts),
        keep_first=keep_first,
        output_samples={k: samples[i] for i, k in enumerate(kinds)},
    )


@torch.no_grad()
def skip_effects_reference(
    model,
    prompts: Sequence[torch.Tensor],
    *,
    kinds: Sequence[str] = KINDS,
    positions: Sequence[Sequence[int]],
    mode: str = "from",
    keep_first: int = 1,
    progress: bool = False,
) -> SkipResult:
    """The plain way: one clean pass plus one full forward per (position, kind, layer)."""
    adapter = as_adapter(model)
    kinds = list(kinds)
    L = adapter.num_layers
    device = adapter.device
    effect = torch.zeros(len(kinds), L, L, dtype=torch.float64)
    out_effect = torch.zeros(len(kinds), L, dtype=torch.float64)

    def run(ids):
        record: list = [None] * L
        with Hooks(adapter) as hooks:
            for l in range(L):
                def pre(h, l=l):
                    record[l] = h
                def post(out, l=l):
                    record[l] = (out - record[l])[0].float()
                hooks.read(RESID_PRE, l, pre)
                hooks.read(RESID_POST, l, post)
            logits = forward(adapter, ids[None]).logits[0]
        return record, logits.float().softmax(-1)

    samples: list[list[list[float]]] = [[[] for _ in range(L)] for _ in kinds]
    for index, prompt in enumerate(_progress(prompts, desc="skip effects (reference)", progress=progress)):
        T = len(prompt)
        for t in positions[index]:
            skipped, measured = skip_masks(T, t, mode, keep_first)
            measured = measured.to(device)
            base, base_probs = run(prompt.to(device))
            for ki, kind in enumerate(kinds):
                for l in range(L):
                    with skipping(adapter, kind, l, skipped):
                        record, probs = run(prompt.to(device))
                    for j in range(L):
                        change = (record[j] - base[j]).norm(dim=-1) / base[j].norm(dim=-1).clamp_min(1e-6)
                        effect[ki, l, j] = max(float(effect[ki, l, j]), float(change[measured].max()))
                    change = (probs - base_probs).norm(dim=-1)
                    out_effect[ki, l] = max(float(out_effect[ki, l]), float(change[measured].max()))
                    samples[ki][l].append(float(change[measured].max()))
    return SkipResult(mode, kinds, {k: effect[i].tolist() for i, k in enumerate(kinds)},
                      {k: out_effect[i].tolist() for i, k in enumerate(kinds)},
                      [list(map(int, p)) for p in positions], len(prompts), keep_first,
                      {k: samples[i] for i, k in enumerate(kinds)})
