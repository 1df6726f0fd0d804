"""Robust (ℓ∞) convex training (zoo/training/convex_robust.py) and the attacks of analysis/attacks.py.

The certificate is checked by an exhaustive attack: on a 2-d problem every ℓ∞ ball is covered by
a grid holding its corners, and the worst loss found there must equal the program's."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analysis.attacks import fgsm, margin_loss, pgd, robust_accuracy
from tests.test_convex import cvxpy_optimum, train_recipe
from zoo import data as zoo_data
from zoo.errors import UserError
from zoo.training.convex_robust import certify, linear_parts, margin_bound, solve_robust
from zoo.training.convex_solvers import patterns_from_gates, recover_neurons

EPS = 0.1


def xor_problem(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X2 = rng.uniform(-1, 1, (n, 2))
    y = np.where(X2[:, 0] * X2[:, 1] > 0, 1.0, -1.0)
    X = np.concatenate([X2, np.ones((n, 1))], 1)  # a bias column the adversary does not move
    D, gates = patterns_from_gates(X, rng.standard_normal((12, 3)))
    return X, y, D, gates


def grid_attack(X, U, alpha, eps, points=41):
    """Every training point's ball sampled on a points × points grid (corners included): the net's
    outputs (n × grid) and each neuron's sign pattern there (n × grid × width)."""
    g = np.linspace(-eps, eps, points)
    dx, dy = np.meshgrid(g, g)
    delta = np.stack([dx.ravel(), dy.ravel(), np.zeros(dx.size)], 1)
    Xp = X[:, None, :] + delta[None]  # n × grid × 3
    pre = Xp @ U.T
    return np.maximum(pre, 0) @ alpha, pre >= 0


@pytest.fixture(scope="module")
def robust_net():
    X, y, D, _ = xor_problem()
    solution = solve_robust(X, y, D, beta=1e-3, epsilon=EPS, loss="hinge", perturbed=2)
    return X, y, D, solution, *recover_neurons(solution.V, solution.W)


def test_robust_certificate_holds_under_an_exhaustive_attack(robust_net):
    X, y, D, solution, U, alpha = robust_net
    assert solution.converged and len(alpha) > 0
    f, signs = grid_attack(X, U, alpha, EPS)
    # the robust cones: no neuron changes sign anywhere in any training point's ball
    assert (signs == signs[:, :1]).all()
    certified = certify(X, y, U, alpha, EPS, perturbed=2)
    assert certified.sum() >= len(y) // 2
    assert (np.sign(f[certified]) == y[certified, None]).all()  # certified points keep their label
    # the worst hinge loss of the attack is the program's per-point robust loss, and its mean +
    # the weight norm is the program's value (an independent evaluation of the cvxpy solution)
    worst = np.maximum(1 - y[:, None] * f, 0).max(1)
    f0, shift, stable = linear_parts(X, U, alpha, EPS, 2)
    assert stable.all()
    np.testing.assert_allclose(worst, np.maximum(1 - y * f0 + shift, 0), atol=1e-9)
    value = worst.mean() + 0.5e-3 * ((U ** 2).sum() + (alpha ** 2).sum())
    assert value == pytest.approx(solution.state["program_value"], rel=1e-5)


def test_the_ordinary_net_is_not_robust_and_eps_zero_is_the_ordinary_program():
    X, y, D, _ = xor_problem()
    plain = solve_robust(X, y, D, beta=1e-2, epsilon=0.0, loss="squared")
    assert plain.objective == pytest.approx(cvxpy_optimum(X, y, D, 1e-2), rel=1e-5)
    U, alpha = recover_neurons(plain.V, plain.W)
    f, signs = grid_attack(X, U, alpha, EPS)
    assert not (signs == signs[:, :1]).all()  # without ε some neuron flips inside a ball
    # the certificate stays sound for a net that is not robust: its margin bound is below every
    # margin the exhaustive attack sees, and tight where all neurons are stable
    bound = margin_bound(X, y, U, alpha, EPS, perturbed=2)
    seen = (y[:, None] * f).min(1)
    assert (bound <= seen + 1e-9).all()
    stable = (signs == signs[:, :1]).all((1, 2))
    assert stable.any() and np.allclose(bound[stable], seen[stable], atol=1e-9)


def torch_net(U, alpha):
    U, alpha = torch.as_tensor(U), torch.as_tensor(alpha)

    def model(x):
        f = torch.relu(x @ U.T) @ alpha
        return torch.stack([-f / 2, f / 2], 1)
    return model


