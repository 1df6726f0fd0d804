"""MgNO's V-cycle: with its convolutions set to a classical multigrid (five-point Laplacian A,
damped Jacobi S, cell-centred bilinear P and R = Pᵀ) it solves a linear problem as a multigrid
cycle should — a residual reduction per cycle well below 1 and independent of the grid size —
and a resolution the depth cannot halve is an error naming the fields."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.models.mgno.configuration_mgno import MgNOConfig
from zoo.models.mgno.modeling_mgno import MgNOLayers, VCycle


def classical_vcycle(levels: int) -> VCycle:
    cycle = VCycle(1, 1, [2] * levels + [20], [2] * levels + [0])
    laplacian = torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    bilinear = torch.outer(*[torch.tensor([1.0, 3, 3, 1]) / 4] * 2)
    with torch.no_grad():
        for A, S in zip(cycle.A, cycle.S):
            A.weight.copy_(laplacian[None, None])
            S.weight.zero_()
            S.weight[0, 0, 1, 1] = 0.8 / 4  # damped Jacobi, ω = 0.8
        for R, P in zip(cycle.R, cycle.P):
            R.weight.copy_(bilinear[None, None])
            P.weight.copy_(bilinear[None, None])
    return cycle


@torch.no_grad()
def solve(n: int):
    torch.manual_seed(0)
    cycle = classical_vcycle(int(math.log2(n)) - 2)  # coarsest grid 4 × 4
    exact = torch.randn(1, 1, n, n)
    f = cycle.A[0](exact)
    u, residuals = torch.zeros_like(f), []
    for _ in range(4):  # the V-cycle as the preconditioner of a stationary iteration
        u = u + cycle(f - cycle.A[0](u))
        residuals.append(float((f - cycle.A[0](u)).norm() / f.norm()))
    jacobi = torch.zeros_like(f)
    for _ in range(16):  # the fine-grid smoothing work of those 4 cycles, without the coarse grids
        jacobi = jacobi + cycle.S[0](f - cycle.A[0](jacobi))
    error = float((u - exact).norm() / exact.norm())
    return residuals, error, float((jacobi - exact).norm() / exact.norm())


def test_vcycle_reduces_the_residual_independently_of_the_grid():
    rates = {}
    for n in (16, 32):
        residuals, error, jacobi_error = solve(n)
        steps = [residuals[0]] + [b / a for a, b in zip(residuals, residuals[1:])]
        assert all(s < 0.25 for s in steps), steps  # every cycle removes most of the residual
        rates[n] = (residuals[-1] / residuals[0]) ** (1 / 3)
        assert error < 5e-3 and jacobi_error > 0.05  # smooth error: the coarse grids remove it, smoothing alone cannot
    assert abs(rates[16] - rates[32]) < 0.05, rates


def test_layers_shapes_and_bad_resolution():
    config = MgNOConfig(resolution=16, num_channels=3, num_layers=2, num_levels=2)
    fields = MgNOLayers(config)(torch.rand(2, 1, 16, 16))
    assert [tuple(f.shape) for f in fields] == [(2, 1, 16, 16), (2, 3, 16, 16), (2, 1, 16, 16)]
    with pytest.raises(ValueError, match=r"resolution=24 cannot be halved num_levels=4 times"):
        MgNOConfig(resolution=24, num_levels=4)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*num_levels = 4"):
        MgNOLayers(config)(torch.rand(1, 1, 18, 18))
    with pytest.raises(ValueError, match="pre_smoothing"):
        MgNOConfig(resolution=16, num_levels=2, pre_smoothing=[1, 1])
