"""The two numerical facts behind MgNO on Darcy flow, measured: the darcy_flow solver's error on a
manufactured solution against the resolution (second order expected), and the residual reduction
per cycle of MgNO's V-cycle with classical multigrid kernels (grid-independent expected), against
the same fine-grid smoothing without the coarse grids.

    python experiments/mgno_multigrid/run.py        # → experiments/results/mgno_multigrid/summary.json
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from zoo.data.pde import manufactured_error
from zoo.models.mgno.modeling_mgno import classical_vcycle

ROOT = Path(__file__).resolve().parents[2]

OUT = ROOT / "experiments" / "results" / "mgno_multigrid" / "summary.json"


@torch.no_grad()
def vcycle_rates(n: int, cycles: int = 5) -> dict:
    torch.manual_seed(0)
    cycle = classical_vcycle(int(math.log2(n)) - 2)
    exact = torch.randn(1, 1, n, n)
    f = cycle.A[0](exact)
    u, residuals = torch.zeros_like(f), []
    for _ in range(cycles):
        u = u + cycle(f - cycle.A[0](u))
        residuals.append(float((f - cycle.A[0](u)).norm() / f.norm()))
    jacobi = torch.zeros_like(f)
    for _ in range(4 * cycles):
        jacobi = jacobi + cycle.S[0](f - cycle.A[0](jacobi))
    return {"n": n, "levels": int(math.log2(n)) - 2, "relative_residuals": residuals,
            "mean_reduction_per_cycle": (residuals[-1] / residuals[0]) ** (1 / (cycles - 1)),
            "error": float((u - exact).norm() / exact.norm()),
            "jacobi_residual": float((f - cycle.A[0](jacobi)).norm() / f.norm()),
            "jacobi_error": float((jacobi - exact).norm() / exact.norm()), "jacobi_steps": 4 * cycles}


def main() -> int:
    sizes = [8, 16, 32, 64, 128]
    errors = [manufactured_error(n) for n in sizes]
    summary = {
        "manufactured": {"resolutions": sizes, "max_errors": errors,
                         "orders": [float(np.log2(a / b)) for a, b in zip(errors, errors[1:])]},
        "vcycle": [vcycle_rates(n) for n in (16, 32, 64, 128)],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
