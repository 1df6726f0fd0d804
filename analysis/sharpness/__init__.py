"""Sharpness of a model's loss (Hessian measures; cf. Wu & Su 2023, PyHessian): for any zoo
model and loss, on any zoo data set, without ever building the P × P Hessian.

=================  =========================================================================
``operator``       ``HessianOperator``: the loss as a pure function of the parameters
                   (``torch.func.functional_call``), Hessian-vector products by forward-over-
                   reverse (``jvp`` of ``grad``), batched over probes with ``vmap``; the
                   quadratic forms vᵀHv alone (``quadratic_forms``, by ``taylor`` where it
                   applies); the exact Hessian for tiny models (``exact()``)
``taylor``         ``TaylorQuadraticForm``: vᵀHv by second-order forward mode over the loss
                   traced to ATen operations (one forward pass for all probes)
``estimators``     ``hutchinson`` (trace with a Student-t interval, and ‖H‖_F from the same
                   probes), ``hutchinson_trace`` (the trace from vᵀHv alone), ``lanczos`` (top-k eigenvalues, full reorthogonalisation, residual
                   bounds), ``ProbeEstimate``, ``LanczosResult``, ``rademacher``
``report``         ``measure_sharpness`` → ``SharpnessReport`` (``to_json``, ``write``,
                   ``summary_markdown``), ``ExactSpectrum``
``inputs``         ``dataset_batches`` (a zoo data set in the model's columns, checked by a
                   trial forward pass), ``parse_data_args``
``plots``          ``plot_report``
``cli``            ``add_cli``: ``zoo-analysis sharpness --model NAME --data NAME``
=================  =========================================================================
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "add_cli": "cli",
    "HessianOperator": "operator",
    "LOSSES": "names",
    "MODES": "names",
    "hutchinson": "estimators",
    "hutchinson_trace": "estimators",
    "TaylorQuadraticForm": "taylor",
    "lanczos": "estimators",
    "rademacher": "estimators",
    "ProbeEstimate": "estimators",
    "LanczosResult": "estimators",
    "measure_sharpness": "report",
    "SharpnessReport": "report",
    "ExactSpectrum": "report",
    "dataset_batches": "inputs",
    "parse_data_args": "inputs",
    "plot_report": "plots",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
