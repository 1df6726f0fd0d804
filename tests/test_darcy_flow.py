"""The Darcy flow solver against a manufactured solution (second-order error decay), and the
darcy_flow data set: values, boundary behaviour, seeding, the on-disk cache."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo import data
from zoo.data.pde import DARCY_VALUES, darcy_matrix, manufactured_error, solve_darcy


def test_solver_converges_at_second_order():
    errors = [manufactured_error(n) for n in (8, 16, 32, 64)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 2e-3
    assert (orders > 1.85).all() and (orders < 2.2).all(), orders


def test_matrix_is_symmetric_positive_definite():
    rng = np.random.default_rng(0)
    a = np.where(rng.standard_normal((6, 6)) >= 0, *DARCY_VALUES)
    A = darcy_matrix(a).toarray()
    assert np.allclose(A, A.T) and np.linalg.eigvalsh(A).min() > 0
    # a constant coefficient scales the solution by its inverse
    assert np.allclose(solve_darcy(np.full((8, 8), 4.0)), solve_darcy(np.ones((8, 8))) / 4)


def test_darcy_flow_data_set(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_CACHE", str(tmp_path))
    d = data.load("darcy_flow", resolution=16, n_train=3, n_test=2, seed=0)
    a, u = d["train"]["pixel_values"][:].numpy(), d["train"]["labels"][:].numpy()
    assert a.shape == u.shape == (3, 1, 16, 16)
    assert set(np.unique(a)) == set(DARCY_VALUES) and len(d["test"]) == 2
    assert np.allclose(u[1, 0], solve_darcy(a[1, 0]), atol=1e-6)
    assert (u > 0).all()  # f = 1 > 0: the solution is positive inside (maximum principle)
    assert len(list(tmp_path.glob("darcy_flow/*/dataset_dict.json"))) == 1  # cached
    again = data.load("darcy_flow", resolution=16, n_train=3, n_test=2, seed=0)
    other = data.load("darcy_flow", resolution=16, n_train=3, n_test=2, seed=1, cache=False)
    assert np.array_equal(again["train"]["labels"][:].numpy(), u)
    assert not np.array_equal(other["train"]["pixel_values"][:].numpy(), a)
    with pytest.raises(zoo.UserError, match="resolution must be an integer >= 4"):
        data.load("darcy_flow", resolution=2)
