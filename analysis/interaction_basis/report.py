"""``interaction_basis``: the interaction basis of every node layer of a chain, the interaction
graph between consecutive layers in it and in the two bases it is compared with (PCA, neurons),
and the sparsity of those graphs, as an ``InteractionReport`` (JSON, markdown, figures)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from . import basis as _basis
from .collect import Node, edge_attributions, gradient_gram, gram_matrices, projection_effect
from .sparsity import edge_sparsity

__all__ = ["LayerResult", "PairResult", "InteractionReport", "interaction_basis", "KINDS", "directions_for_share"]

KINDS = ("interaction", "pca", "neuron")
TOP_EDGES = 50


def directions_for_share(importance, share: float = 0.99) -> int:
    """The fewest directions whose importance adds up to ``share`` of the total."""
    x = np.sort(np.abs(np.asarray(importance, dtype=np.float64)))[::-1]
    total = x.sum()
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(x) / total, share - 1e-12) + 1)


@dataclass
class LayerResult:
    name: str
    width: int  # units of the layer
    kept_activations: int  # directions left after dropping linear dependence of activations
    interaction_directions: int  # ... and after dropping linear dependence of gradients
    directions_99: dict  # {kind: fewest directions holding 99 % of the importance}
    importance: list  # Λ of the kept interaction directions (descending)
    gram_eigenvalues: list  # D, all of them (descending)
    gradient_eigenvalues: list | None  # Λ, all of them (None for the last layer)
    projection_effect: float | None = None  # relative change of the next layer when this one is
    # projected onto its kept interaction subspace (≈ 0: the dropped directions do not matter)


@dataclass
class PairResult:
    src: str
    dst: str
    sparsity: dict  # {kind: edge_sparsity(...)}
    top_edges: dict  # {kind: [[dst direction, src direction, attribution], ...] the largest}


@dataclass
class InteractionReport:
    model: str
    rows: int
    rtol: float
    layers: list[LayerResult]
    pairs: list[PairResult]
    attribution: str = "gradient x activation"  # how the edges were computed
    settings: dict = field(default_factory=dict)
    bases: dict = field(default_factory=dict, repr=False)  # {layer: {kind: LayerBasis}} (not in JSON)
    edges: dict = field(default_factory=dict, repr=False)  # {(src, dst): {kind: array}} (edges.npz)

    def to_json(self) -> dict:
        from ..convergent.report import jsonable  # the one JSON cleaner (numpy scalars, nan → null)

        return jsonable({k: v for k, v in asdict(self).items() if k not in ("bases", "edges")})

    def summary_markdown(self) -> str:
        def f(v):
            return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"

        lines = [f"Interaction basis of {self.model} on {self.rows} rows (rtol {self.rtol:g}; edges: {self.attribution})", "",
                 "| layer | width | after activation degeneracy | interaction directions | 99 % importance (IB / PCA / neuron) | projection effect |",
                 "|---|---|---|---|---|---|"]
        for layer in self.layers:
            d = layer.directions_99
            effect = "–" if layer.projection_effect is None else f"{layer.projection_effect:.2e}"
            lines.append(f"| {layer.name} | {layer.width} | {layer.kept_activations} | {layer.interaction_directions} | "
                         f"{d['interaction']} / {d['pca']} / {d['neuron']} | {effect} |")
        lines += ["", "| edges | basis | edges | edges for 90 % | top-10 share | top-1 % share | Gini |",
                  "|---|---|---|---|---|---|---|"]
        for pair in self.pairs:
            for kind in KINDS:
                s = pair.sparsity[kind]
                lines.append(f"| {pair.src} → {pair.dst} | {kind} | {s['edges']} | {s['edges_for_90pct']} | {f(s['top10_share'])} | "
                             f"{f(s['top1pct_share'])} | {f(s['gini'])} |")
        return "\n".join(lines)

    def write(self, folder: str, plots: bool = True) -> list[str]:
        paths = [os.path.join(folder, "results.json"), os.path.join(folder, "summary.md"),
                 os.path.join(folder, "edges.npz")]
        with open(paths[0], "w") as fh:
            json.dump(self.to_json(), fh, indent=1)
        with open(paths[1], "w") as fh:
            fh.write(self.summary_markdown() + "\n")
        arrays = {f"{kind}:{src}->{dst}": e for (src, dst), by_kind in self.edges.items() for kind, e in by_kind.items()}
        arrays.update({f"C:{layer}": b["interaction"].C for layer, b in self.bases.items()})
        np.savez(paths[2], **arrays)
        if plots:
            from .plots import plot_report

            paths += plot_report(self, folder)
        return paths


def _top_edges(edges: np.ndarray, n: int = TOP_EDGES) -> list:
    flat = np.argsort(edges.ravel())[::-1][:n]
    return [[int(i // edges.shape[1]), int(i % edges.shape[1]), float(edges.ravel()[i])] for i in flat]


def interaction_basis(model, nodes: Sequence[Node], batches: Sequence[dict], main: str, *,
                      rtol: float = _basis.DEFAULT_RTOL, model_name: str = "model",
                      progress: bool = False, projection_check: bool = True,
                      integration_steps: int = 0) -> InteractionReport:
    """The interaction basis of each node layer (``nodes`` in forward order; see
    analysis.interaction_basis.collect for what a node is) from ``batches`` (a list of dicts of
    model inputs; ``main`` is the input that 'input' nodes read), and the interaction graphs
    (edges: gradient × activation, or integrated gradients over ``integration_steps`` steps)."""
    batches = list(batches)
    grams, rows = gram_matrices(model, nodes, batches, main, progress=progress)
    bases: dict[str, dict] = {}
    for node in nodes:
        G = grams[node.name]
        bases[node.name] = {"pca": _basis.gram_eigenbasis(G, rtol), "neuron": _basis.neuron_basis(G)}
    last = nodes[-1].name
    final = _basis.gram_eigenbasis(grams[last], rtol)
    final.kind = "interaction"
    bases[last]["interaction"] = final
    for src, dst in reversed(list(zip(nodes[:-1], nodes[1:]))):
        M = gradient_gram(model, src, dst, batches, main, bases[dst.name]["interaction"].C, progress=progress)
        bases[src.name]["interaction"] = _basis.interaction_rotation(grams[src.name], M, rtol)

    layers = []
    for i, node in enumerate(nodes):
        b = bases[node.name]
        ib = b["interaction"]
        effect = None
        if projection_check and i + 1 < len(nodes):
            effect = projection_effect(model, node, nodes[i + 1], batches, main, ib.C_pinv.T @ ib.C.T)
        layers.append(LayerResult(
            name=node.name, width=ib.width, kept_activations=ib.kept_activations, interaction_directions=ib.size,
            directions_99={kind: directions_for_share(b[kind].importance) for kind in KINDS},
            importance=ib.importance.tolist(), gram_eigenvalues=b["pca"].gram_eigenvalues.tolist(),
            gradient_eigenvalues=None if ib.gradient_eigenvalues is None else ib.gradient_eigenvalues.tolist(),
            projection_effect=effect))

    pairs, edges = [], {}
    for src, dst in zip(nodes[:-1], nodes[1:]):
        by_kind = edge_attributions(model, src, dst, batches, main,
                                    {kind: (bases[src.name][kind], bases[dst.name][kind]) for kind in KINDS},
                                    progress=progress, integration_steps=integration_steps)
        edges[(src.name, dst.name)] = by_kind
        pairs.append(PairResult(src.name, dst.name, {k: edge_sparsity(v) for k, v in by_kind.items()},
                                {k: _top_edges(v) for k, v in by_kind.items()}))
    attribution = ("gradient x activation" if integration_steps <= 0
                   else f"integrated gradients ({integration_steps} midpoint steps)")
    return InteractionReport(model=model_name, rows=rows, rtol=rtol, layers=layers, pairs=pairs, attribution=attribution,
                             bases=bases, edges=edges)
