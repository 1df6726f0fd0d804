"""MgNO's V-cycle: with its convolutions set to a classical multigrid (five-point Laplacian A,
damped Jacobi S, cell-centred bilinear P and R = Pᵀ) it solves a linear problem as a multigrid
cycle should — a residual reduction per cycle well below 1 and independent of the grid size —
and a resolution the depth cannot halve is an error naming the fields."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import zoo

from zoo.models.mgno.configuration_mgno import MgNOConfig
from zoo.models.mgno.modeling_mgno import classical_vcycle


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
    model = zoo.create_model("mgno", resolution=16, num_channels=3, num_layers=3, num_levels=2).eval()
    out = model(torch.rand(2, 1, 16, 16), output_hidden_states=True)
    assert [tuple(f.shape) for f in out.hidden_states] == [(2, 1, 16, 16), (2, 3, 16, 16), (2, 3, 16, 16)]
    assert out.logits.shape == (2, 1, 16, 16)
    with pytest.raises(zoo.UserError, match=r"resolution=24 cannot be halved num_levels=4 times"):
        zoo.create_model("mgno", resolution=24, num_levels=4)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*num_levels = 4"):
        model(torch.rand(1, 1, 18, 18))
    for bad in (dict(pre_smoothing=[1, 1]), dict(pre_smoothing=[1, 1, 0]), dict(pre_smoothing=0, post_smoothing=[0, 0, 1]),
                dict(num_layers=1)):
        field = next(iter(bad)) if "num_layers" in bad else "pre_smoothing"
        with pytest.raises(ValueError, match=field):
            MgNOConfig(resolution=16, num_levels=2, **bad)


def test_input_scaling_and_eval_loss_is_the_relative_l2_error():
    """(a − input_mean) / input_std enters the layers, output_scale multiplies the last one, and
    the loop's eval_loss is the per-example relative L2 error that the model trains on."""
    from zoo.training.run import evaluate

    torch.manual_seed(0)
    config = dict(resolution=8, num_channels=2, num_layers=2, num_levels=1)
    plain = zoo.create_model("mgno", **config).eval()
    scaled = zoo.create_model("mgno", **config, input_mean=7.5, input_std=4.5, output_scale=0.01).eval()
    scaled.load_state_dict(plain.state_dict())
    a = torch.where(torch.rand(5, 1, 8, 8) > 0.5, 12.0, 3.0)
    with torch.no_grad():
        torch.testing.assert_close(scaled(a).logits, 0.01 * plain((a - 7.5) / 4.5).logits)
        u = torch.rand(5, 1, 8, 8) + 0.1
        pred = scaled(a).logits
        per_example = [float(np.linalg.norm((p - t).numpy()) / np.linalg.norm(t.numpy())) for p, t in zip(pred, u)]
        torch.testing.assert_close(scaled(a, labels=u).loss, torch.tensor(float(np.mean(per_example))))
    batches = [{"pixel_values": a[:3], "labels": u[:3]}, {"pixel_values": a[3:], "labels": u[3:]}]
    assert evaluate(scaled, batches) == {"eval_loss": pytest.approx(float(np.mean(per_example)), rel=1e-5)}
