"""Figures of a DNR result: the rate per layer, and the training curve when there is one."""
from __future__ import annotations

from pathlib import Path

from .core import DNRResult


def plot_layers(result: DNRResult, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if result.curve else 1, figsize=(9 if result.curve else 5, 3.5), squeeze=False)
    ax = axes[0][0]
    names = list(result.layers)
    ax.bar(range(len(names)), [result.layers[n] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("dead neuron rate")
    ax.set_title(f"DNR {result.rate:.3f}")
    if result.curve:
        ax = axes[0][1]
        ax.plot([p["step"] for p in result.curve], [p["rate"] for p in result.curve])
        ax.set_xlabel("step")
        ax.set_ylabel("dynamic DNR")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
