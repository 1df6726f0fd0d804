"""Aggregate experiments/results/li2_grokking/*/ cells into summary.json and the figures in
docs/figures/li2_grokking/ (run by `python experiments/li2_grokking/run.py summary`)."""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np


def _cells(results: Path, subdir: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / subdir).glob("*.json"))]


def _first(curves, key, threshold):
    return next((c["step"] for c in curves if c.get(key) is not None and c[key] >= threshold), None)


def stages(cells: list[dict]) -> list[dict]:
    """Per long run: when the train set is fitted (end of lazy learning), when units turn into
    Fourier features, when the test set follows."""
    out = []
    for r in cells:
        curves = r["curves"]
        at_95 = next((c for c in curves if c["step"] == r["steps_to_95"]), None)
        out.append({
            "optimizer": r["optimizer"], "lr": r["muon_lr"] or r["lr"], "modulus": r["modulus"], "seed": r["seed"],
            "train_100_step": r["train_100_step"],
            "test_accuracy_at_train_100": next(c["test_accuracy"] for c in curves if c["step"] == r["train_100_step"]) if r["train_100_step"] is not None else None,
            "fourier_share_10pct_step": _first(curves, "fourier_share_90", 0.10),
            "test_50_step": _first(curves, "test_accuracy", 0.5),
            "steps_to_95": r["steps_to_95"],
            "fourier_share_at_95": at_95["fourier_share_90"] if at_95 else None,
            "fourier_share_max": max(c["fourier_share_90"] for c in curves),
            "fourier_concentration_mean_final": curves[-1]["fourier_concentration_mean"],
            "fourier_concentration_mean_init": curves[0]["fourier_concentration_mean"],
            "final_test_accuracy": curves[-1]["test_accuracy"], "max_steps": r["max_steps"],
        })
    return out


def arm_name(r: dict) -> str:
    """E.g. "adam lr 0.001", "muon lr 0.01 rms K 24" (K shown when not 256; "rms": adjust_lr_fn
    match_rms_adamw)."""
    name = f"{r['optimizer']} lr {r['muon_lr'] or r['lr']:g}"
    if r.get("muon_adjust_lr_fn") == "match_rms_adamw":
        name += " rms"
    return name + (f" K {r['hidden_dim']}" if r["hidden_dim"] != 256 else "")


