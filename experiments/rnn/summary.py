"""Aggregate the recurrent experiments' cells into summary JSONs and figures.

    python experiments/rnn/run.py summary

experiments/results/rnn_baselines/summary.json, rnn_pruning/summary.json, rnn_graphs/summary.json;
figures under docs/figures/rnn/.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from common import RESULTS, ROOT, write_cell

FIGURES = ROOT / "docs" / "figures" / "rnn"
PROPERTIES = ("clustering", "average_path_length", "degree_std", "edges")


def cells(topic: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((RESULTS / topic).glob("*__*.json"))]


def mean_std(values) -> dict:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, "n": len(values)}


def baselines_summary() -> dict:
    table: dict = {}
    for c in cells("rnn_baselines"):
        table.setdefault(c["dataset"], {}).setdefault(c["model"], []).append(c["test_accuracy"])
    out = {ds: {m: mean_std(v) for m, v in models.items()} for ds, models in table.items()}
    out["e3_paired"] = e3_paired()
    return out


E3_PAIRS = (("ts_lstm", "lstm"), ("ts_lstm", "cnn1d"), ("temporal_inception", "lstm"), ("temporal_inception", "cnn1d"))


def e3_paired() -> dict:
    """Ma et al.'s claim, seed by seed: per data set, each of TS-LSTM and Temporal-Inception minus
    the plain LSTM and the 1-D CNN (same seed, same split), mean ± std of the differences and
    how many seeds the first one wins / ties / loses."""
    by: dict = {}
    for c in cells("rnn_baselines"):
        by.setdefault(c["dataset"], {}).setdefault(c["model"], {})[c["seed"]] = c["test_accuracy"]
    out: dict = {}
    for ds, models in by.items():
        for a, b in E3_PAIRS:
            seeds = sorted(set(models.get(a, {})) & set(models.get(b, {})))
            if not seeds:
                continue
            diffs = [models[a][s] - models[b][s] for s in seeds]
            out.setdefault(ds, {})[f"{a}-{b}"] = {**mean_std(diffs), "wins": sum(d > 0 for d in diffs),
                                                  "ties": sum(d == 0 for d in diffs), "losses": sum(d < 0 for d in diffs)}
    return out


def segments_summary() -> dict:
    """The segmentation ablation: per data set and num_segments, ts_lstm's test accuracy (mean ±
    std over seeds); num_segments 3 from the baselines' ts_lstm cells."""
    table: dict = {}
    for c in cells("rnn_segments"):
        table.setdefault(c["dataset"], {}).setdefault(c["num_segments"], []).append(c["test_accuracy"])
    for c in cells("rnn_baselines"):
        if c["model"] == "ts_lstm" and c["dataset"] in table:
            table[c["dataset"]].setdefault(3, []).append(c["test_accuracy"])
    return {ds: {str(k): mean_std(v) for k, v in sorted(by_k.items())} for ds, by_k in table.items()}


def pruning_summary(tolerance: float = 0.01) -> dict:
    """Per cell type and sparsity: dense and after-pruning accuracy, each recovery epoch's, and the
    epochs until the accuracy is within `tolerance` of the dense model's (0: it never dropped; null: not within the epochs run)."""
    out: dict = {}
    for c in cells("rnn_pruning"):
        curve = [c["accuracy_after_pruning"], *c["accuracy_per_recovery_epoch"]]
        within = [e for e, a in enumerate(curve) if a >= c["dense_accuracy"] - tolerance]
        out.setdefault(c["cell"], {})[f"{c['sparsity']:.1f}"] = {
            "dense": c["dense_accuracy"], "after_pruning": c["accuracy_after_pruning"],
            "per_epoch": c["accuracy_per_recovery_epoch"], "epochs_to_recover": within[0] if within else None,
            "measured_sparsity": c["measured_sparsity"], "stayed_zero": c["pruned_weights_stayed_zero"],
        }
    return {"tolerance": tolerance, "cells": out}


