"""PNG figures for a DepthReport, in the style of Csordás et al. 2025 (matplotlib, Agg)."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _finish(fig, out_dir: str, name: str, written: list[str]):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    written.append(path)


def _half_line(ax, num_layers: int):
    ax.axvline((num_layers - 1) / 2, color="grey", lw=0.8, ls=":")


def plot_report(report, out_dir: str) -> list[str]:
    written: list[str] = []
    title = os.path.basename(str(report.model).rstrip("/")) or str(report.model)
    L = report.num_layers
    layers = np.arange(L)
    c = report.contributions
    if c is not None:
        excluded = ", ".join(map(str, c.excluded_positions)) or "none"
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
        ax = axes[0]
        ax.plot(layers, c.attn_ratio, "o-", ms=3, label="attention ‖a‖/‖h‖")
        ax.plot(layers, c.mlp_ratio, "s-", ms=3, label="MLP ‖m‖/‖h+a‖")
        ax.plot(layers, c.layer_ratio, "^-", ms=3, label="layer ‖Δh‖/‖h‖")
        ax.set_xlabel("Layer")
        ax.set_ylabel("Relative contribution")
        ax.set_yscale("log")
        _half_line(ax, L)
        ax.legend(fontsize=8)
        ax = axes[1]
        ax.plot(layers, c.attn_cos, "o-", ms=3, label="cos(a, h)")
        ax.plot(layers, c.mlp_cos, "s-", ms=3, label="cos(m, h+a)")
        ax.plot(layers, c.layer_cos, "^-", ms=3, label="cos(Δh, h)")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("Layer")
        ax.set_ylabel("Cosine similarity")
        _half_line(ax, L)
        ax.legend(fontsize=8)
        fig.suptitle(f"{title}: contributions to the residual stream (excluded positions: {excluded})", fontsize=9)
        _finish(fig, out_dir, "contributions.png", written)

        if c.outliers:
            fig, ax = plt.subplots(figsize=(6, 3))
            idx = np.arange(len(c.outliers))
            ax.plot(idx, [o["first_position"][0]["share"] for o in c.outliers], "o-", ms=3,
                    label="position 0: top dimension")
            ax.plot(idx, [o["other_positions"][0]["share"] for o in c.outliers], "s-", ms=3,
                    label="other positions: top dimension")
            ax.set_xlabel("Residual stream h_l")
            ax.set_ylabel("Share of ‖h‖²")
            ax.set_ylim(0, 1)
            ax.legend(fontsize=8)
            ax.set_title(f"{title}: largest outlier dimension", fontsize=9)
            _finish(fig, out_dir, "outliers.png", written)

    s = report.skip
    if s is not None:
        for kind in s.kinds:
            matrix = np.array(s.layer_effect[kind])
            fig, ax = plt.subplots(figsize=(6.5, 5))
            image = ax.imshow(matrix, vmin=0, vmax=1, interpolation="nearest", cmap="viridis")
            ax.set_ylabel(f"{ {'layer': 'Layer', 'attn': 'Attention', 'mlp': 'MLP'}[kind]} skipped")
            ax.set_xlabel("Effect @ layer")
            fig.colorbar(image, ax=ax, label="Relative change", fraction=0.046)
            ax.set_title(f"{title}: skip {kind} (mode {s.mode})", fontsize=9)
            _finish(fig, out_dir, f"skip_{kind}.png", written)
        fig, ax = plt.subplots(figsize=(7, 3))
        width = 0.8 / len(s.kinds)
        for i, kind in enumerate(s.kinds):
            ax.bar(layers + (i - (len(s.kinds) - 1) / 2) * width, s.output_effect[kind], width, label=kind)
        ax.set_xlabel("Layer skipped")
        ax.set_ylabel("Max ‖p − p′‖₂")
        ax.set_xlim(-1, L)
        _half_line(ax, L)
        ax.legend(fontsize=8)
        ax.set_title(f"{title}: effect of skipping on the output", fontsize=9)
        _finish(fig, out_dir, "skip_output.png", written)

    lens = report.lens
    if lens is not None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3))
        idx = np.arange(len(lens.kl))
        axes[0].plot(idx, lens.kl, "o-", ms=3)
        axes[0].set_xlabel("Residual stream h_l")
        axes[0].set_ylabel("KL(final ‖ lens) [nats]")
        axes[1].plot(idx, lens.topk_overlap, "o-", ms=3, color="C1")
        axes[1].set_xlabel("Residual stream h_l")
        axes[1].set_ylabel(f"Top-{lens.k} overlap")
        axes[1].set_ylim(0, 1.02)
        fig.suptitle(f"{title}: logit lens", fontsize=9)
        _finish(fig, out_dir, "logit_lens.png", written)

    m = report.linear_map
    if m is not None:
        matrix = np.array(m.relative_error)
        fig, ax = plt.subplots(figsize=(6, 5))
        image = ax.imshow(matrix, vmin=0, vmax=min(1.0, float(matrix.max())), interpolation="nearest",
                          cmap="viridis_r", aspect="auto")
        ax.set_ylabel(f"{m.source} layer (source)")
        ax.set_xlabel(f"{m.target} layer (target)")
        fig.colorbar(image, ax=ax, label="Relative error", fraction=0.046)
        ax.set_title("Linear maps between residual streams", fontsize=9)
        _finish(fig, out_dir, "linear_map.png", written)
    return written
