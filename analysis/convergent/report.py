"""The result dataclasses of a comparison and their outputs: ``PairComparison`` (one layer, two
models), ``ConvergentReport`` (every layer and pair: ``to_json()``, ``summary_rows()``,
``summary_markdown()``, ``plot()``, ``write()``) and ``jsonable`` (numpy → JSON, NaN → null)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from .matching import Matching
from .sparse import SparsePath
from .spectral import SpectralGroups

__all__ = ["PairComparison", "ConvergentReport", "jsonable"]


@dataclass
class PairComparison:
    """Everything measured for one layer between model ``a`` and model ``b``."""

    layer: str
    model_a: str
    model_b: str
    units_a: int
    units_b: int
    samples: int
    dead_a: int
    dead_b: int
    mean_matched: float  # one-to-one, mean correlation over matched pairs
    mean_semi_matched: float  # each unit of A with its best partner in B
    strong_share: float  # share of matched pairs with correlation >= strong
    strong: float
    baseline_mean: float  # the same matching against a random rotation of B
    matched_curve: list[float]  # one-to-one matched correlations, sorted descending
    semi_curve: list[float]
    baseline_curve: list[float]
    matching: Matching
    canonical: list[float] | None = None
    mi_matched_mean: float | None = None  # nats: one-to-one matching on mutual information
    mi_matching: Matching | None = None
    mi_corr_agreement: float | None = None  # share of units whose MI partner equals the correlation partner
    sparse: SparsePath | None = None
    clusters: SpectralGroups | None = None
    correlation: np.ndarray | None = field(default=None, repr=False)  # (units_a, units_b), for plots
    correlation_aa: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        out = {}
        for key, value in self.__dict__.items():
            if key in ("correlation", "correlation_aa"):
                continue
            if isinstance(value, SparsePath):
                value = value.to_json()
            elif isinstance(value, (Matching, SpectralGroups)):
                value = asdict(value)
            out[key] = value
        return jsonable(out)



def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class ConvergentReport:
    models: list[str]
    layers: list[str]
    inputs: dict
    comparisons: list[PairComparison]
    seconds: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return jsonable({
            "models": self.models, "layers": self.layers, "inputs": self.inputs, "seconds": self.seconds,
            "summary": self.summary_rows(),
            "comparisons": [c.to_json() for c in self.comparisons],
        })

    def summary_rows(self) -> list[dict]:
        rows = []
        for c in self.comparisons:
            row = {
                "layer": c.layer, "model_a": c.model_a, "model_b": c.model_b, "units": f"{c.units_a}x{c.units_b}",
                "mean_matched": c.mean_matched, "mean_semi_matched": c.mean_semi_matched,
                "baseline_mean": c.baseline_mean, "strong_share": c.strong_share,
                "dead": f"{c.dead_a}/{c.dead_b}",
            }
            if c.canonical:
                top = max(1, len(c.canonical) // 10)
                row["canonical_top10pct_mean"] = float(np.mean(c.canonical[:top]))
                row["canonical_mean"] = float(np.mean(c.canonical))
            if c.mi_matched_mean is not None:
                row["mi_matched_mean"] = c.mi_matched_mean
                row["mi_corr_agreement"] = c.mi_corr_agreement
            if c.sparse is not None:
                row["sparse_error_1"] = c.sparse.error_at(1.0)
                row["sparse_error_4"] = c.sparse.error_at(4.0)
                row["single_unit_error"] = c.sparse.single_unit_error
            if c.clusters is not None:
                row["mixed_groups"] = c.clusters.mixed_share
            rows.append(row)
        return rows

    def summary_markdown(self) -> str:
        def f(x):
            return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else (f"{x:.3f}" if isinstance(x, float) else str(x))

        lines = [
            "# Convergent learning: unit matching", "",
            f"Models: {', '.join(f'`{m}`' for m in self.models)}  ",
            f"Inputs: {self.inputs.get('description', '')} ({self.inputs.get('examples')} examples)  ",
            "Correlation: Pearson over all inputs (conv layers: over positions too). One-to-one: "
            "maximum-total-correlation matching; semi: each unit of A with its best partner in B; "
            "baseline: the same one-to-one matching against a random rotation of B's units; "
            f"strong: share of matched pairs with r ≥ {self.comparisons[0].strong if self.comparisons else 0.5}; "
            "canonical: mean of the top 10 % canonical correlations (shared subspace); "
            "sparse_error_4: 1 - R² of least squares on the ~4 units of A per unit of B that the lasso path picks "
            "(single_unit_error: the best single unit, i.e. semi-matching).", "",
        ]
        rows = self.summary_rows()
        keys = ["layer", "model_a", "model_b", "units", "mean_matched", "mean_semi_matched", "baseline_mean",
                "strong_share", "canonical_top10pct_mean", "mi_matched_mean", "single_unit_error", "sparse_error_4",
                "mixed_groups", "dead"]
        keys = [k for k in keys if any(k in r for r in rows)]
        lines.append("| " + " | ".join(keys) + " |")
        lines.append("|" + "---|" * len(keys))
        for r in rows:
            lines.append("| " + " | ".join(f(r.get(k)) for k in keys) + " |")
        return "\n".join(lines) + "\n"

    def plot(self, folder: str) -> list[str]:
        from .plots import plot_report

        return plot_report(self, folder)

    def write_files(self, folder: str, plots: bool = True) -> list[str]:
        """Write results.json, summary.md and (``plots``) figures/ into the existing ``folder``;
        returns the paths written."""
        with open(os.path.join(folder, "results.json"), "w") as fh:
            json.dump(self.to_json(), fh, indent=1)
        with open(os.path.join(folder, "summary.md"), "w") as fh:
            fh.write(self.summary_markdown())
        figures = self.plot(os.path.join(folder, "figures")) if plots else []
        return [os.path.join(folder, "results.json"), os.path.join(folder, "summary.md")] + list(figures)

    def write(self, out: str, plots: bool = True) -> list[str]:
        """Write results.json, summary.md and figures into ``out`` (a new or empty folder),
        assembled in a staging folder beside it and moved into place whole
        (``analysis.runner.staged_folder``): a failure leaves ``out`` as it was."""
        from ..runner import staged_folder

        out = os.path.abspath(out)
        with staged_folder(out) as folder:
            written = self.write_files(folder, plots=plots)
        return [os.path.join(out, os.path.relpath(p, folder)) for p in written]
