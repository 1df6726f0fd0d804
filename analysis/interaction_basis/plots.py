"""Figures of an InteractionReport: per-direction importance of every layer in the three bases,
and the interaction graph (layers as columns of directions, the strongest edges drawn)."""
from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_report", "plot_importance", "plot_graph"]

COLOURS = {"interaction": "tab:red", "pca": "tab:blue", "neuron": "tab:gray"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_importance(report, path: str) -> str:
    """Per layer: each basis's importance of its directions, sorted, as a share of the total (log)."""
    plt = _plt()
    n = len(report.layers)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False)
    for ax, layer in zip(axes[0], report.layers):
        for kind in ("neuron", "pca", "interaction"):
            values = np.sort(np.abs(report.bases[layer.name][kind].importance))[::-1]
            if values.sum() > 0:
                ax.semilogy(np.arange(1, len(values) + 1), values / values.sum(), color=COLOURS[kind], label=kind, lw=1.2)
        ax.set_title(f"{layer.name}\n{layer.interaction_directions} of {layer.width} directions kept", fontsize=8)
        ax.set_xlabel("direction (sorted)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("share of importance", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_graph(report, path: str, kind: str = "interaction", max_nodes: int = 24, max_edges: int = 80) -> str:
    """The interaction graph in basis ``kind``: the ``max_nodes`` most important directions of each
    layer as a column, the ``max_edges`` strongest edges of each pair as lines (width ∝ attribution)."""
    plt = _plt()
    columns = len(report.layers)
    fig, ax = plt.subplots(figsize=(2.2 * columns + 1, 4.5))
    shown = []
    for x, layer in enumerate(report.layers):
        importance = np.abs(report.bases[layer.name][kind].importance)
        keep = np.argsort(importance)[::-1][:max_nodes]
        ys = {int(d): 1 - r / max(1, len(keep) - 1) for r, d in enumerate(keep)}
        shown.append(ys)
        sizes = 10 + 120 * importance[keep] / max(importance.max(), 1e-300)
        ax.scatter([x] * len(keep), list(ys.values()), s=sizes, color=COLOURS[kind], zorder=3)
        ax.text(x, 1.08, f"{layer.name}\n({len(importance)} dirs)", ha="center", fontsize=7)
    for x, pair in enumerate(report.pairs):
        edges = report.edges[(pair.src, pair.dst)][kind]
        order = np.argsort(edges.ravel())[::-1]
        top = edges.ravel()[order[0]] if len(order) else 0
        drawn = 0
        for flat in order:
            if drawn >= max_edges or top <= 0:
                break
            j, i = divmod(int(flat), edges.shape[1])
            if i in shown[x] and j in shown[x + 1]:
                w = edges[j, i] / top
                ax.plot([x, x + 1], [shown[x][i], shown[x + 1][j]], color="k", alpha=0.15 + 0.6 * w, lw=0.3 + 2.5 * w)
                drawn += 1
    ax.set_xlim(-0.5, columns - 0.5)
    ax.set_ylim(-0.1, 1.25)
    ax.axis("off")
    ax.set_title(f"interaction graph, {kind} basis (strongest {max_edges} edges per layer pair)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_report(report, folder: str) -> list[str]:
    paths = [plot_importance(report, os.path.join(folder, "importance.png"))]
    for kind in ("interaction", "neuron"):
        paths.append(plot_graph(report, os.path.join(folder, f"graph_{kind}.png"), kind=kind))
    return paths