def test_fgsm_and_pgd_find_the_exact_worst_case():
    # a linear classifier: the worst ℓ∞ perturbation is −ε y sign(w) (closed form)
    rng = np.random.default_rng(0)
    w = torch.as_tensor(rng.standard_normal(5))
    x = torch.as_tensor(rng.standard_normal((40, 5)))
    labels = (x @ w > 0).long()
    model = lambda z: torch.stack([-(z @ w) / 2, (z @ w) / 2], 1)  # noqa: E731
    exact = x - 0.3 * (2 * labels[:, None] - 1) * w.sign()
    torch.testing.assert_close(fgsm(model, x, labels, 0.3), exact)
    torch.testing.assert_close(pgd(model, x, labels, 0.3, steps=10), exact)
    margin = (x @ w).abs() - 0.3 * w.abs().sum()
    assert robust_accuracy(model, x, labels, 0.3, "pgd") == pytest.approx(float((margin > 0).double().mean()))
    # columns: the last column is never moved
    assert (fgsm(model, x, labels, 0.3, columns=4)[:, 4] == x[:, 4]).all()


def test_pgd_reaches_the_exhaustive_worst_case_of_the_robust_net(robust_net):
    X, y, _, _, U, alpha = robust_net
    f, _ = grid_attack(X, U, alpha, EPS)
    model, x = torch_net(U, alpha), torch.as_tensor(X)
    labels = torch.as_tensor((y > 0).astype(int))
    adv = pgd(model, x, labels, EPS, steps=20, restarts=2, columns=2)
    assert (adv - x).abs().max() <= EPS + 1e-12 and (adv[:, 2] == 1).all()
    found = margin_loss(model(adv), labels).detach().numpy()  # = −y f at the attack
    np.testing.assert_allclose(found, (-y[:, None] * f).max(1), atol=1e-9)
    certified = certify(X, y, U, alpha, EPS, perturbed=2)
    assert robust_accuracy(model, x, labels, EPS, "pgd", columns=2) == pytest.approx(certified.mean())


def test_trainer_robust_option_saves_a_certified_net(tmp_path):
    from safetensors.torch import load_file

    result = train_recipe(tmp_path, "training.trainer_options.solver=cvxpy", "training.trainer_options.loss=hinge",
                          "training.trainer_options.epsilon=0.05")
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    program = metrics["convex"]["programs"][0]
    assert metrics["convex"]["epsilon"] == 0.05 and program["lower_bound"] is None
    w = {k: v.double() for k, v in load_file(result.output_dir / "model.safetensors").items()}
    U, alpha = w["hidden.weight"].numpy(), (w["output.weight"][1] - w["output.weight"][0]).numpy()
    train = zoo_data.load("relu_teacher", dim=4, n_train=40, n_test=30)["train"][:]
    X, labels = train["input_features"].double().numpy(), train["labels"].numpy()
    y = labels * 2.0 - 1
    certified = certify(X, y, U, alpha, 0.05)
    assert certified.mean() == pytest.approx(program["certified_train_accuracy"]) and certified.any()
    model, x = torch_net(U, alpha), torch.as_tensor(X)
    adv = pgd(model, x, torch.as_tensor(labels), 0.05, steps=20, restarts=2)
    assert (model(adv).argmax(1).numpy()[certified] == labels[certified]).all()  # no attack breaks a certificate


def bad_data(kind):
    def loader(dim=4, n_train=20, n_test=20, label_noise=0.0, seed=0):
        from datasets import Dataset, DatasetDict

        x = np.random.default_rng(seed).standard_normal((n_train, dim)).astype(np.float32)
        labels = np.arange(n_train) % 2
        if kind == "nan":
            x[3, 1] = np.nan
        if kind == "one-class":
            labels = np.zeros(n_train, dtype=int)
        split = Dataset.from_dict({"input_features": x, "labels": labels})
        return DatasetDict({"train": split, "test": split})
    return loader


@pytest.mark.parametrize("override, message", [
    ("data.name=_convex_bad_nan", "non-finite values"),
    ("data.name=_convex_bad_one-class", "one class only"),
    ("training.trainer_options.epsilon=-0.1", "epsilon must be a finite number >= 0"),
    ("training.trainer_options.loss=logistic", "loss must be one of squared, hinge"),
    ("training.trainer_options.epsilon=0.1", "solved by training.trainer_options.solver: cvxpy"),
    ("training.trainer_options.patterns=all data.n_train=200", "patterns: all enumerates C\\(n, d-1\\)"),
])
def test_bad_inputs_are_one_line_errors_before_any_output(tmp_path, monkeypatch, override, message):
    for kind in ("nan", "one-class"):
        monkeypatch.setitem(zoo_data._LOADERS, f"_convex_bad_{kind}", bad_data(kind))
    with pytest.raises(UserError, match=message) as error:
        train_recipe(tmp_path, *override.split())
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()
