"""Residual-stream depth probes: how does a decoder LM use its layers?

After Csordás et al. 2025, "Do Language Models Use Their Depth Efficiently?". With ``h_l`` the
residual stream entering layer ``l``, ``a_l`` what attention adds and ``m_l`` what the MLP adds
(``h_{l+1} = h_l + a_l + m_l``):

* :func:`contributions` — ‖a_l‖/‖h_l‖, ‖m_l‖/‖h_l+a_l‖, ‖h_{l+1}−h_l‖/‖h_l‖ and the cosines
  cos(a_l,h_l), cos(m_l,h_l+a_l), cos(Δh,h), averaged over tokens; plus the residual stream's
  largest outlier dimensions per layer (attention sinks / massive activations), all from
  running sums in forward hooks (nothing is cached).
* :func:`skip_effects` — skip a layer (output := input), or an attention / MLP sublayer
  (output := 0) at some positions; the relative change of every layer's contribution
  ‖Δ(h_{j+1}−h_j)‖/‖h_{j+1}−h_j‖ and of the next-token distribution ‖p−p′‖₂, maxed over
  positions and prompts → L×L matrices. Variants share the unchanged prefix of layers and run
  batched (:func:`skip_effects_reference` is the plain one-forward-per-variant version).
* :func:`logit_lens` — lm_head(final_norm(h_l)) against the model's output: KL and top-k overlap.
* :func:`depth_score` — Σ l·e_l / Σ e_l.
* :func:`linear_maps` — closed-form ridge maps from one model's residual stream to another's
  (same tokenizer): relative error, source layer × target layer.

:func:`run_depth` runs them all and returns a :class:`DepthReport` (``to_json()``, ``plot()``,
``to_markdown()``, ``write(out_dir)``); ``zoo-analysis depth`` is its CLI.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import torch

from .errors import UserError
from .models import DecoderAdapter, first_tensor, load_model, replace_first_tensor
from .prompts import iter_batches, load_prompts

__all__ = [
    "ContributionResult",
    "SkipResult",
    "LensResult",
    "LinearMapResult",
    "DepthReport",
    "contributions",
    "collect_activations",
    "skip_effects",
    "skip_effects_reference",
    "skip_forward",
    "skipping",
    "logit_lens",
    "collect_streams",
    "fit_linear_maps",
    "linear_maps",
    "depth_score",
    "run_depth",
    "add_cli",
]

KINDS = ("layer", "attn", "mlp")
_EPS = 1e-12


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _as_adapter(model) -> DecoderAdapter:
    return model if isinstance(model, DecoderAdapter) else DecoderAdapter(model)


def _hidden_from_call(args: tuple, kwargs: dict) -> torch.Tensor:
    if args:
        return args[0]
    return kwargs["hidden_states"]


def _token_weights(mask: torch.Tensor, exclude: Sequence[int]) -> torch.Tensor:
    """Boolean (B, T): real tokens not at an excluded position."""
    keep = mask.bool().clone()
    length = keep.shape[1]
    for position in exclude:
        if -length <= position < length:
            keep[:, position] = False
    return keep


@contextlib.contextmanager
def _hooks(handles: list):
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def _forward(adapter: DecoderAdapter, ids: torch.Tensor, mask: torch.Tensor | None = None):
    device = adapter.device
    ids = ids.to(device)
    if mask is not None:
        mask = mask.to(device)
    return adapter.model(input_ids=ids, attention_mask=mask, use_cache=False)


def _progress(iterable, total=None, desc=None, progress=True):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _prompt_batches(prompts, batch_size, pad_id):
    return list(iter_batches(list(prompts), batch_size, pad_id))


# --------------------------------------------------------------------------------------------
# contributions (streaming)
# --------------------------------------------------------------------------------------------

_CONTRIB_FIELDS = ("attn_ratio", "mlp_ratio", "layer_ratio", "attn_cos", "mlp_cos", "layer_cos")


@dataclass
class ContributionResult:
    """Per-layer averages over tokens (index l = layer l; ``residual_norm`` has L+1 entries).

    ``excluded_positions`` lists the positions left out of the averages (attention sinks
    usually sit at position 0). ``outliers[l]`` lists the residual dimensions with the largest
    share of ‖h_l‖² at the first position and at the other positions.
    """

    attn_ratio: list[float]
    mlp_ratio: list[float]
    layer_ratio: list[float]
    attn_cos: list[float]
    mlp_cos: list[float]
    layer_cos: list[float]
    residual_norm: list[float]
    num_tokens: int
    excluded_positions: list[int]
    outliers: list[dict] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return len(self.layer_ratio)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


class _ContributionAccumulator:
    def __init__(self, adapter: DecoderAdapter, top_dims: int = 3):
        self.adapter = adapter
        L, d = adapter.num_layers, adapter.hidden_size
        self.sums = torch.zeros(len(_CONTRIB_FIELDS), L, dtype=torch.float64)
        self.norm_sums = torch.zeros(L + 1, dtype=torch.float64)
        self.sq_first = torch.zeros(L + 1, d, dtype=torch.float64)
        self.sq_rest = torch.zeros(L + 1, d, dtype=torch.float64)
        self.max_first = torch.zeros(L + 1, dtype=torch.float64)
        self.max_rest = torch.zeros(L + 1, dtype=torch.float64)
        self.tokens = 0
        self.top_dims = top_dims
        self.weights: torch.Tensor | None = None  # (B, T) float, tokens in the averages
        self.real: torch.Tensor | None = None  # (B, T) bool, non-padding tokens
        self._h = self._a = self._m = None

    def begin(self, mask: torch.Tensor, exclude: Sequence[int]):
        device = self.adapter.device
        self.weights = _token_weights(mask, exclude).to(device=device, dtype=torch.float32)
        self.real = mask.bool().to(device)
        self.tokens += int(self.weights.sum().item())

    def _outliers(self, index: int, h: torch.Tensor):
        real = self.real.to(h.device).float()
        for row in range(h.shape[0]):  # one sequence at a time: temporaries stay T x d
            hb = h[row].float()
            mask = real[row]
            squared = hb.square()
            self.sq_first[index] += (squared[0] * mask[0]).double().cpu()
            self.sq_rest[index] += (squared[1:] * mask[1:, None]).sum(0).double().cpu()
            peaks = hb.abs().amax(dim=-1) * mask
            self.max_first[index] = max(float(self.max_first[index]), float(peaks[0]))
            if hb.shape[0] > 1:
                self.max_rest[index] = max(float(self.max_rest[index]), float(peaks[1:].max()))

    def hooks(self) -> list:
        adapter = self.adapter
        handles = []
        for l in range(adapter.num_layers):
            handles.append(adapter.layer(l).register_forward_pre_hook(self._pre(l), with_kwargs=True))
            handles.append(adapter.attn_contribution(l).register_forward_hook(self._store("_a")))
            handles.append(adapter.mlp_contribution(l).register_forward_hook(self._store("_m")))
            handles.append(adapter.layer(l).register_forward_hook(self._post(l)))
        return handles

    def _pre(self, l):
        def hook(module, args, kwargs):
            self._h = _hidden_from_call(args, kwargs)
            if l == 0:
                self._outliers(0, self._h)
        return hook

    def _store(self, name):
        def hook(module, args, output):
            setattr(self, name, first_tensor(output))
        return hook

    def _post(self, l):
        def hook(module, args, output):
            out = first_tensor(output)
            h, a, m = self._h, self._a, self._m
            self._h = self._a = self._m = None
            w = self.weights.to(out.device)  # layers may sit on different devices (device_map)
            # one sequence at a time, so the temporaries are T x d rather than B x T x d
            for row in range(out.shape[0]):
                self._add(l, h[row].float(), a[row].float(), m[row].float(), out[row].float(), w[row])
            self._outliers(l + 1, out)
        return hook

    def _add(self, l, h, a, m, out, w):
        mid = h + a
        dh = out - h
        nh, na, nm = h.norm(dim=-1), a.norm(dim=-1), m.norm(dim=-1)
        nmid, ndh = mid.norm(dim=-1), dh.norm(dim=-1)
        values = (
            na / nh.clamp_min(_EPS),
            nm / nmid.clamp_min(_EPS),
            ndh / nh.clamp_min(_EPS),
            (a * h).sum(-1) / (na * nh).clamp_min(_EPS),
            (m * mid).sum(-1) / (nm * nmid).clamp_min(_EPS),
            (dh * h).sum(-1) / (ndh * nh).clamp_min(_EPS),
        )
        for index, value in enumerate(values):
            self.sums[index, l] += float((value * w).sum())
        self.norm_sums[l] += float((nh * w).sum())
        if l == self.adapter.num_layers - 1:
            self.norm_sums[l + 1] += float((out.norm(dim=-1) * w).sum())

    def result(self, exclude: Sequence[int]) -> ContributionResult:
        n = max(self.tokens, 1)
        means = (self.sums / n).tolist()
        outliers = []
        for index in range(self.sq_first.shape[0]):
            first_share = self.sq_first[index] / self.sq_first[index].sum().clamp_min(_EPS)
            rest_share = self.sq_rest[index] / self.sq_rest[index].sum().clamp_min(_EPS)
            outliers.append({
                "layer": index,
                "first_position": [
                    {"dim": int(i), "share": float(first_share[i])}
                    for i in torch.argsort(first_share, descending=True)[: self.top_dims]
                ],
                "other_positions": [
                    {"dim": int(i), "share": float(rest_share[i])}
                    for i in torch.argsort(rest_share, descending=True)[: self.top_dims]
                ],
                "max_abs_first": float(self.max_first[index]),
                "max_abs_other": float(self.max_rest[index]),
                "mean_sq_norm_first": float(self.sq_first[index].sum()),
                "mean_sq_norm_other": float(self.sq_rest[index].sum()),
            })
        counts_first = max(1, self._count_first)
        counts_rest = max(1, self._count_rest)
        for entry in outliers:
            entry["mean_sq_norm_first"] /= counts_first
            entry["mean_sq_norm_other"] /= counts_rest
        return ContributionResult(
            *means,
            residual_norm=(self.norm_sums / n).tolist(),
            num_tokens=self.tokens,
            excluded_positions=sorted(set(int(p) for p in exclude)),
            outliers=outliers,
        )

    _count_first = 0
    _count_rest = 0

    def count(self, mask: torch.Tensor):
        self._count_first += int(mask[:, :1].sum())
        self._count_rest += int(mask[:, 1:].sum())


@torch.no_grad()
def contributions(
    model,
    prompts: Sequence[torch.Tensor],
    *,
    batch_size: int = 8,
    exclude_positions: Sequence[int] = (0,),
    pad_id: int = 0,
    progress: bool = True,
) -> ContributionResult:
    """Relative contributions and cosines per layer, as running sums in forward hooks."""
    adapter = _as_adapter(model)
    acc = _ContributionAccumulator(adapter)
    batches = _prompt_batches(prompts, batch_size, pad_id)
    with _hooks(acc.hooks()):
        for ids, mask in _progress(batches, desc="contributions", progress=progress):
            acc.begin(mask, exclude_positions)
            acc.count(mask)
            _forward(adapter, ids, mask)
    return acc.result(exclude_positions)


@torch.no_grad()
def collect_activations(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict:
    """Every h_l (L+1), a_l and m_l (L) of one batch, stacked: the stored-activations way.

    For tests and comparisons; the tools themselves never keep these.
    """
    adapter = _as_adapter(model)
    hs: list = [None] * (adapter.num_layers + 1)
    attn: list = [None] * adapter.num_layers
    mlp: list = [None] * adapter.num_layers
    handles = []
    for l in range(adapter.num_layers):
        def pre(module, args, kwargs, l=l):
            hs[l] = _hidden_from_call(args, kwargs).detach().clone()
        def post(module, args, output, l=l):
            hs[l + 1] = first_tensor(output).detach().clone()
        def a_hook(module, args, output, l=l):
            attn[l] = first_tensor(output).detach().clone()
        def m_hook(module, args, output, l=l):
            mlp[l] = first_tensor(output).detach().clone()
        handles += [
            adapter.layer(l).register_forward_pre_hook(pre, with_kwargs=True),
            adapter.layer(l).register_forward_hook(post),
            adapter.attn_contribution(l).register_forward_hook(a_hook),
            adapter.mlp_contribution(l).register_forward_hook(m_hook),
        ]
    with _hooks(handles):
        output = _forward(adapter, input_ids, attention_mask)
    return {"h": torch.stack(hs), "attn": torch.stack(attn), "mlp": torch.stack(mlp),
            "logits": output.logits}


# --------------------------------------------------------------------------------------------
# skipping layers and sublayers
# --------------------------------------------------------------------------------------------


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
    adapter = _as_adapter(model)
    if kind not in KINDS:
        raise UserError(f"unknown skip kind {kind!r}; choose one of {KINDS}")
    if not 0 <= layer < adapter.num_layers:
        raise UserError(f"layer {layer} out of range (0..{adapter.num_layers - 1})")
    device = adapter.device
    skipped = skipped.to(device)
    mask = skipped[..., None]
    handles = []
    if kind == "layer":
        store = {}

        def pre(module, args, kwargs):
            store["h"] = _hidden_from_call(args, kwargs)

        def post(module, args, output):
            out = first_tensor(output)
            return replace_first_tensor(output, torch.where(mask, store.pop("h"), out))

        handles += [adapter.layer(layer).register_forward_pre_hook(pre, with_kwargs=True),
                    adapter.layer(layer).register_forward_hook(post)]
    else:
        def zero(module, args, output):
            out = first_tensor(output)
            return replace_first_tensor(output, out.masked_fill(mask, 0.0))

        handles.append(adapter.sublayer(kind, layer).register_forward_hook(zero))
    with _hooks(handles):
        yield adapter


@torch.no_grad()
def skip_forward(model, input_ids: torch.Tensor, *, kind: str, layer: int, start: int = 1,
                 skipped: torch.Tensor | None = None, attention_mask=None) -> torch.Tensor:
    """Logits with ``kind`` of ``layer`` skipped from position ``start`` on (or at ``skipped``)."""
    if skipped is None:
        skipped = torch.arange(input_ids.shape[-1]) >= start
    with skipping(model, kind, layer, skipped) as adapter:
        return _forward(adapter, input_ids, attention_mask).logits


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


def _choose_positions(length: int, count: int, mode: str, generator: torch.Generator) -> list[int]:
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
    handles = []
    for l in range(L):
        def pre(module, args, kwargs, l=l):
            hs[l] = _hidden_from_call(args, kwargs)
            calls[l] = _LayerCall(args, kwargs)
        def post(module, args, output, l=l):
            hs[l + 1] = first_tensor(output)
        handles += [adapter.layer(l).register_forward_pre_hook(pre, with_kwargs=True),
                    adapter.layer(l).register_forward_hook(post)]
    with _hooks(handles):
        logits = _forward(adapter, ids[None]).logits[0]
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
    adapter = _as_adapter(model)
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
        def hook(module, args, output):
            mask = keep[kind]
            if mask is None:
                return None
            return replace_first_tensor(output, first_tensor(output) * mask)
        return hook

    for index, prompt in enumerate(_progress(prompts, desc="skip effects", progress=progress)):
        T = len(prompt)
        ts = list(positions[index]) if positions is not None else _choose_positions(T, num_positions, mode, generator)
        chosen.append([int(t) for t in ts])
        if not ts:
            continue
        masks = [skip_masks(T, t, mode, keep_first) for t in ts]
        skipped_all = torch.stack([m[0] for m in masks]).to(device)  # (P, T)
        measured_all = torch.stack([m[1] for m in masks]).to(device)
        hs, calls, logits = _baseline(adapter, prompt.to(device))
        base_probs = logits.float().softmax(-1)
        carried = hs[0].new_zeros((0, T, hs[0].shape[-1]))
        meta = torch.zeros((0, 3), dtype=torch.long)  # kind index, layer, position index
        handles = [adapter.attn_contribution(l).register_forward_hook(make_hook("attn")) for l in range(L)]
        handles += [adapter.mlp_contribution(l).register_forward_hook(make_hook("mlp")) for l in range(L)]
        with _hooks(handles):
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
            change = (probs - base_probs[where]).norm(dim=-1)
            values = torch.zeros(chunk.shape[0], device=device).scatter_reduce_(
                0, rows, change, reduce="amax").double().cpu()
            out_effect.view(-1).scatter_reduce_(0, chunk_meta[:, 0] * L + chunk_meta[:, 1], values, reduce="amax")
    return SkipResult(
        mode=mode,
        kinds=kinds,
        layer_effect={k: effect[i].tolist() for i, k in enumerate(kinds)},
        output_effect={k: out_effect[i].tolist() for i, k in enumerate(kinds)},
        positions=chosen,
        num_prompts=len(prompts),
        keep_first=keep_first,
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
    adapter = _as_adapter(model)
    kinds = list(kinds)
    L = adapter.num_layers
    device = adapter.device
    effect = torch.zeros(len(kinds), L, L, dtype=torch.float64)
    out_effect = torch.zeros(len(kinds), L, dtype=torch.float64)

    def run(ids):
        record: list = [None] * L
        handles = []
        for l in range(L):
            def pre(module, args, kwargs, l=l):
                record[l] = _hidden_from_call(args, kwargs)
            def post(module, args, output, l=l):
                record[l] = (first_tensor(output) - record[l])[0].float()
            handles += [adapter.layer(l).register_forward_pre_hook(pre, with_kwargs=True),
                        adapter.layer(l).register_forward_hook(post)]
        with _hooks(handles):
            logits = _forward(adapter, ids[None]).logits[0]
        return record, logits.float().softmax(-1)

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
    return SkipResult(mode, kinds, {k: effect[i].tolist() for i, k in enumerate(kinds)},
                      {k: out_effect[i].tolist() for i, k in enumerate(kinds)},
                      [list(map(int, p)) for p in positions], len(prompts), keep_first)


# --------------------------------------------------------------------------------------------
# logit lens
# --------------------------------------------------------------------------------------------


@dataclass
class LensResult:
    """``kl[l]`` = KL(p_final ‖ p_lens(h_l)) in nats and ``topk_overlap[l]`` = |top-k ∩ top-k|/k,
    averaged over tokens, for l = 0..L (l = L is the model's own output)."""

    kl: list[float]
    topk_overlap: list[float]
    k: int
    num_tokens: int
    excluded_positions: list[int]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


@torch.no_grad()
def logit_lens(
    model,
    prompts: Sequence[torch.Tensor],
    *,
    k: int = 5,
    batch_size: int = 4,
    exclude_positions: Sequence[int] = (0,),
    pad_id: int = 0,
    chunk_tokens: int = 512,
    progress: bool = True,
) -> LensResult:
    """Logit lens in two passes per batch: the final distribution, then every layer's lens
    evaluated in the hooks (token chunks of ``chunk_tokens``) — no stored residual stream."""
    adapter = _as_adapter(model)
    L = adapter.num_layers
    kl_sum = torch.zeros(L + 1, dtype=torch.float64)
    overlap_sum = torch.zeros(L + 1, dtype=torch.float64)
    tokens = 0
    state: dict[str, Any] = {}

    def measure(index: int, hidden: torch.Tensor):
        flat = hidden[state["keep"]]
        for start in range(0, flat.shape[0], chunk_tokens):
            logp = adapter.logits(flat[start:start + chunk_tokens]).float().log_softmax(-1)
            ref = state["logp"][start:start + chunk_tokens]
            kl = (ref.exp() * (ref - logp)).sum(-1)
            top = logp.topk(k, dim=-1).indices
            ref_top = state["top"][start:start + chunk_tokens]
            overlap = (top[:, :, None] == ref_top[:, None, :]).any(-1).float().sum(-1) / k
            kl_sum[index] += float(kl.sum())
            overlap_sum[index] += float(overlap.sum())

    for ids, mask in _progress(_prompt_batches(prompts, batch_size, pad_id), desc="logit lens", progress=progress):
        keep = _token_weights(mask, exclude_positions).to(adapter.device)
        logits = _forward(adapter, ids, mask).logits
        state["keep"] = keep
        state["logp"] = logits[keep].float().log_softmax(-1)
        state["top"] = state["logp"].topk(k, dim=-1).indices
        del logits
        tokens += int(keep.sum())
        with _hooks(_lens_hooks(adapter, measure)):
            _forward(adapter, ids, mask)
        state.clear()
    n = max(tokens, 1)
    return LensResult((kl_sum / n).tolist(), (overlap_sum / n).tolist(), k, tokens,
                      sorted(set(int(p) for p in exclude_positions)))


def _lens_hooks(adapter: DecoderAdapter, measure) -> list:
    L = adapter.num_layers
    handles = []
    for l in range(L):
        def pre(module, args, kwargs, l=l):
            measure(l, _hidden_from_call(args, kwargs))
        handles.append(adapter.layer(l).register_forward_pre_hook(pre, with_kwargs=True))

    def last(module, args, output):
        measure(L, first_tensor(output))
    handles.append(adapter.layer(L - 1).register_forward_hook(last))
    return handles


# --------------------------------------------------------------------------------------------
# linear maps between residual streams
# --------------------------------------------------------------------------------------------


@dataclass
class LinearMapResult:
    """``relative_error[s][t]``: held-out ‖Ŷ−Y‖²/‖Y−Ȳ‖² predicting the target model's h_t
    from the source model's h_s with a ridge map (1 = no better than the mean)."""

    source: str
    target: str
    relative_error: list[list[float]]
    ridge: float
    num_train: int
    num_test: int
    excluded_positions: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def best_target(self) -> list[int]:
        """For each source layer, the target layer it predicts best."""
        return [int(torch.tensor(row).argmin()) for row in self.relative_error]


@torch.no_grad()
def collect_streams(
    model,
    prompts: Sequence[torch.Tensor],
    *,
    batch_size: int = 8,
    exclude_positions: Sequence[int] = (0,),
    max_tokens: int = 4096,
    pad_id: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """(N, L+1, d) float32 residual states h_0..h_L at the first ``max_tokens`` kept tokens."""
    adapter = _as_adapter(model)
    L = adapter.num_layers
    rows: list[torch.Tensor] = []
    taken = 0
    for ids, mask in _progress(_prompt_batches(prompts, batch_size, pad_id), desc="streams", progress=progress):
        if taken >= max_tokens:
            break
        keep = _token_weights(mask, exclude_positions).to(adapter.device)
        per_layer: list = [None] * (L + 1)
        handles = []
        for l in range(L):
            def pre(module, args, kwargs, l=l):
                per_layer[l] = _hidden_from_call(args, kwargs)[keep].float().cpu()
            handles.append(adapter.layer(l).register_forward_pre_hook(pre, with_kwargs=True))

        def last(module, args, output):
            per_layer[L] = first_tensor(output)[keep].float().cpu()
        handles.append(adapter.layer(L - 1).register_forward_hook(last))
        with _hooks(handles):
            _forward(adapter, ids, mask)
        stacked = torch.stack(per_layer, dim=1)[: max_tokens - taken]
        rows.append(stacked)
        taken += stacked.shape[0]
    return torch.cat(rows)


@torch.no_grad()
def fit_linear_maps(
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    ridge: float = 1e-3,
    test_fraction: float = 0.25,
    seed: int = 0,
    source_name: str = "source",
    target_name: str = "target",
    excluded_positions: Sequence[int] = (),
) -> LinearMapResult:
    """Closed-form ridge maps h_s(source) → h_t(target) for every pair of layers.

    ``source`` is (N, Ls, ds) and ``target`` (N, Lt, dt), rows aligned token by token. Both are
    centred with the training means (an intercept); the ridge penalty is
    ``ridge × trace(XᵀX)/d`` so it does not depend on the stream's scale.
    """
    if source.shape[0] != target.shape[0]:
        raise UserError("source and target streams must have the same tokens")
    N = source.shape[0]
    n_test = max(1, int(round(N * test_fraction)))
    if N - n_test < 2:
        raise UserError(f"too few tokens ({N}) for a linear map; use more or longer prompts")
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    train, test = order[n_test:], order[:n_test]
    _, Lt, dt = target.shape
    Ytr = target[train].reshape(len(train), Lt * dt).double()
    Yte = target[test].reshape(len(test), Lt * dt).double()
    y_mean = Ytr.mean(0)
    Ytr = Ytr - y_mean
    Yte = Yte - y_mean
    denominator = Yte.reshape(len(test), Lt, dt).square().sum(dim=(0, 2)).clamp_min(_EPS)
    errors = []
    for s in range(source.shape[1]):
        X = source[train, s].double()
        x_mean = X.mean(0)
        X = X - x_mean
        gram = X.T @ X
        penalty = ridge * float(gram.diagonal().sum()) / gram.shape[0] + _EPS
        gram.diagonal().add_(penalty)
        weights = torch.linalg.solve(gram, X.T @ Ytr)
        prediction = (source[test, s].double() - x_mean) @ weights
        residual = (prediction - Yte).reshape(len(test), Lt, dt).square().sum(dim=(0, 2))
        errors.append((residual / denominator).tolist())
    return LinearMapResult(source_name, target_name, errors, ridge, len(train), len(test),
                           sorted(set(int(p) for p in excluded_positions)))


def _check_same_tokenizer(tok_a, tok_b, name_a: str, name_b: str):
    if tok_a is None or tok_b is None:
        raise UserError("linear maps need both models' tokenizers")
    if tok_a.get_vocab() != tok_b.get_vocab():
        raise UserError(
            f"{name_a} and {name_b} use different tokenizers; linear maps between residual "
            "streams need the same tokens in both models"
        )


def linear_maps(source_model, target_model, prompts, *, source_name="source", target_name="target",
                source_tokenizer=None, target_tokenizer=None, ridge: float = 1e-3,
                max_tokens: int = 4096, batch_size: int = 8, exclude_positions=(0,), pad_id: int = 0,
                progress: bool = True) -> LinearMapResult:
    """Residual streams of both models on the same tokens, then :func:`fit_linear_maps`."""
    if source_tokenizer is not None or target_tokenizer is not None:
        _check_same_tokenizer(source_tokenizer, target_tokenizer, source_name, target_name)
    X = collect_streams(source_model, prompts, batch_size=batch_size, exclude_positions=exclude_positions,
                        max_tokens=max_tokens, pad_id=pad_id, progress=progress)
    Y = collect_streams(target_model, prompts, batch_size=batch_size, exclude_positions=exclude_positions,
                        max_tokens=max_tokens, pad_id=pad_id, progress=progress)
    return fit_linear_maps(X, Y, ridge=ridge, source_name=source_name, target_name=target_name,
                           excluded_positions=exclude_positions)


# --------------------------------------------------------------------------------------------
# depth score, the report, the CLI
# --------------------------------------------------------------------------------------------


def depth_score(effects: Sequence[float]) -> float:
    """Σ l·e_l / Σ e_l over layers l = 0..L-1 (NaN when every effect is 0)."""
    values = torch.as_tensor(list(effects), dtype=torch.float64).clamp_min(0)
    total = float(values.sum())
    if total == 0:
        return math.nan
    return float((torch.arange(len(values), dtype=torch.float64) * values).sum() / total)


@dataclass
class DepthReport:
    model: str
    family: str
    num_layers: int
    hidden_size: int
    settings: dict
    contributions: ContributionResult | None = None
    skip: SkipResult | None = None
    lens: LensResult | None = None
    linear_map: LinearMapResult | None = None
    timings: dict = field(default_factory=dict)

    def depth_scores(self) -> dict:
        scores = {}
        L = self.num_layers
        if self.contributions is not None:
            scores["relative_contribution"] = depth_score(self.contributions.layer_ratio)
        if self.skip is not None:
            for kind in self.skip.kinds:
                scores[f"skip_{kind}_output"] = depth_score(self.skip.output_effect[kind])
                scores[f"skip_{kind}_later_layers"] = depth_score(self.skip.later_effect(kind))
        return {k: {"layer": v, "relative": v / max(1, L - 1)} for k, v in scores.items()}

    def to_dict(self) -> dict:
        data = {
            "model": self.model,
            "family": self.family,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "settings": self.settings,
            "depth_scores": self.depth_scores(),
            "timings_s": self.timings,
        }
        for name in ("contributions", "skip", "lens", "linear_map"):
            value = getattr(self, name)
            data[name] = None if value is None else value.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=float)

    def halves(self) -> dict:
        """Mean relative contribution ‖Δh‖/‖h‖ in the first and the second half of the layers."""
        ratios = self.contributions.layer_ratio
        half = len(ratios) // 2
        return {"first_half": sum(ratios[:half]) / max(1, half),
                "second_half": sum(ratios[half:]) / max(1, len(ratios) - half)}

    def to_markdown(self) -> str:
        lines = [f"# Depth probes: {self.model}", "",
                 f"{self.family}, {self.num_layers} layers, hidden size {self.hidden_size}. "
                 f"Settings: `{json.dumps(self.settings)}`.", ""]
        if self.contributions is not None:
            c = self.contributions
            excluded = ", ".join(map(str, c.excluded_positions)) or "none"
            halves = self.halves()
            lines += ["## Contributions", "",
                      f"Averaged over {c.num_tokens} tokens; positions excluded from the averages: {excluded}.",
                      f"Mean ‖Δh‖/‖h‖: first half {halves['first_half']:.3f}, second half {halves['second_half']:.3f}.",
                      "", "| layer | ‖a‖/‖h‖ | ‖m‖/‖h+a‖ | ‖Δh‖/‖h‖ | cos(a,h) | cos(m,h+a) | cos(Δh,h) | top dim @pos0 (share) | top dim @rest (share) |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for l in range(c.num_layers):
                o = c.outliers[l] if c.outliers else None
                first = f"{o['first_position'][0]['dim']} ({o['first_position'][0]['share']:.2f})" if o else ""
                rest = f"{o['other_positions'][0]['dim']} ({o['other_positions'][0]['share']:.2f})" if o else ""
                lines.append(f"| {l} | {c.attn_ratio[l]:.3f} | {c.mlp_ratio[l]:.3f} | {c.layer_ratio[l]:.3f} | "
                             f"{c.attn_cos[l]:.3f} | {c.mlp_cos[l]:.3f} | {c.layer_cos[l]:.3f} | {first} | {rest} |")
            lines.append("")
        if self.skip is not None:
            s = self.skip
            lines += ["## Skip effects", "",
                      f"Mode `{s.mode}` (first {s.keep_first} position(s) never skipped), {s.num_prompts} prompts, "
                      f"positions per prompt: {len(s.positions[0]) if s.positions else 0}.", "",
                      "| layer | " + " | ".join(f"{k}: max effect on later layers | {k}: max ‖p−p′‖" for k in s.kinds) + " |",
                      "|---|" + "---|---|" * len(s.kinds)]
            for l in range(self.num_layers):
                cells = []
                for kind in s.kinds:
                    cells += [f"{s.later_effect(kind)[l]:.3f}", f"{s.output_effect[kind][l]:.3f}"]
                lines.append(f"| {l} | " + " | ".join(cells) + " |")
            lines.append("")
        if self.lens is not None:
            lens = self.lens
            lines += ["## Logit lens", "",
                      f"KL(final ‖ lens) in nats and top-{lens.k} overlap, {lens.num_tokens} tokens.", "",
                      "| h_l | KL | top-k overlap |", "|---|---|---|"]
            lines += [f"| {l} | {lens.kl[l]:.3f} | {lens.topk_overlap[l]:.3f} |" for l in range(len(lens.kl))]
            lines.append("")
        if self.linear_map is not None:
            m = self.linear_map
            lines += ["## Linear maps", "",
                      f"{m.source} → {m.target}: ridge {m.ridge}, {m.num_train} train / {m.num_test} held-out tokens. "
                      "Best target layer for each source layer: " + ", ".join(
                          f"{s}→{t}" for s, t in enumerate(m.best_target())) + ".", ""]
        scores = self.depth_scores()
        if scores:
            lines += ["## Depth scores", "", "| effect | Σl·e_l/Σe_l | relative (÷ L−1) |", "|---|---|---|"]
            lines += [f"| {k} | {v['layer']:.2f} | {v['relative']:.3f} |" for k, v in scores.items()]
            lines.append("")
        return "\n".join(lines)

    def plot(self, out_dir: str) -> list[str]:
        from .depth_plots import plot_report

        return plot_report(self, out_dir)

    def write(self, out_dir: str) -> list[str]:
        """Write report.json, report.md and the figures into a new folder ``out_dir``.

        The files are written into a temporary sibling folder that is renamed at the end, so
        a failure never leaves a half-written ``out_dir``.
        """
        out_dir = os.path.abspath(out_dir)
        parent = os.path.dirname(out_dir)
        os.makedirs(parent, exist_ok=True)
        if os.path.exists(out_dir) and os.listdir(out_dir):
            raise UserError(f"output folder {out_dir} exists and is not empty")
        staging = tempfile.mkdtemp(prefix=".depth-", dir=parent)
        try:
            with open(os.path.join(staging, "report.json"), "w") as handle:
                handle.write(self.to_json())
            with open(os.path.join(staging, "report.md"), "w") as handle:
                handle.write(self.to_markdown())
            self.plot(staging)
            if os.path.isdir(out_dir):
                os.rmdir(out_dir)
            os.replace(staging, out_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir))


def _pad_id(tokenizer) -> int:
    for attribute in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attribute, None)
        if isinstance(value, int):
            return value
    return 0


