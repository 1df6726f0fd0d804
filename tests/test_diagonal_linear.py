"""The diagonal linear network and the sparse_regression data set, against closed forms: the
predictor β = u⊙u − v⊙v, and at an interpolating minimum the Hessian of the mean squared error,
(2/n) Σ_i J_iᵀJ_i with J_i = (2u⊙x_i, −2v⊙x_i), whose trace is the weighted parameter norm
(8/n) Σ_j (u_j² + v_j²) Σ_i x_ij² (the sharpness-norm equivalence of Wu & Su 2023)."""
import numpy as np
import pytest
import torch

import zoo
from analysis.sharpness import HessianOperator, measure_sharpness
from zoo import data as zoo_data


def _model(dim=6, seed=0):
    model = zoo.create_model("diagonal_linear", input_dim=dim, num_labels=1, problem_type="regression",
                             init_scale=0.5).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.diagonal.u.copy_(torch.rand(1, dim, generator=g, dtype=torch.float64) + 0.1)
        model.diagonal.v.copy_(torch.rand(1, dim, generator=g, dtype=torch.float64) * 0.5)
    return model


def test_init_and_predictor():
    model = zoo.create_model("diagonal_linear", input_dim=4, num_labels=2, init_scale=0.3)
    assert torch.equal(model.diagonal.u, torch.full((2, 4), 0.3)) and torch.equal(model.beta, torch.zeros(2, 4))
    model = _model()
    x = torch.randn(5, 6, dtype=torch.float64)
    u, v = model.diagonal.u, model.diagonal.v
    torch.testing.assert_close(model(input_features=x).logits, x @ (u * u - v * v).T)


def test_hessian_at_an_interpolating_minimum_is_the_weighted_norm():
    model = _model()
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(input_features=x).logits[:, 0]  # zero training loss: a global minimum
    batch = [{"input_features": x, "labels": y}]
    hessian = HessianOperator(model, batch).exact()
    u, v = model.diagonal.u[0].detach(), model.diagonal.v[0].detach()
    jac = torch.cat([2 * u * x, -2 * v * x], dim=1)  # (n, 2d): ∂f(x_i)/∂(u, v)
    torch.testing.assert_close(hessian, 2 / len(x) * jac.T @ jac)
    weighted = 8 / len(x) * ((u * u + v * v) * (x * x).sum(0)).sum()
    report = measure_sharpness(model, batch, probes=200, top_k=1)
    assert report.exact.trace == pytest.approx(float(weighted), rel=1e-10)
    assert report.trace.contains(float(weighted))
    # rank n: the top eigenvalue of JᵀJ equals that of the n × n Gram J Jᵀ
    assert report.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(2 / len(x) * jac @ jac.T)[-1]), rel=1e-8)


def test_sparse_regression_is_sparse_and_seeded():
    data = zoo_data.load("sparse_regression", dim=8, n_train=5, n_test=40, sparsity=3, noise=0.5, seed=3)
    test = data["test"][:]
    beta, *_ = np.linalg.lstsq(test["input_features"].double().numpy(), test["labels"].double().numpy(), rcond=None)
    assert (np.abs(beta) > 1e-4).sum() == 3 and np.allclose(np.abs(beta[np.abs(beta) > 1e-4]), 1 / np.sqrt(3), atol=1e-5)
    again = zoo_data.load("sparse_regression", dim=8, n_train=5, n_test=40, sparsity=3, noise=0.5, seed=3)
    assert torch.equal(again["train"][:]["labels"], data["train"][:]["labels"])
    with pytest.raises(zoo.UserError, match="sparsity"):
        zoo_data.load("sparse_regression", dim=4, sparsity=5)