def _bootstrap_spearman(x, y, rng, n: int = 2000):
    from scipy.stats import spearmanr

    values = []
    for _ in range(n):
        idx = rng.integers(0, len(x), len(x))
        if len(set(x[idx])) > 1 and len(set(y[idx])) > 1:
            values.append(spearmanr(x[idx], y[idx]).statistic)
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def graph_study(rows: list[dict]) -> dict:
    """Accuracy against each graph property over one study's graphs: Pearson r with its Fisher-z
    95 % interval, Spearman rho with a bootstrap 95 % interval; the property that predicts best."""
    from scipy.stats import pearsonr, spearmanr

    y = np.array([r["test_accuracy"] for r in rows])
    rng = np.random.default_rng(0)
    correlations = {}
    for prop in PROPERTIES:
        x = np.array([r["properties"][prop] for r in rows], dtype=float)
        pearson = pearsonr(x, y)
        z, se = math.atanh(max(min(pearson.statistic, 0.999999), -0.999999)), 1 / math.sqrt(len(x) - 3)
        correlations[prop] = {
            "pearson": float(pearson.statistic), "pearson_p": float(pearson.pvalue),
            "pearson_ci95": [math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)],  # Fisher z
            "spearman": float(spearmanr(x, y).statistic), "spearman_ci95": _bootstrap_spearman(x, y, rng),
        }
    best = max(("clustering", "average_path_length", "degree_std"), key=lambda p: abs(correlations[p]["spearman"]))
    by_kind = {}
    for r in rows:
        by_kind.setdefault(r["graph"]["graph"], []).append(r["test_accuracy"])
    return {"graphs": len(rows), "cell": rows[0]["cell"], "hidden_size": rows[0]["hidden_size"], "epochs": rows[0]["epochs"],
            "dataset": rows[0]["dataset"], "accuracy": mean_std(y), "accuracy_by_generator": {k: mean_std(v) for k, v in by_kind.items()},
            "correlations": correlations, "best_predictor": best}


def study_key(row: dict) -> str:
    return f"{row['dataset']}__{row['cell']}__h{row['hidden_size']}__e{row['epochs']}__s{row['seed']}"


def graphs_summary() -> dict:
    """One study per (data set, cell, hidden size, epochs, seed)."""
    studies: dict = {}
    for r in cells("rnn_graphs"):
        studies.setdefault(study_key(r), []).append(r)
    return {"studies": {key: graph_study(rows) for key, rows in studies.items() if len(rows) >= 4}}


def plots(pruning: dict, graphs: dict, segments: dict | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    written = []
    if pruning["cells"]:
        fig, axes = plt.subplots(1, len(pruning["cells"]), figsize=(3.2 * len(pruning["cells"]), 3), sharey=True, squeeze=False)
        for ax, (cell, by_sparsity) in zip(axes[0], sorted(pruning["cells"].items())):
            for sparsity, r in sorted(by_sparsity.items()):
                ax.plot(range(len(r["per_epoch"]) + 1), [r["after_pruning"], *r["per_epoch"]], marker=".", label=sparsity,
                        color=plt.cm.viridis(float(sparsity)))
            ax.axhline(next(iter(by_sparsity.values()))["dense"], color="k", ls="--", lw=0.8)
            ax.set(title=cell, xlabel="fine-tuning epoch (0 = right after pruning)")
        axes[0][0].set_ylabel("test accuracy")
        axes[0][-1].legend(title="sparsity", fontsize=6)
        fig.tight_layout()
        written.append(FIGURES / "pruning_recovery.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if segments:
        fig, ax = plt.subplots(figsize=(4.5, 3))
        for ds, by_k in sorted(segments.items()):
            ks = sorted(by_k, key=int)
            ax.errorbar([int(k) for k in ks], [by_k[k]["mean"] for k in ks], yerr=[by_k[k]["std"] for k in ks],
                        marker="o", capsize=3, label=ds)
        ax.set(xlabel="num_segments (1 = one window: the plain LSTM's reading)", ylabel="test accuracy (mean ± std)",
               title="TS-LSTM segmentation ablation")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(FIGURES / "ts_lstm_segments.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    by_study: dict = {}
    for r in cells("rnn_graphs"):
        by_study.setdefault(study_key(r), []).append(r)
    for key, rows in by_study.items():
        fig, axes = plt.subplots(1, 3, figsize=(10, 3), sharey=True)
        colours = {"watts_strogatz": "C0", "barabasi_albert": "C1", "erdos_renyi": "C2"}
        correlations = graphs.get("studies", {}).get(key, {}).get("correlations", {})
        for ax, prop in zip(axes, ("clustering", "average_path_length", "degree_std")):
            for kind, colour in colours.items():
                sel = [r for r in rows if r["graph"]["graph"] == kind]
                ax.scatter([r["properties"][prop] for r in sel], [r["test_accuracy"] for r in sel], s=12, c=colour, label=kind)
            rho = correlations.get(prop, {}).get("spearman")
            ax.set(xlabel=prop, title=f"Spearman {rho:.2f}" if rho is not None else prop)
        axes[0].set_ylabel("test accuracy")
        axes[0].legend(fontsize=6)
        fig.suptitle(key, fontsize=8)
        fig.tight_layout()
        written.append(FIGURES / f"graph_properties__{key}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def summarise() -> list[Path]:
    baselines, pruning, graphs, segments = baselines_summary(), pruning_summary(), graphs_summary(), segments_summary()
    written = []
    for topic, payload in (("rnn_baselines", baselines), ("rnn_pruning", pruning), ("rnn_graphs", graphs),
                           ("rnn_segments", segments)):
        write_cell(topic, "summary", payload)
        written.append(RESULTS / topic / "summary.json")
    return written + plots(pruning, graphs, segments)