def run_depth(
    model,
    tokenizer,
    *,
    name: str = "model",
    compare=None,
    compare_tokenizer=None,
    compare_name: str = "compare",
    prompts: str | None = None,
    num_prompts: int = 16,
    max_tokens: int = 256,
    batch_size: int = 8,
    exclude_positions: Sequence[int] = (0,),
    analyses: Iterable[str] = ("contributions", "skip", "lens", "map"),
    skip_prompts: int | None = None,
    skip_positions: int = 4,
    skip_mode: str = "from",
    skip_max_tokens: int | None = None,
    map_tokens: int = 4096,
    progress: bool = True,
) -> DepthReport:
    """Run the chosen analyses on one model (and the linear map to ``compare``)."""
    adapter = _as_adapter(model)
    analyses = list(analyses)
    unknown = set(analyses) - {"contributions", "skip", "lens", "map"}
    if unknown:
        raise UserError(f"unknown analyses {sorted(unknown)} (contributions, skip, lens, map)")
    if compare is not None:
        _check_same_tokenizer(tokenizer, compare_tokenizer, name, compare_name)
    tokens = load_prompts(tokenizer, prompts, num_prompts=num_prompts, max_tokens=max_tokens)
    pad = _pad_id(tokenizer)
    settings = {"prompts": prompts or "builtin (pydoc_data.topics)", "num_prompts": len(tokens),
                "max_tokens": max_tokens, "batch_size": batch_size,
                "excluded_positions": sorted(set(int(p) for p in exclude_positions)),
                "analyses": analyses}
    report = DepthReport(name, adapter.family_name, adapter.num_layers, adapter.hidden_size, settings)
    if "contributions" in analyses:
        start = time.perf_counter()
        report.contributions = contributions(adapter, tokens, batch_size=batch_size,
                                             exclude_positions=exclude_positions, pad_id=pad, progress=progress)
        report.timings["contributions"] = time.perf_counter() - start
    if "lens" in analyses:
        start = time.perf_counter()
        report.lens = logit_lens(adapter, tokens, batch_size=min(batch_size, 4),
                                 exclude_positions=exclude_positions, pad_id=pad, progress=progress)
        report.timings["lens"] = time.perf_counter() - start
    if "skip" in analyses:
        start = time.perf_counter()
        chosen = tokens[: skip_prompts or len(tokens)]
        if skip_max_tokens:
            chosen = [p[:skip_max_tokens] for p in chosen]
        report.skip = skip_effects(adapter, chosen, num_positions=skip_positions, mode=skip_mode, progress=progress)
        settings.update(skip_prompts=len(chosen), skip_positions=skip_positions, skip_mode=skip_mode,
                        skip_max_tokens=skip_max_tokens or max_tokens)
        report.timings["skip"] = time.perf_counter() - start
    if compare is not None and "map" in analyses:
        start = time.perf_counter()
        report.linear_map = linear_maps(adapter, compare, tokens, source_name=name, target_name=compare_name,
                                        max_tokens=map_tokens, batch_size=batch_size,
                                        exclude_positions=exclude_positions, pad_id=pad, progress=progress)
        settings["map_tokens"] = map_tokens
        report.timings["linear_map"] = time.perf_counter() - start
    return report


