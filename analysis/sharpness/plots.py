"""Figures of a SharpnessReport: Hutchinson's running trace estimate with its interval (and the
exact trace when known), and the top Lanczos eigenvalues against the exact spectrum."""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["plot_report"]


def plot_report(report, folder: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    files = []
    samples = np.asarray(report.trace.samples, dtype=float)
    k = np.arange(1, len(samples) + 1)
    running = np.cumsum(samples) / k
    sd = np.array([samples[:i].std(ddof=1) if i > 1 else np.nan for i in k])
    half = np.array([stats.t.ppf(0.5 + report.trace.confidence / 2, i - 1) if i > 1 else np.nan for i in k]) * sd / np.sqrt(k)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(k, running, label="Hutchinson running mean")
    ax.fill_between(k, running - half, running + half, alpha=0.25,
                    label=f"{int(round(100 * report.trace.confidence))} % interval")
    if report.exact is not None:
        ax.axhline(report.exact.trace, color="k", ls="--", lw=1, label="exact trace")
    files.append(_finish(plt, fig, ax, "probes", "tr(H)",
                         f"trace of the Hessian: {os.path.basename(str(report.model).rstrip('/'))}",
                         os.path.join(folder, "trace.png")))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    top = report.top.eigenvalues
    if report.exact is not None:
        ex = report.exact.eigenvalues
        ax.plot(np.arange(1, len(ex) + 1), ex, ".", color="0.6", ms=3, label="exact spectrum")
    ax.plot(np.arange(1, len(top) + 1), top, "o", mfc="none", color="C3",
            label=f"Lanczos top {len(top)} ({report.top.iterations} steps)")
    ax.set_xscale("log")
    if report.exact is not None and min(report.exact.eigenvalues) < 0 < max(report.exact.eigenvalues):
        ax.set_yscale("symlog", linthresh=max(1e-6, abs(top[0]) * 1e-4) if math.isfinite(top[0]) else 1e-6)
    files.append(_finish(plt, fig, ax, "rank", "eigenvalue", "Hessian eigenvalues",
                         os.path.join(folder, "eigenvalues.png")))
    return files


def _finish(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: str) -> str:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
