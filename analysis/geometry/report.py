"""The result of a geometry run: per-layer measures against the targets and the input, the
pairwise CKA / RSA between every two representations, as JSON, markdown and figures."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import UserError
from . import metrics

__all__ = ["LayerGeometry", "GeometryReport", "measure"]


@dataclass
class LayerGeometry:
    name: str
    units: int
    kernel_target_alignment: float | None = None
    rsa_target: float | None = None
    cka_target: float | None = None
    cka_input: float | None = None
    rsa_input: float | None = None
    parallelism: list[float] | None = None
    ccgp: list[float] | None = None


@dataclass
class GeometryReport:
    examples: int
    representations: list[LayerGeometry]
    cka: list[list[float]]  # pairwise linear CKA (unbiased HSIC) between the representations
    cka_biased: list[list[float]]
    rsa: list[list[float]]  # pairwise RSA (correlation RDMs, Spearman)
    conditions: int | None = None
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        def clean(value):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return clean(asdict(self))

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.representations]

    def summary_markdown(self) -> str:
        def f(value):
            return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"

        lines = [f"Geometry of {len(self.representations)} representations on {self.examples} examples"
                 + (f" ({self.conditions} conditions)" if self.conditions else ""), "",
                 "| representation | units | KTA | RSA target | CKA target | CKA input | parallelism | CCGP |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in self.representations:
            ps = "–" if r.parallelism is None else " ".join(f(v) for v in r.parallelism)
            cc = "–" if r.ccgp is None else " ".join(f(v) for v in r.ccgp)
            lines.append(f"| {r.name} | {r.units} | {f(r.kernel_target_alignment)} | {f(r.rsa_target)} | "
                         f"{f(r.cka_target)} | {f(r.cka_input)} | {ps} | {cc} |")
        return "\n".join(lines)

    def write(self, folder: str, plots: bool = True) -> list[str]:
        paths = [os.path.join(folder, "results.json"), os.path.join(folder, "summary.md")]
        with open(paths[0], "w") as fh:
            json.dump(self.to_json(), fh, indent=1)
        with open(paths[1], "w") as fh:
            fh.write(self.summary_markdown() + "\n")
        if plots:
            from .plots import plot_report

            paths += plot_report(self, folder)
        return paths


def measure(representations: dict[str, np.ndarray], targets=None, variables=None, input_name: str | None = None,
            unbiased: bool = True) -> GeometryReport:
    """Every measure for `representations` ({name: (n, d)}); `targets` (labels or an (n, k)
    target matrix) gives KTA / RSA / CKA against them; `variables` ((n, k) binary) gives the
    parallelism score and CCGP per variable; `input_name` names the representation that is the input."""
    names = list(representations)
    n = {len(v) for v in representations.values()}
    if len(n) != 1:
        raise UserError(f"representations hold different numbers of examples: {sorted(n)}")
    n = n.pop()
    target_matrix = metrics.target_matrix(targets) if targets is not None else None
    rows = []
    for name in names:
        x = representations[name]
        row = LayerGeometry(name=name, units=int(np.asarray(x).reshape(n, -1).shape[1]))
        if target_matrix is not None:
            row.kernel_target_alignment = metrics.kernel_target_alignment(x, target_matrix)
            row.cka_target = metrics.linear_cka(x, target_matrix, unbiased=unbiased)
            if variables is not None:  # RSA over condition means: example RDMs are dominated by noise
                _, means = metrics.condition_means(x, variables)
                _, target_means = metrics.condition_means(target_matrix, variables)
                row.rsa_target = metrics.rsa(means, target_means, metric="euclidean")
            else:
                row.rsa_target = metrics.rsa(x, target_matrix, metric="euclidean")
        if input_name is not None and name != input_name:
            row.cka_input = metrics.linear_cka(x, representations[input_name], unbiased=unbiased)
            row.rsa_input = metrics.rsa(x, representations[input_name], metric="euclidean")
        if variables is not None:
            row.parallelism = metrics.parallelism_score(x, variables)
            row.ccgp = metrics.ccgp(x, variables)
        rows.append(row)
    k = len(names)
    cka = [[1.0] * k for _ in range(k)]
    cka_b = [[1.0] * k for _ in range(k)]
    rsa = [[1.0] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1, k):
            a, b = representations[names[i]], representations[names[j]]
            cka[i][j] = cka[j][i] = metrics.linear_cka(a, b, unbiased=True)
            cka_b[i][j] = cka_b[j][i] = metrics.linear_cka(a, b, unbiased=False)
            rsa[i][j] = rsa[j][i] = metrics.rsa(a, b, metric="euclidean")
    conditions = None
    if variables is not None:
        conditions = len(metrics.condition_means(representations[names[0]], variables)[0])
    return GeometryReport(examples=n, representations=rows, cka=cka, cka_biased=cka_b, rsa=rsa, conditions=conditions)