def optimizers(cells: list[dict]) -> dict:
    arms = defaultdict(list)
    for r in cells:
        arms[arm_name(r)].append(r)
    out = {}
    for arm, runs in sorted(arms.items()):
        steps = [r["steps_to_95"] for r in runs]
        done = [s for s in steps if s is not None]
        out[arm] = {"seeds": [r["seed"] for r in runs], "steps_to_95": steps, "grokked": len(done), "runs": len(runs),
                    "median_steps_to_95": statistics.median(done) if len(done) == len(runs) else None,
                    "mean_steps_to_95": statistics.mean(done) if len(done) == len(runs) else None,
                    "max_steps": max(r["max_steps"] for r in runs), "hidden_dim": runs[0]["hidden_dim"],
                    "optimizer": runs[0]["optimizer"], "lr": runs[0]["muon_lr"] or runs[0]["lr"],
                    "adjust_lr_fn": runs[0].get("muon_adjust_lr_fn"),
                    "train_100_step": [r["train_100_step"] for r in runs],
                    "final_test_accuracy": [r["final"]["test_accuracy"] for r in runs],
                    "cpu_s": sum(r["cpu_s"] for r in runs)}
    return out


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - ((y - predicted) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def _origin_fit(x: np.ndarray, y: np.ndarray) -> dict:
    """Least squares y = a · x through the origin: a, residuals, relative residuals, R²."""
    a = float((x @ y) / (x @ x))
    return {"a": a, "residuals": (y - a * x).tolist(), "relative_residuals": ((y - a * x) / y).tolist(),
            "r2": _r2(y, a * x)}


def scaling(cells: list[dict]) -> dict:
    by_modulus = defaultdict(list)
    for r in cells:
        by_modulus[r["modulus"]].append(r)
    rows = []
    for m, runs in sorted(by_modulus.items()):
        runs.sort(key=lambda r: r["n_train"])
        grokked = [r for r in runs if r["grokked"]]
        failed = [r for r in runs if not r["grokked"]]
        n_crit = grokked[0]["n_train"] if grokked else None
        rows.append({"modulus": m, "m_log_m": m * math.log(m), "n_critical": n_crit,
                     "fraction_critical": grokked[0]["train_fraction"] if grokked else None,
                     "n_largest_failed": max((r["n_train"] for r in failed), default=None),
                     "tried": [[r["n_train"], r["grokked"], r["steps_to_95"], round(r["final"]["test_accuracy"], 4)] for r in runs],
                     "max_steps": max(r["max_steps"] for r in runs)})
    for row in rows:  # the bracket of the critical multiplier c = n / (M ln M)
        row["c_bracket"] = [row["n_largest_failed"] / row["m_log_m"] if row["n_largest_failed"] else None,
                            row["n_critical"] / row["m_log_m"] if row["n_critical"] else None]
    fit = {}
    done = [r for r in rows if r["n_critical"] is not None]
    if len(done) >= 2:
        ms = np.array([r["modulus"] for r in done], dtype=float)
        y = np.array([r["n_critical"] for r in done], dtype=float)
        fit = {"moduli": ms.astype(int).tolist(),
               "through_origin": _origin_fit(ms * np.log(ms), y),  # n = a · M ln M
               "m_squared": _origin_fit(ms**2, y),  # n = a · M² (the memorisation count's form)
               "linear_m": _origin_fit(ms, y)}  # n = a · M
        x = ms * np.log(ms)
        a1, b1 = (float(v) for v in np.polyfit(x, y, 1))  # n = a · M ln M + b
        fit["affine"] = {"a": a1, "b": b1, "residuals": (y - (a1 * x + b1)).tolist(), "r2": _r2(y, a1 * x + b1)}
        slope, intercept = np.polyfit(np.log(ms), np.log(y), 1)  # n ∝ M^slope
        fit["power_law_exponent"] = float(slope)
        fit["power_law"] = {"exponent": float(slope), "prefactor": float(np.exp(intercept)),
                            "r2": _r2(y, np.exp(intercept) * ms**slope)}
        large = ms >= 23  # the same power law over the larger moduli only (is the exponent settling?)
        if large.sum() >= 3:
            fit["power_law_m_ge_23"] = {"exponent": float(np.polyfit(np.log(ms[large]), np.log(y[large]), 1)[0]),
                                        "m_log_m_exponent": float(np.polyfit(np.log(ms[large]), np.log(ms[large] * np.log(ms[large])), 1)[0])}
        # M ln M's own local exponent over the range, to set beside the fitted one
        fit["m_log_m_exponent"] = float(np.polyfit(np.log(ms), np.log(x), 1)[0])
        rel = np.array(fit["through_origin"]["relative_residuals"])
        fit["through_origin"]["residual_trend_corr_with_m"] = float(np.corrcoef(ms, rel)[0, 1])
    return {"rows": rows, "fit": fit}


def groups(cells: list[dict]) -> list[dict]:
    return [{"task": r["task"], "group_order": r["group_order"], "train_fraction": r["train_fraction"], "seed": r["seed"],
             "train_100_step": r["train_100_step"], "steps_to_95": r["steps_to_95"],
             "final_test_accuracy": r["final"]["test_accuracy"], "max_steps": r["max_steps"],
             "fourier_share_max": max((c["fourier_share_90"] for c in r["curves"] if "fourier_share_90" in c), default=None),
             "fourier_concentration_mean_init": r["curves"][0].get("fourier_concentration_mean"),
             "fourier_concentration_mean_final": r["curves"][-1].get("fourier_concentration_mean"),
             "fourier_share_at_95": next((c.get("fourier_share_90") for c in r["curves"] if c["step"] == r["steps_to_95"]), None),
             "final_dominant_frequencies": r.get("final_dominant_frequencies")} for r in cells]


def plot(results: Path, figures: Path, summary: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.mkdir(parents=True, exist_ok=True)
    written = []
    runs = _cells(results, "stages")
    if runs:
        fig, axes = plt.subplots(2, len(runs), figsize=(5.5 * len(runs), 6), sharex=True, squeeze=False)
        for col, r in enumerate(runs):
            steps = [c["step"] for c in r["curves"]]
            top, bottom = axes[0, col], axes[1, col]
            top.plot(steps, [c["train_accuracy"] for c in r["curves"]], label="train accuracy")
            top.plot(steps, [c["test_accuracy"] for c in r["curves"]], label="test accuracy")
            top.set_title(f"{r['optimizer']} (lr {r['muon_lr'] or r['lr']:g}), M={r['modulus']}, {r['train_fraction']:.0%} train")
            bottom.plot(steps, [c["fourier_share_90"] for c in r["curves"]], label="share of units ≥90 % in one frequency")
            bottom.plot(steps, [c["fourier_concentration_mean"] for c in r["curves"]], label="mean top-frequency power share")
            for ax in (top, bottom):
                for step, style in ((r["train_100_step"], ":"), (r["steps_to_95"], "--")):
                    if step is not None:
                        ax.axvline(step, color="grey", linestyle=style, linewidth=1)
                ax.set_ylim(0, 1.02)
                ax.legend(fontsize=7, loc="center right")
            bottom.set_xlabel("full-batch step (dotted: train 100 %, dashed: test 95 %)")
        fig.tight_layout()
        fig.savefig(figures / "stages.png", dpi=110)
        plt.close(fig)
        written.append("stages.png")
    arms = summary["optimizers"]
    if arms:
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(arms)), 4))
        for i, (arm, row) in enumerate(arms.items()):
            ys = [s if s is not None else row["max_steps"] for s in row["steps_to_95"]]
            ax.scatter([i] * len(ys), ys, marker="o", facecolors=["C0" if s is not None else "none" for s in row["steps_to_95"]],
                       edgecolors="C0")
        ax.set_xticks(range(len(arms)), list(arms), fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("steps to 95 % test accuracy\n(open: not reached by the cap)")
        fig.tight_layout()
        fig.savefig(figures / "optimizers.png", dpi=110)
        plt.close(fig)
        written.append("optimizers.png")
    rows, fit = summary["scaling"]["rows"], summary["scaling"]["fit"]
    if rows and fit:
        fig, (ax, right) = plt.subplots(1, 2, figsize=(11, 4))
        x = np.array([r["m_log_m"] for r in rows])
        ax.scatter(x, [r["n_critical"] for r in rows], label="smallest n that groks")
        failed = [(r["m_log_m"], r["n_largest_failed"]) for r in rows if r["n_largest_failed"]]
        if failed:
            ax.scatter(*zip(*failed), marker="x", color="C3", label="largest n that did not")
        for r in rows:
            if r["n_critical"]:
                ax.annotate(f"M={r['modulus']}", (r["m_log_m"], r["n_critical"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        grid = np.linspace(1, x.max() * 1.05, 100)
        ax.plot(grid, fit["through_origin"]["a"] * grid, label=f"fit n = {fit['through_origin']['a']:.2f} M ln M")
        ms_grid = np.linspace(2, max(r["modulus"] for r in rows) * 1.02, 100)
        power = fit["power_law"]
        ax.plot(ms_grid * np.log(ms_grid), power["prefactor"] * ms_grid ** power["exponent"], linestyle="-.",
                label=f"fit n = {power['prefactor']:.2f} M^{power['exponent']:.2f}")
        ax.plot(grid, 2.7482 * grid, linestyle="--", label="reference code's 2.7482 M ln M")
        ax.set_xlabel("M ln M")
        ax.set_ylabel("training pairs n")
        ax.legend(fontsize=7)
        both = [r for r in rows if None not in r["c_bracket"]]
        right.vlines([r["modulus"] for r in both], [r["c_bracket"][0] for r in both], [r["c_bracket"][1] for r in both],
                     color="C0", linewidth=3,
                     label="critical c = n / (M ln M): (largest failed, smallest grokked]")
        right.axhline(fit["through_origin"]["a"], color="C1", label="the fit's constant a")
        right.axhline(2.7482, color="C2", linestyle="--", label="reference code's 2.7482")
        right.set_xlabel("M")
        right.set_ylabel("c")
        right.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(figures / "scaling.png", dpi=110)
        plt.close(fig)
        written.append("scaling.png")
    return written


def summarise(results: Path, figures: Path) -> dict:
    summary = {
        "stages": stages(_cells(results, "stages")),
        "optimizers": optimizers(_cells(results, "optimizers")),
        "scaling": scaling(_cells(results, "scaling")),
        "groups": groups(_cells(results, "groups")),
    }
    summary["cpu_s_total"] = sum(r["cpu_s"] for sub in ("stages", "optimizers", "scaling", "groups") for r in _cells(results, sub))
    summary["figures"] = plot(results, figures, summary)
    (results / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
