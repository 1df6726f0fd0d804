"""Figures of a GeometryReport: the pairwise CKA and RSA matrices, and per-layer measures."""
from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_report"]


def plot_report(report, folder: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = report.names
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.2 * len(names), 2.5 + 0.5 * len(names)))
    for ax, matrix, title in ((axes[0], report.cka, "linear CKA (unbiased HSIC)"), (axes[1], report.rsa, "RSA (Spearman)")):
        m = np.array(matrix, dtype=float)
        image = ax.imshow(m, vmin=min(0.0, np.nanmin(m)), vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        for (i, j), value in np.ndenumerate(m):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="w" if value < 0.6 else "k")
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = os.path.join(folder, "similarity.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