def _positions_arg(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UserError(f"--exclude-positions takes comma-separated integers or 'none', not {text!r}") from None


def _cli(args) -> int:
    # validate everything before loading anything or touching --out
    for option in ("num_prompts", "max_tokens", "batch_size", "skip_positions"):
        if getattr(args, option) < 1:
            raise UserError(f"--{option.replace('_', '-')} must be at least 1")
    if args.max_tokens < 2:
        raise UserError("--max-tokens must be at least 2")
    exclude = _positions_arg(args.exclude_positions)
    analyses = [a.strip() for a in args.analyses.split(",") if a.strip()]
    unknown = set(analyses) - {"contributions", "skip", "lens", "map"}
    if unknown:
        raise UserError(f"unknown --analyses {sorted(unknown)} (contributions, skip, lens, map)")
    out = os.path.abspath(args.out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise UserError(f"--out {args.out} exists and is not an empty folder")
    if args.prompts and not os.path.isfile(args.prompts) and args.prompts.endswith((".txt", ".md")):
        raise UserError(f"prompt file not found: {args.prompts}")
    if args.threads:
        torch.set_num_threads(args.threads)

    options = dict(dtype=args.dtype, device=args.device, device_map=args.device_map,
                   trust_remote_code=True if args.trust_remote_code else None)
    loaded = load_model(args.model, **options)
    adapter = DecoderAdapter(loaded.model)
    compare = compare_tok = None
    if args.compare:
        other = load_model(args.compare, **options)
        compare, compare_tok = DecoderAdapter(other.model), other.tokenizer
    report = run_depth(
        adapter, loaded.tokenizer, name=args.model, compare=compare, compare_tokenizer=compare_tok,
        compare_name=args.compare or "compare", prompts=args.prompts, num_prompts=args.num_prompts,
        max_tokens=args.max_tokens, batch_size=args.batch_size, exclude_positions=exclude,
        analyses=analyses, skip_prompts=args.skip_prompts, skip_positions=args.skip_positions,
        skip_mode=args.skip_mode, skip_max_tokens=args.skip_max_tokens, map_tokens=args.map_tokens,
        progress=not args.quiet,
    )
    files = report.write(out)
    print(f"depth probes for {args.model} written to {out}:")
    for path in files:
        print(f"  {path}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "depth",
        help="residual-stream depth probes (contributions, skip effects, logit lens, linear maps)",
        description="How does a decoder LM use its depth? (Csordás et al. 2025)",
    )
    parser.add_argument("--model", required=True, help="Hub id, local folder, .gguf file or zoo id")
    parser.add_argument("--compare", help="a second model (same tokenizer) for the linear maps")
    parser.add_argument("--out", required=True, help="new output folder")
    parser.add_argument("--prompts", help="text file (blank-line separated) or datasets name; default: built-in English text")
    parser.add_argument("--num-prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--exclude-positions", default="0",
                        help="positions left out of the averages, comma-separated, or 'none' (default: 0, the attention sink)")
    parser.add_argument("--analyses", default="contributions,skip,lens,map",
                        help="comma-separated subset of contributions,skip,lens,map")
    parser.add_argument("--skip-prompts", type=int, default=None, help="prompts for the skip test (default: all)")
    parser.add_argument("--skip-positions", type=int, default=4, help="intervention positions per prompt")
    parser.add_argument("--skip-mode", choices=["from", "future"], default="from",
                        help="from: skip positions >= t; future: skip positions < t and measure >= t (the reference's test)")
    parser.add_argument("--skip-max-tokens", type=int, default=None, help="cut prompts to this length for the skip test")
    parser.add_argument("--map-tokens", type=int, default=4096, help="tokens for the linear maps")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto")
    parser.add_argument("--device", default=None)
    parser.add_argument("--device-map", default=None, help="accelerate device map, e.g. auto")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a non-zooscope repo's own code")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_cli)
