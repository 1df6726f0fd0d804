"""Figures for layer dropping: importance per layer, and the sweep (perplexity, decode speed-up)."""
from __future__ import annotations

import math
from typing import Sequence

from .evaluation import EvalResult
from .scores import ScoreResult

__all__ = ["plot_scores", "plot_sweep"]


def plot_scores(scores: ScoreResult, path: str, *, kind: str | None = None, dropped: Sequence[int] = (),
                title: str = "") -> str:
    """Importance 1 − cos(X, out) per layer for attention, MLP and block (log scale); the
    dropped modules of ``kind`` hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L = scores.num_layers
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * L + 2), 3.4))
    width = 0.27
    for offset, name, label in ((-width, "attn", "attention"), (0, "mlp", "MLP"), (width, "block", "block")):
        values = [float("nan") if v is None else float(v) for v in scores.of(name)]
        bars = ax.bar([l + offset for l in range(L)], [max(1 - v, 1e-7) if not math.isnan(v) else 0 for v in values],
                      width, label=label)
        if name == kind:
            for l in dropped:
                if l < L:
                    bars[l].set_hatch("//")
                    bars[l].set_edgecolor("black")
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("importance 1 − cos(X, out)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_sweep(rows: Sequence[EvalResult], path: str, title: str = "") -> str:
    """Perplexity and decode tokens/s against k, one line per kind × mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = rows[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    groups: dict[tuple, list] = {}
    for r in rows[1:]:
        groups.setdefault((r.kind, r.mode), []).append(r)
    for (kind, mode), group in groups.items():
        ks = [0] + [r.k for r in group]
        style = "-" if mode == "one-shot" else "--"
        axes[0].plot(ks, [base.perplexity] + [r.perplexity for r in group], "o" + style, ms=3, label=f"{kind} {mode}")
        intervals = [(r.speed or {}).get("decode_speedup") for r in group]
        if all(intervals):  # paired rounds: the median speed-up with its quartiles as error bars;
            # hollow markers where the quartiles include no change ("not resolved")
            median = [1.0] + [i["median"] for i in intervals]
            low = [0.0] + [i["median"] - i["quartiles"][0] for i in intervals]
            high = [0.0] + [i["quartiles"][1] - i["median"] for i in intervals]
            line = axes[1].errorbar(ks, median, yerr=[low, high], fmt=style, capsize=3, lw=1, label=f"{kind} {mode}")
            color = line[0].get_color()
            for x, y, i in zip(ks[1:], median[1:], intervals):
                axes[1].plot([x], [y], "o", ms=5, color=color, mfc=color if i["resolved"] else "white")
        elif base.decode_tokens_per_s:
            axes[1].plot(ks, [1.0] + [(r.decode_tokens_per_s or float("nan")) / base.decode_tokens_per_s for r in group],
                         "o" + style, ms=3, label=f"{kind} {mode}")
    axes[0].axhline(1.1 * base.perplexity, color="grey", lw=0.8, ls=":")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("k dropped")
    axes[0].set_ylabel("perplexity")
    axes[1].set_xlabel("k dropped")
    axes[1].set_ylabel("decode speed-up (× full)")
    axes[1].axhline(1.0, color="grey", lw=0.8, ls=":")
    if any(r.speed for r in rows[1:]):
        axes[1].set_title("median [quartiles] of paired rounds; hollow: not resolved", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
