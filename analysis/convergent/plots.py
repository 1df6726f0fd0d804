"""Figures of a ConvergentReport, in the style of Li et al. 2015: correlation matrices sorted by
the matching, matched correlation across units against the baseline, per-layer summaries,
sparse-prediction paths and the joint correlation matrix sorted by spectral group."""
from __future__ import annotations

import os
import re

import numpy as np


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80]


def _pair_tag(c) -> str:
    return f"{_slug(os.path.basename(c.model_a.rstrip('/')))}--{_slug(os.path.basename(c.model_b.rstrip('/')))}"


def plot_report(report, folder: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    files = []
    for c in report.comparisons:
        tag = f"{_slug(c.layer)}__{_pair_tag(c)}"
        # 1. correlation matrices: within A, A×B as is, A×B sorted by the matching
        if c.correlation is not None:
            panels = []
            if c.correlation_aa is not None:
                panels.append((c.correlation_aa, f"within {c.model_a}"))
            panels.append((c.correlation, f"{c.model_a} × {c.model_b}"))
            rows, cols = c.matching.order()
            panels.append((c.correlation[np.ix_(rows, cols)], "sorted by one-to-one matching"))
            fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 4))
            for ax, (mat, title) in zip(axes, panels):
                im = ax.imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
                ax.set_title(title, fontsize=9)
                ax.set_xlabel(f"units of {c.model_b if mat is not c.correlation_aa else c.model_a}", fontsize=8)
                ax.set_ylabel(f"units of {c.model_a}", fontsize=8)
            fig.colorbar(im, ax=axes[len(panels) - 1], fraction=0.046)
            ax = axes[-1]
            x = np.arange(len(c.matched_curve))
            ax.plot(x, c.matched_curve, label=f"one-to-one (mean {c.mean_matched:.2f})")
            ax.plot(np.arange(len(c.semi_curve)), c.semi_curve, label=f"semi-matching (mean {c.mean_semi_matched:.2f})")
            if c.baseline_curve:
                ax.plot(np.arange(len(c.baseline_curve)), c.baseline_curve, "--",
                        label=f"random-rotation baseline ({c.baseline_mean:.2f})")
            ax.set_ylim(min(0, min(c.matched_curve + [0])), 1.02)
            ax.set_xlabel("unit rank", fontsize=8)
            ax.set_ylabel("correlation with partner", fontsize=8)
            ax.set_title("matched correlation across units", fontsize=9)
            ax.legend(fontsize=7)
            fig.suptitle(f"layer {c.layer}", fontsize=10)
            fig.tight_layout()
            path = os.path.join(folder, f"matching__{tag}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files.append(path)
        # 2. sparse prediction path
        if c.sparse is not None:
            fig, ax = plt.subplots(figsize=(4.5, 3.5))
            ax.plot(c.sparse.nonzeros, c.sparse.error, "o-", label="L1 map (λ path)")
            refit = [(n, e) for n, e in zip(c.sparse.nonzeros, c.sparse.refit_error or []) if e is not None]
            if refit:
                ax.plot(*zip(*refit), "s-", label="refitted on the chosen units")
            ax.axhline(c.sparse.single_unit_error, color="C1", ls="--", label="best single unit (semi-matching)")
            ax.axhline(c.sparse.full_error, color="C2", ls=":", label="dense linear map")
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel(f"nonzero weights per unit of {c.model_b}")
            ax.set_ylabel("normalised error (1 - R²)")
            ax.set_title(f"sparse prediction, {c.layer}", fontsize=9)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = os.path.join(folder, f"sparse__{tag}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files.append(path)
        # 3. joint matrix sorted by spectral group
        if c.clusters is not None and c.correlation_aa is not None:
            la, lb = np.array(c.clusters.labels_a), np.array(c.clusters.labels_b)
            oa, ob = np.argsort(la, kind="stable"), np.argsort(lb, kind="stable")
            fig, ax = plt.subplots(figsize=(5, 5))
            ax.imshow(c.correlation[np.ix_(oa, ob)], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_title(f"{c.layer}: {c.model_a} × {c.model_b}\nsorted by spectral group "
                         f"({c.clusters.mixed_share:.0%} of groups mixed)", fontsize=9)
            ax.set_xlabel(c.model_b, fontsize=8)
            ax.set_ylabel(c.model_a, fontsize=8)
            fig.tight_layout()
            path = os.path.join(folder, f"clusters__{tag}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files.append(path)
    # 4. per-layer summary
    if report.comparisons:
        fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(report.layers) + 2), 3.6))
        x = np.arange(len(report.layers))
        for key, label, style in (("mean_matched", "one-to-one", "o-"), ("mean_semi_matched", "semi-matching", "s-"),
                                  ("baseline_mean", "rotation baseline", "x--"), ("strong_share", "share strong", "^:")):
            values = [[getattr(c, key) for c in report.comparisons if c.layer == layer] for layer in report.layers]
            means = [np.nanmean(v) if v else np.nan for v in values]
            ax.plot(x, means, style, label=label)
        ax.set_xticks(x, report.layers, rotation=20, fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("mean correlation / share")
        ax.set_title("per-layer summary (mean over model pairs)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(folder, "layers_summary.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files
