"""Trainer `convex` (zoo/training/convex.py): the convex program of a two-layer ReLU net.

Checked against an independent exact solver (cvxpy + Clarabel, the `test` extra) on tiny
problems, and the saved checkpoint against a manual forward pass of its weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.errors import UserError
from zoo.training.convex import check_problem
from zoo.training.convex_patterns import most_violated
from zoo.training.convex_solvers import (ReluADMM, cone_violation, convex_objective, convex_predict, fista_gated,
                                         gated_to_relu, patterns_from_gates, recover_neurons, relu_objective)

RECIPE = Path(__file__).resolve().parents[1] / "hub_configs" / "two-layer-mlp-convex-teacher.yaml"


def tiny_problem(seed, n=30, d=3, P=6):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.sign(rng.standard_normal(n))
    D, gates = patterns_from_gates(X, rng.standard_normal((P, d)))
    return X, y, D, gates


def cvxpy_optimum(X, y, D, beta, cones=True) -> float:
    import cvxpy as cp  # the `test` extra (with clarabel)
    n, d = X.shape
    P = D.shape[1]
    V, W = cp.Variable((P, d)), cp.Variable((P, d))
    pred = sum(cp.multiply(D[:, i].astype(float), X @ (V[i] - W[i])) for i in range(P))
    S = 2.0 * D - 1.0
    constraints = []
    if cones:
        constraints = [cp.multiply(S[:, i], X @ V[i]) >= 0 for i in range(P)] + \
                      [cp.multiply(S[:, i], X @ W[i]) >= 0 for i in range(P)]
    reg = sum(cp.norm(V[i]) + cp.norm(W[i]) for i in range(P))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(pred - y) / (2 * n) + beta * reg), constraints)
    problem.solve(solver="CLARABEL")
    return float(problem.value)


@pytest.mark.parametrize("seed", [0, 2])
def test_admm_reaches_the_exact_optimum_and_its_net_scores_it(seed):
    X, y, D, gates = tiny_problem(seed)
    beta = 1e-2
    exact = cvxpy_optimum(X, y, D, beta)
    solution = ReluADMM(X, y, D, gates, beta).solve(tol=1e-5, gap_tol=1e-5, max_iter=8000)
    assert abs(solution.objective - exact) <= 1e-4 * exact
    # the duality gap is a certificate: the lower bound never exceeds the exact optimum
    assert solution.lower_bound <= exact * (1 + 1e-7) and solution.lower_bound >= exact * (1 - 1e-4)
    # the recovered ReLU net (u = v/√‖v‖, α = ±√‖v‖) has the convex objective
    U, alpha = recover_neurons(solution.V, solution.W)
    assert cone_violation(X, D, solution.V, solution.W) < 1e-4
    assert relu_objective(X, y, U, alpha, beta) == pytest.approx(convex_objective(X, y, D, solution.V, solution.W, beta), rel=1e-4)


def test_gated_program_by_fista_matches_cvxpy_and_converts_exactly():
    X, y, D, gates = tiny_problem(1)
    beta = 1e-2
    exact = cvxpy_optimum(X, y, D, beta, cones=False)
    gated = fista_gated(X, y, D, beta, gap_tol=1e-7)
    assert gated.converged and abs(gated.objective - exact) <= 1e-5 * exact
    assert gated.lower_bound <= exact * (1 + 1e-7)
    V, W = gated_to_relu(X, D, gates, gated.V)
    assert cone_violation(X, D, V, W) <= 1e-12  # feasible for the ReLU program ...
    np.testing.assert_allclose(convex_predict(X, D, V, W), convex_predict(X, D, gated.V, 0 * gated.V), atol=1e-9)
    U, alpha = recover_neurons(V, W)  # ... so the ReLU net predicts exactly what the gated net did
    np.testing.assert_allclose(np.maximum(X @ U.T, 0) @ alpha, convex_predict(X, D, gated.V, 0 * gated.V), atol=1e-9)


def test_most_violated_scores_are_true_dual_values():
    X, y, _, _ = tiny_problem(3)
    mu = y / len(y)
    U, scores = most_violated(np.random.default_rng(0), X, mu, count=5, candidates=50)
    np.testing.assert_allclose(np.linalg.norm(U, axis=1), 1.0)
    assert np.all(np.diff(scores) <= 0)
    for u, score in zip(U, scores):  # each is |μᵀ relu(X u)| for one sign of μ
        value = np.maximum(X @ u, 0) @ mu
        assert np.isclose(score, value) or np.isclose(score, -value)


def train_recipe(tmp_path, *overrides):
    from zoo.training.run import train

    base = ["data.n_train=40", "data.n_test=30", "data.dim=4", "config.input_dim=4",
            "training.trainer_options.num_patterns=8", "training.trainer_options.max_iter=3000"]
    return train(RECIPE, base + list(overrides), output_dir=tmp_path / "out")


def saved_objective(out: Path, beta: float) -> float:
    """The non-convex objective of the saved checkpoint, from its weights and a manual forward pass."""
    from safetensors.torch import load_file

    from zoo import data

    weights = {k: v.double() for k, v in load_file(out / "model.safetensors").items()}
    W1, W2 = weights["hidden.weight"], weights["output.weight"]
    train = data.load("relu_teacher", dim=4, n_train=40, n_test=30)["train"][:]
    X = train["input_features"].double()
    y = train["labels"].double() * 2 - 1
    f = torch.relu(X @ W1.T) @ (W2[1] - W2[0])  # logits ∓f/2: their difference is the net's output
    alpha = (W2[1] - W2[0])
    assert torch.allclose(W2[1], -W2[0])
    return float(0.5 / len(y) * ((f - y) ** 2).sum() + 0.5 * beta * ((W1 ** 2).sum() + (alpha ** 2).sum()))


def test_trainer_saves_a_two_layer_mlp_with_the_convex_objective(tmp_path):
    result = train_recipe(tmp_path)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    program = metrics["convex"]["programs"][0]
    assert metrics["trainer"] == "convex" and metrics["finished"]
    config = json.loads((result.output_dir / "config.json").read_text())
    assert config["model_type"] == "two_layer_mlp" and config["hidden_dim"] == program["neurons"]
    assert saved_objective(result.output_dir, 1e-3) == pytest.approx(metrics["final"]["convex_objective"], rel=1e-5)
    assert program["relative_gap"] < 1e-3


def test_patterns_of_a_trained_net_never_end_above_the_net(tmp_path):
    # few ADMM iterations: the refinement must still not lose against the net it starts from
    result = train_recipe(tmp_path, "training.trainer_options.patterns=net", "config.hidden_dim=6",
                          "training.trainer_options.net_steps=300", "training.trainer_options.max_iter=50")
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    program = metrics["convex"]["programs"][0]
    assert saved_objective(result.output_dir, 1e-3) <= program["net_objective"] * (1 + 1e-6)


@pytest.mark.parametrize("override, message", [
    ("training.trainer_options.beta=0", "beta must be a finite number > 0"),
    ("training.trainer_options.beta=-1", "beta must be a finite number > 0"),
    ("training.trainer_options.num_patterns=0", "num_patterns must be an integer >= 1"),
    ("training.trainer_options.patterns=nope", "patterns must be one of"),
    ("config.fixed_second_layer=true", "fixed_second_layer: false"),
])
def test_bad_options_are_one_line_errors_before_any_output(tmp_path, override, message):
    with pytest.raises(UserError, match=message) as error:
        train_recipe(tmp_path, override)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_bad_data_are_one_line_errors():
    X = np.ones((4, 2))
    with pytest.raises(UserError, match="non-finite"):
        check_problem(np.array([[1.0, np.nan], [0.0, 1.0]]), np.array([0, 1]), False, 2)
    with pytest.raises(UserError, match="one class only"):
        check_problem(X, np.zeros(4, dtype=int), False, 2)
    with pytest.raises(UserError, match="non-finite"):
        check_problem(X, np.array([0.0, np.inf, 1.0, 2.0]), True, 1)


def test_gated_solver_converts_to_the_net_it_saves(tmp_path):
    result = train_recipe(tmp_path, "training.trainer_options.solver=gated", "training.trainer_options.polish_iter=0")
    program = json.loads((result.output_dir / "metrics.json").read_text())["convex"]["programs"][0]
    # the conversion keeps the gated prediction: the saved ReLU net scores the converted objective;
    # the gated program relaxes the ReLU one (w = v − w'), so its dual bound lies below any such net
    assert saved_objective(result.output_dir, 1e-3) == pytest.approx(program["converted_objective"], rel=1e-5)
    assert program["converted_objective"] >= program["gated_lower_bound"]


def test_adaptive_patterns_grow_from_half_the_budget(tmp_path):
    result = train_recipe(tmp_path, "training.trainer_options.patterns=adaptive", "training.trainer_options.max_iter=300")
    program = json.loads((result.output_dir / "metrics.json").read_text())["convex"]["programs"][0]
    assert 4 < program["grown_to"] <= 8  # started from P/2 = 4 random patterns, grew within P
    assert saved_objective(result.output_dir, 1e-3) == pytest.approx(program["objective"], rel=1e-5)


def test_many_classes_with_a_bias_are_one_vs_rest_programs(tmp_path):
    """K = 5 classes → 5 programs whose neurons are stacked; the bias rides as a ones column.
    The saved net's summed one-vs-rest objective, by a manual forward pass, is the metrics'."""
    from safetensors.torch import load_file

    from zoo import data
    from zoo.training.run import train

    recipe = tmp_path / "mc.yaml"
    recipe.write_text("""id: convex-many-classes
