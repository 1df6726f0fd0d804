"""PNG figures for a DepthReport, in the style of Csordás et al. 2025 (matplotlib, Agg).

:func:`figure_list` names every figure :func:`plot_report` draws with a sentence on what it shows
(report.md quotes them); a figure that would mislead is not drawn, and report.md says why.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from .skip import skip_output_refusal  # noqa: E402

__all__ = ["figure_list", "plot_report", "SKIP_CLIP"]

#: the skip matrices' colour scale is clipped here (a relative change of 1 = the layer's
#: contribution changed by its own size); larger values read "≥ 1" on the colour bar
SKIP_CLIP = 1.0
_KIND_LABEL = {"layer": "Layer", "attn": "Attention", "mlp": "MLP"}


def figure_list(report) -> list[tuple[str, str]]:
    """(file name, what the figure shows) for every figure :func:`plot_report` writes."""
    out = []
    c, s = report.contributions, report.skip
    if c is not None:
        out.append(("contributions.png",
                    "relative contribution of attention, MLP and the whole layer to the residual stream per layer: "
                    "left all layers (log axis), middle without layer 0 (linear axis, so the later layers are not "
                    "squashed by layer 0's ratio), right the cosines with the stream"))
        if c.outliers:
            out.append(("outliers.png",
                        "share of E‖h‖² held by the largest residual dimension at each layer, over all tokens and at "
                        "position 0 (each point labelled with its dimension, so a hand-over from one dimension to "
                        "another shows), with the largest |h| entry on a log axis below"))
    if s is not None:
        for kind in s.kinds:
            out.append((f"skip_{kind}.png",
                        f"relative change of every later layer's contribution when {_KIND_LABEL[kind].lower()} of one "
                        f"layer is skipped (row: skipped layer, column: measured layer), colour clipped at "
                        f"{SKIP_CLIP:g} (the bar reads ≥ {SKIP_CLIP:g} there); grey: not measured (earlier layers)"))
        if skip_output_refusal(s) is None:
            out.append(("skip_output.png",
                        "change of the next-token distribution ‖p − p′‖₂ when a layer is skipped: median and quartiles "
                        "over the samples (prompts × positions), × the maximum"))
    if report.lens is not None:
        out.append(("logit_lens.png", "KL(final ‖ lens) and top-k overlap of the logit lens at each residual stream h_l"))
    if report.linear_map is not None:
        out.append(("linear_map.png", "relative error of the ridge map from each source layer to each target layer"))
    return out


def _finish(fig, out_dir: str, name: str, written: list[str]):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    written.append(path)


def _half_line(ax, num_layers: int):
    ax.axvline((num_layers - 1) / 2, color="grey", lw=0.8, ls=":")


def _plain_log_labels(ax):
    """Log axis with labels at 1, 2 and 5 per decade, written as plain numbers."""
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _contributions(report, title, out_dir, written):
    c = report.contributions
    L = report.num_layers
    layers = np.arange(L)
    excluded = ", ".join(map(str, c.excluded_positions)) or "none"
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
    series = ((c.attn_ratio, "o-", "attention ‖a‖/‖h‖"), (c.mlp_ratio, "s-", "MLP ‖m‖/‖h+a‖"),
              (c.layer_ratio, "^-", "layer ‖Δh‖/‖h‖"))
    ax = axes[0]
    for values, style, label in series:
        ax.plot(layers, values, style, ms=3, label=label)
    ax.set_yscale("log")
    _plain_log_labels(ax)
    ax.set_xlabel("Layer")
    ax.set_ylabel("Relative contribution")
    ax.set_title("all layers (log axis)", fontsize=9)
    _half_line(ax, L)
    ax.legend(fontsize=8)
    ax = axes[1]
    for values, style, label in series:
        ax.plot(layers[1:], values[1:], style, ms=3, label=label)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Layer")
    ax.set_ylabel("Relative contribution")
    ax.set_title(f"without layer 0 (layer 0: ‖Δh‖/‖h‖ = {c.layer_ratio[0]:.2f})", fontsize=9)
    _half_line(ax, L)
    ax = axes[2]
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


def _outliers(report, title, out_dir, written):
    c = report.contributions
    idx = np.arange(len(c.outliers))
    fig, (ax, mag) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for key, style, label in (("all_positions", "o-", "all tokens"), ("first_position", "s--", "position 0")):
        if not all(o.get(key) for o in c.outliers):
            continue
        dims = [o[key][0]["dim"] for o in c.outliers]
        shares = [o[key][0]["share"] for o in c.outliers]
        line, = ax.plot(idx, shares, style, ms=3, label=f"{label}: top dimension's share of E‖h‖²")
        for i, (dim, share) in enumerate(zip(dims, shares)):
            if i == 0 or dim != dims[i - 1]:  # label where the top dimension changes hands
                ax.annotate(str(dim), (i, share), textcoords="offset points", xytext=(0, 5), fontsize=7,
                            color=line.get_color(), ha="center")
    ax.set_ylabel("Share of E‖h‖²")
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{title}: largest residual dimension (numbers: the dimension, where it changes)", fontsize=9)
    mag.plot(idx, [max(o["max_abs_first"], 1e-12) for o in c.outliers], "s--", ms=3, label="max |h| at position 0")
    mag.plot(idx, [max(o["max_abs_other"], 1e-12) for o in c.outliers], "o-", ms=3, label="max |h| elsewhere")
    mag.set_yscale("log")
    mag.set_ylabel("Magnitude")
    mag.set_xlabel("Residual stream h_l")
    mag.legend(fontsize=8)
    _finish(fig, out_dir, "outliers.png", written)


def _skip_matrix(s, kind, title, out_dir, written):
    matrix = np.array(s.layer_effect[kind], dtype=float)
    L = matrix.shape[0]
    measured = np.triu(np.ones((L, L), dtype=bool))  # effects on layers j >= the skipped one
    shown = np.ma.masked_array(np.minimum(matrix, SKIP_CLIP), mask=~measured)
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    image = ax.imshow(shown, vmin=0, vmax=SKIP_CLIP, interpolation="nearest", cmap=cmap)
    ax.set_ylabel(f"{_KIND_LABEL[kind]} skipped")
    ax.set_xlabel("Effect @ layer")
    top = float(matrix[measured].max()) if measured.any() else 0.0
    clipped = top > SKIP_CLIP
    bar = fig.colorbar(image, ax=ax, label="Relative change", fraction=0.046, extend="max" if clipped else "neither")
    ticks = np.linspace(0, SKIP_CLIP, 5)
    bar.set_ticks(ticks)
    bar.set_ticklabels([f"{t:g}" for t in ticks[:-1]] + [f"≥ {SKIP_CLIP:g}" if clipped else f"{SKIP_CLIP:g}"])
    ax.set_title(f"{title}: skip {kind} (mode {s.mode}); max {top:.3g}; grey: not measured", fontsize=9)
    _finish(fig, out_dir, f"skip_{kind}.png", written)


def _skip_output(s, title, out_dir, written, L):
    layers = np.arange(L)
    fig, ax = plt.subplots(figsize=(7, 3))
    width = 0.8 / len(s.kinds)
    n = min(len(v) for kind in s.kinds for v in s.output_samples[kind])
    for i, kind in enumerate(s.kinds):
        x = layers + (i - (len(s.kinds) - 1) / 2) * width
        values = [np.asarray(v, dtype=float) for v in s.output_samples[kind]]
        q1, median, q3 = (np.array([np.percentile(v, q) for v in values]) for q in (25, 50, 75))
        line = ax.errorbar(x, median, yerr=[median - q1, q3 - median], fmt="o", ms=3, capsize=2, lw=1, label=kind)
        ax.plot(x, [v.max() for v in values], "x", ms=4, color=line[0].get_color())
    ax.set_xlabel("Layer skipped")
    ax.set_ylabel("‖p − p′‖₂")
    ax.set_xlim(-1, L)
    _half_line(ax, L)
    ax.legend(fontsize=8)
    ax.set_title(f"{title}: effect of skipping on the output (median, quartiles, × max; {n}+ samples per layer)",
                 fontsize=9)
    _finish(fig, out_dir, "skip_output.png", written)


def plot_report(report, out_dir: str) -> list[str]:
    written: list[str] = []
    title = os.path.basename(str(report.model).rstrip("/")) or str(report.model)
    L = report.num_layers
    planned = {name for name, _ in figure_list(report)}
    c = report.contributions
    if c is not None:
        _contributions(report, title, out_dir, written)
        if c.outliers:
            _outliers(report, title, out_dir, written)
    s = report.skip
    if s is not None:
        for kind in s.kinds:
            _skip_matrix(s, kind, title, out_dir, written)
        if "skip_output.png" in planned:
            _skip_output(s, title, out_dir, written, L)

    lens = report.lens
    if lens is not None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3))
        idx = np.arange(len(lens.kl))
        # a sampled lens draws its 95 % intervals (an exact one has none to draw)
        kl_err = None if lens.exact else 1.96 * np.asarray(lens.kl_se)
        overlap_err = None if lens.exact else 1.96 * np.asarray(lens.topk_overlap_se)
        axes[0].errorbar(idx, lens.kl, yerr=kl_err, fmt="o-", ms=3, capsize=2)
        axes[0].set_xlabel("Residual stream h_l")
        axes[0].set_ylabel("KL(final ‖ lens) [nats]")
        axes[1].errorbar(idx, lens.topk_overlap, yerr=overlap_err, fmt="o-", ms=3, color="C1", capsize=2)
        axes[1].set_xlabel("Residual stream h_l")
        axes[1].set_ylabel(f"Top-{lens.k} overlap")
        axes[1].set_ylim(0, 1.02)
        what = (f"exact, {lens.num_tokens} tokens" if lens.exact else
                f"{lens.sampled_tokens} of {lens.num_tokens} tokens sampled, 95 % intervals")
        fig.suptitle(f"{title}: logit lens ({what})", fontsize=9)
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
    assert {os.path.basename(p) for p in written} == planned, "figure_list and plot_report disagree"
    return written
