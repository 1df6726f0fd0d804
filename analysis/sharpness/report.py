"""``measure_sharpness``: every sharpness measure of one model's loss on fixed batches, as a
``SharpnessReport`` (``to_json()``, ``write()``, ``summary_markdown()``)."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..errors import UserError
from .estimators import LanczosResult, ProbeEstimate, hutchinson, hutchinson_trace, lanczos
from .operator import HessianOperator

__all__ = ["ExactSpectrum", "SharpnessReport", "measure_sharpness", "EXACT_AUTO_LIMIT"]

# "exact='auto'" builds the whole Hessian only up to this many parameters (P² floats)
EXACT_AUTO_LIMIT = 2000


@dataclass
class ExactSpectrum:
    """From the materialised Hessian (tiny models): trace, ‖H‖_F and every eigenvalue."""

    trace: float
    frobenius: float
    eigenvalues: list[float]  # descending

    @property
    def lambda_max(self) -> float:
        return self.eigenvalues[0]

    def to_json(self) -> dict:
        return {"trace": self.trace, "frobenius": self.frobenius, "lambda_max": self.lambda_max,
                "lambda_min": self.eigenvalues[-1], "eigenvalues": self.eigenvalues}


@dataclass
class SharpnessReport:
    model: str
    data: str
    examples: int
    parameters: int
    loss_kind: str
    loss: float
    gradient_norm: float
    parameter_norm: float
    trace: ProbeEstimate
    frobenius: ProbeEstimate | None  # None: not measured (frobenius=False, the trace alone)
    top: LanczosResult
    exact: ExactSpectrum | None = None
    seconds: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def lambda_max(self) -> float:
        return self.top.eigenvalues[0]

    def to_json(self) -> dict:
        return {
            "model": self.model, "data": self.data, "examples": self.examples, "parameters": self.parameters,
            "loss_kind": self.loss_kind, "loss": self.loss, "gradient_norm": self.gradient_norm,
            "parameter_norm": self.parameter_norm, "lambda_max": self.lambda_max,
            "trace": self.trace.to_json(),
            "frobenius": None if self.frobenius is None else self.frobenius.to_json(),
            "top_eigenvalues": self.top.to_json(),
            "exact": None if self.exact is None else self.exact.to_json(),
            "seconds": self.seconds, "settings": self.settings,
        }

    def summary_markdown(self) -> str:
        t, f = self.trace, self.frobenius
        pct = int(round(100 * t.confidence))
        lines = [f"Sharpness of {self.model} on {self.data} ({self.examples} examples, {self.parameters} parameters, "
                 f"{self.loss_kind} loss {self.loss:.6g}, ‖∇L‖ {self.gradient_norm:.3g})", "",
                 "| measure | estimate | interval / residual | exact |", "|---|---|---|---|"]

        def exact(name):
            return "" if self.exact is None else f"{getattr(self.exact, name):.6g}"

        lines.append(f"| tr(H), Hutchinson, {t.probes} probes | {t.estimate:.6g} ± {t.stderr:.2g} | "
                     f"{pct} %: [{t.low:.6g}, {t.high:.6g}] | {exact('trace')} |")
        if f is None:
            lines.append(f"| ‖H‖_F | not measured (--no-frobenius) | | {exact('frobenius')} |")
        else:
            lines.append(f"| ‖H‖_F, {f.probes} probes | {f.estimate:.6g} | {pct} %: [{f.low:.6g}, {f.high:.6g}] | "
                         f"{exact('frobenius')} |")
        for i, (value, res) in enumerate(zip(self.top.eigenvalues, self.top.residuals), 1):
            ex = "" if self.exact is None else f"{self.exact.eigenvalues[i - 1]:.6g}"
            lines.append(f"| λ_{i}, Lanczos ({self.top.iterations} steps) | {value:.6g} | residual ≤ {res:.2g} | {ex} |")
        return "\n".join(lines)

    def write(self, folder: str, plots: bool = True) -> list[str]:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "sharpness.json")
        with open(path, "w") as handle:
            json.dump(self.to_json(), handle, indent=1)
        with open(os.path.join(folder, "summary.md"), "w") as handle:
            handle.write(self.summary_markdown() + "\n")
        files = [path, os.path.join(folder, "summary.md")]
        if plots:
            from .plots import plot_report

            files += plot_report(self, folder)
        return files


def measure_sharpness(model: nn.Module, batches: Sequence[dict], *, loss: str = "model", probes: int = 64,
                      top_k: int = 1, iterations: int | None = None, exact: bool | str = "auto",
                      seed: int = 0, chunk: int | None = None, confidence: float = 0.95,
                      model_name: str = "model", data_name: str = "batches",
                      params: Sequence[str] | None = None, mode: str = "reverse",
                      frobenius: bool = True) -> SharpnessReport:
    """Measure the Hessian of ``model``'s mean loss over ``batches`` at its current parameters.

    ``frobenius``: also estimate ‖H‖_F from the probes, which needs every H v; without it the
    trace needs only vᵀHv, by second-order forward mode where the loss allows
    (``HessianOperator.quadratic_forms``; settings["trace_method"] says which ran).

    ``exact``: True builds the whole Hessian (error beyond 4096 parameters), ``"auto"`` only up
    to :data:`EXACT_AUTO_LIMIT` parameters, False never.
    """
    op = HessianOperator(model, batches, loss=loss, params=params, mode=mode)
    if not isinstance(top_k, int) or top_k < 1:
        raise UserError(f"--top-k must be a positive integer, got {top_k!r}")
    if top_k > op.dim:
        raise UserError(f"--top-k {top_k} is more eigenvalues than the model has trainable parameters ({op.dim})")
    seconds = {}
    start = time.perf_counter()
    value = op.value()
    gnorm = float(op.gradient().norm())
    seconds["loss_and_gradient"] = time.perf_counter() - start

    def matvecs(v):
        return op.hvps(v, chunk=chunk)

    start = time.perf_counter()
    if frobenius:
        trace, frob = hutchinson(matvecs, op.dim, probes=probes, seed=seed, confidence=confidence, chunk=chunk,
                                 dtype=op.dtype, device=op.device)
        trace_method = "hvp"
    else:
        trace, frob = hutchinson_trace(lambda v: op.quadratic_forms(v, chunk=chunk), op.dim, probes=probes, seed=seed,
                                       confidence=confidence, chunk=chunk, dtype=op.dtype, device=op.device), None
        trace_method = op.quadratic_method
    seconds["hutchinson"] = time.perf_counter() - start
    start = time.perf_counter()
    top = lanczos(matvecs, op.dim, k=top_k, iterations=iterations, seed=seed + 1, dtype=op.dtype, device=op.device)
    seconds["lanczos"] = time.perf_counter() - start
    spectrum = None
    if exact is True or (exact == "auto" and op.dim <= EXACT_AUTO_LIMIT):
        start = time.perf_counter()
        hessian = op.exact().double()
        values = torch.linalg.eigvalsh(hessian).flip(0)
        spectrum = ExactSpectrum(float(hessian.diagonal().sum()), float(hessian.norm()), values.tolist())
        seconds["exact"] = time.perf_counter() - start
    if not all(math.isfinite(x) for x in (value, trace.estimate, top.eigenvalues[0])):
        raise UserError(f"the loss or its curvature is not finite at these parameters (loss {value})")
    return SharpnessReport(
        model=model_name, data=data_name, examples=op.examples, parameters=op.dim, loss_kind=loss, loss=value,
        gradient_norm=gnorm, parameter_norm=float(op.theta().double().norm()), trace=trace, frobenius=frob,
        top=top, exact=spectrum, seconds=seconds,
        settings={"probes": probes, "top_k": top_k, "iterations": top.iterations, "seed": seed,
                  "chunk": chunk, "confidence": confidence, "mode": mode, "trace_method": trace_method, "dtype": str(op.dtype).replace("torch.", "")},
    )