architecture: two_layer_mlp
description: tiny
config: {input_dim: 10, hidden_dim: 4, num_labels: 5, activation: relu, first_layer_bias: true}
data: {name: modular_arithmetic, modulus: 5, train_fraction: 0.6}
training:
  trainer: convex
  trainer_options: {num_patterns: 6, max_iter: 200}
  epochs: 1
  batch_size: full
  checkpoint_every: never
""")
    metrics = train(recipe, output_dir=tmp_path / "out").metrics
    assert len(metrics["convex"]["programs"]) == 5
    w = {k: v.double() for k, v in load_file(tmp_path / "out" / "model.safetensors").items()}
    split = data.load("modular_arithmetic", modulus=5, train_fraction=0.6)["train"][:]
    X, labels = split["input_features"].double(), split["labels"]
    f = torch.relu(X @ w["hidden.weight"].T + w["hidden.bias"]) @ w["output.weight"].T
    objective = 0.0
    for k in range(5):
        target = (labels == k).double() * 2 - 1
        mine = w["output.weight"][k] != 0  # each hidden unit feeds one class only
        assert not (mine & (w["output.weight"].ne(0).sum(0) > 1)).any()
        norms = (w["hidden.weight"][mine] ** 2).sum() + (w["hidden.bias"][mine] ** 2).sum() + (w["output.weight"][k, mine] ** 2).sum()
        objective += float(0.5 / len(labels) * ((f[:, k] - target) ** 2).sum() + 0.5e-3 * norms)
    assert objective == pytest.approx(metrics["final"]["convex_objective"], rel=1e-5)


def test_all_patterns_are_found_and_their_pruned_optimum_is_global():
    """patterns: all on points in the plane (with a bias column): n² − n + 1 non-empty
    dichotomies by half-planes (closed form), a superset of what 20000 random gates find; the
    exact program's optimum, pruned to ≤ n + 1 neurons, keeps its objective and no Adam net
    of that width gets below it."""
    from zoo.training.convex_patterns import all_gates, train_relu_net
    from zoo.training.convex_robust import solve_robust
    from zoo.training.convex_solvers import prune_blocks

    rng = np.random.default_rng(5)
    n, beta = 12, 1e-2
    X = np.concatenate([rng.standard_normal((n, 2)), np.ones((n, 1))], 1)
    y = np.sign(rng.standard_normal(n))
    D, _ = patterns_from_gates(X, all_gates(X))
    assert D.shape[1] == n * n - n + 1
    sampled, _ = patterns_from_gates(X, rng.standard_normal((20000, 3)))
    assert {np.packbits(c).tobytes() for c in sampled.T} <= {np.packbits(c).tobytes() for c in D.T}
    exact = solve_robust(X, y, D, beta, 0.0, "squared")
    V, W = prune_blocks(X, D, exact.V, exact.W)
    U, alpha = recover_neurons(V, W)
    assert len(alpha) <= n + 1 and cone_violation(X, D, V, W) < 1e-6  # the interior-point tolerance
    assert relu_objective(X, y, U, alpha, beta) == pytest.approx(exact.objective, rel=1e-7)
    for seed in range(2):
        Un, an, _ = train_relu_net(X, y, len(alpha), beta, steps=1500, lr=1e-2, seed=seed)
        assert relu_objective(X, y, Un, an, beta) >= exact.objective * (1 - 1e-6)
