"""analysis.geometry against independent computations: CKA's identities and invariances, the
unbiased HSIC against its U-statistic definition, RSA against scipy, kernel–target alignment,
parallelism score and CCGP on constructed geometries, the geometry_task generator, the CLI."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from analysis.errors import UserError
from analysis.geometry import metrics


def rng(seed=0):
    return np.random.default_rng(seed)


def test_cka_of_a_representation_with_itself_is_one_and_invariant():
    x = rng().standard_normal((40, 12))
    q, _ = np.linalg.qr(rng(1).standard_normal((12, 12)))
    y = np.tanh(x @ rng(2).standard_normal((12, 9)))
    for unbiased in (True, False):
        assert metrics.linear_cka(x, x, unbiased) == pytest.approx(1.0, abs=1e-12)
        base = metrics.linear_cka(x, y, unbiased)
        assert 0.1 < base < 0.99
        assert metrics.linear_cka(x @ q, y, unbiased) == pytest.approx(base, abs=1e-10)  # orthogonal transform
        assert metrics.linear_cka(3.7 * x, 0.01 * y, unbiased) == pytest.approx(base, abs=1e-10)  # isotropic scaling
        assert metrics.linear_cka(x + 5.0, y, unbiased) == pytest.approx(base, abs=1e-10)  # a shift
    # not invariant to a non-isotropic scaling of the units
    assert metrics.linear_cka(x * np.arange(1, 13), y) != pytest.approx(metrics.linear_cka(x, y), abs=1e-3)
    # independent representations: the unbiased estimate is near 0, the biased one is not
    a, b = rng(3).standard_normal((60, 50)), rng(4).standard_normal((60, 50))
    assert abs(metrics.linear_cka(a, b)) < 0.05 < metrics.linear_cka(a, b, unbiased=False)


def test_unbiased_hsic_matches_its_u_statistic_definition():
    """Song et al. (2012): HSIC_u = (n)₂⁻¹ Σ_{i≠j} k_ij l_ij + (n)₄⁻¹ Σ_{i,j,q,r distinct} k_ij l_qr
    − 2 (n)₃⁻¹ Σ_{i,j,q distinct} k_ij l_iq, here summed term by term."""
    n = 7
    a, b = rng(5).standard_normal((n, 3)), rng(6).standard_normal((n, 4))
    K, L = a @ a.T, np.exp(-((b[:, None] - b[None]) ** 2).sum(-1))
    two = sum(K[i, j] * L[i, j] for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    four = sum(K[i, j] * L[q, r] for i, j, q, r in itertools.permutations(range(n), 4)) / (n * (n - 1) * (n - 2) * (n - 3))
    three = sum(K[i, j] * L[i, q] for i, j, q in itertools.permutations(range(n), 3)) / (n * (n - 1) * (n - 2))
    assert metrics.hsic_unbiased(K, L) == pytest.approx(two + four - 2 * three, rel=1e-10)
    H = np.eye(n) - np.ones((n, n)) / n
    assert metrics.hsic_biased(K, L) == pytest.approx(np.trace(K @ H @ L @ H) / (n - 1) ** 2, rel=1e-10)
    with pytest.raises(UserError, match="at least 4"):
        metrics.hsic_unbiased(K[:3, :3], L[:3, :3])


def test_rsa_and_rdm_against_scipy():
    x, y = rng(7).standard_normal((15, 6)), rng(8).standard_normal((15, 5))
    np.testing.assert_allclose(metrics.rdm(x, "correlation")[np.triu_indices(15, 1)], pdist(x, "correlation"), atol=1e-12)
    np.testing.assert_allclose(metrics.rdm(x, "euclidean")[np.triu_indices(15, 1)], pdist(x), atol=1e-9)
    expected = spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).correlation
    assert metrics.rsa(x, y) == pytest.approx(expected, abs=1e-12)
    assert metrics.rsa(x, 2 * x + 1, metric="euclidean") == pytest.approx(1.0)
    with pytest.raises(UserError, match="same examples"):
        metrics.rsa(x, y[:10])


def test_kernel_target_alignment():
    labels = np.repeat(np.arange(3), 10)
    onehot = np.eye(3)[labels]
    assert metrics.kernel_target_alignment(onehot, labels) == pytest.approx(1.0)
    assert metrics.kernel_target_alignment(onehot @ rng(9).standard_normal((3, 3)) @ np.diag([1, 1, 1]), labels) < 1.0
    # by hand, uncentred: one-dimensional x against ±1 targets
    x, t = np.array([[1.0], [2.0], [-1.0], [0.5]]), np.array([[1.0], [1.0], [-1.0], [-1.0]])
    K, T = x @ x.T, t @ t.T
    assert metrics.kernel_target_alignment(x, t, centered=False) == pytest.approx((K * T).sum() / np.linalg.norm(K) / np.linalg.norm(T))
    noise = rng(10).standard_normal((30, 20))
    assert metrics.kernel_target_alignment(noise, labels) < 0.3


def factorial(k, reps, rng_, noise=0.0, dim=10):
    latents = np.array(list(itertools.product((0, 1), repeat=k)))
    variables = np.repeat(latents, reps, axis=0)
    return variables, (2 * variables - 1) @ rng_.standard_normal((k, dim)) + noise * rng_.standard_normal((len(variables), dim))


def test_parallelism_and_ccgp_of_factorised_and_unstructured_geometries():
    variables, x = factorial(3, 5, rng(11), noise=0.05)
    assert metrics.parallelism_score(x, variables) == pytest.approx([1.0, 1.0, 1.0], abs=0.02)
    assert metrics.ccgp(x, variables) == pytest.approx([1.0, 1.0, 1.0])
    # each condition at a random point: no abstraction, coding vectors unrelated
    means = rng(12).standard_normal((8, 30))
    condition = np.repeat(np.arange(8), 20)
    y = means[condition] + 0.05 * rng(13).standard_normal((160, 30))
    scores = metrics.parallelism_score(y, variables.repeat(4, axis=0))
    assert max(abs(s) for s in scores) < 0.6
    assert np.mean(metrics.ccgp(y, variables.repeat(4, axis=0))) < 0.8
    with pytest.raises(UserError, match="every combination"):
        metrics.parallelism_score(x[:5], variables[:5])
    with pytest.raises(UserError, match="binary"):
        metrics.ccgp(x, variables * 3)


def test_geometry_task_knob_moves_the_input_towards_the_targets():
    from zoo import data

    def kta(alignment, target="low"):
        table = data.load("geometry_task", alignment=alignment, target=target, noise=0.05, split="train")[:]
        return metrics.kernel_target_alignment(table["input_features"].numpy(), table["labels"].numpy())

    values = [kta(a) for a in (0.0, 0.5, 1.0)]
    assert values[0] < values[1] < values[2] and values[2] > 0.9
    table = data.load("geometry_task", alignment=1.0, noise=0.0, split="test")[:]
    latents = table["latents"].numpy()
    assert table["labels"].shape == (256, 3) and (table["labels"].numpy() == latents).all()
    assert metrics.parallelism_score(table["input_features"].numpy(), latents) == pytest.approx([1.0] * 3)
    high = data.load("geometry_task", target="high", split="train")[:]
    assert high["labels"].shape[1] == 7
    with pytest.raises(UserError, match="alignment"):
        data.load("geometry_task", alignment=1.5)
    with pytest.raises(UserError, match="input_dim"):
        data.load("geometry_task", input_dim=4)


def test_geometry_cli_on_a_zoo_model(tmp_path, capsys):
    import torch

    import zoo
    from analysis.cli import main

    torch.manual_seed(0)
    model = zoo.create_model("two_layer_mlp", input_dim=32, hidden_dim=16, num_labels=3, activation="tanh",
                             problem_type="multi_label_classification")
    model.save_pretrained(tmp_path / "net")
    out = tmp_path / "geo"
    code = main(["geometry", "--models", str(tmp_path / "net"), "--data", "geometry_task", "--data-option", "alignment=0.8",
                 "--layers", "input", "hidden.act", "--variables", "latents", "--out", str(out), "--no-plots", "--quiet"])
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    names = [r["name"] for r in result["representations"]]
    assert names == ["input", "hidden.act"] and result["examples"] == 256 and result["conditions"] == 8
    assert result["cka"][0][0] == 1.0 and -1 <= result["cka"][0][1] <= 1
    hidden = result["representations"][1]
    assert len(hidden["parallelism"]) == 3 and len(hidden["ccgp"]) == 3 and hidden["cka_input"] is not None
    # the same numbers from the functions directly
    table = zoo.data.load("geometry_task", alignment=0.8, split="test")[:]
    with torch.no_grad():
        h = torch.tanh(table["input_features"] @ model.hidden.weight.T).double().numpy()
    assert hidden["cka_input"] == pytest.approx(metrics.linear_cka(h, table["input_features"].numpy()), abs=1e-6)
    # bad input: a layer the model lacks, an unknown data set, no --out
    assert main(["geometry", "--models", str(tmp_path / "net"), "--data", "geometry_task", "--layers", "nope",
                 "--out", str(tmp_path / "x")]) == 2
    assert "has no layer 'nope'" in capsys.readouterr().err
    assert main(["geometry", "--models", str(tmp_path / "net"), "--data", "no_such", "--layers", "input",
                 "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x").exists()


def test_geometry_cli_on_two_arrays(tmp_path):
    from analysis.cli import main

    x = rng(14).standard_normal((30, 5))
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x @ np.linalg.qr(rng(15).standard_normal((5, 5)))[0])
    assert main(["geometry", "--arrays", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    result = json.loads((tmp_path / "o" / "results.json").read_text())
    assert result["cka"][0][1] == pytest.approx(1.0) and result["rsa"][0][1] == pytest.approx(1.0)


def test_unit_specialisation_measures_of_the_dynamics_experiment():
    """The learning-dynamics measures on hand-made units: condition profiles, Treves–Rolls
    sparseness (0 flat, 1 one condition), active-condition counts, R² linear in the latents."""
    from experiments.geometry_tanh_relu.dynamics import active_conditions, condition_profiles, latent_r2, sparseness

    latents = np.array(list(itertools.product([0, 1], repeat=3)), dtype=float)  # 8 conditions
    condition = np.repeat(np.arange(8), 4)
    h = np.zeros((32, 4))
    h[:, 0] = 1.0                                    # same response everywhere
    h[condition == 5, 1] = 2.0                        # one condition only
    h[:, 2] = latents[condition] @ [1.0, -2.0, 0.5] + 3  # linear in the latents
    h[np.isin(condition, [0, 3]), 3] = 1.0            # two conditions, half of the examples of condition 3
    h[np.flatnonzero(condition == 3)[:2], 3] = 0.0
    profiles = condition_profiles(h, condition, 8)
    assert profiles.shape == (4, 8)
    np.testing.assert_allclose(profiles[3, [0, 3]], [1.0, 0.5])
    s = sparseness(profiles)
    np.testing.assert_allclose(s[:2], [0.0, 1.0], atol=1e-12)
    r = profiles[3]
    np.testing.assert_allclose(s[3], (1 - r.mean() ** 2 / (r**2).mean()) / (1 - 1 / 8))
    np.testing.assert_allclose(sparseness(np.zeros((1, 8))), [0.0])  # a silent unit has no preference
    assert active_conditions(h, condition, 8).tolist() == [8, 1, 8, 1]  # condition 3 is active on only half
    r2 = latent_r2(profiles, latents)
    np.testing.assert_allclose(r2[[0, 2]], [1.0, 1.0], atol=1e-12)
    one_corner = profiles[1] - profiles[1].mean()
    design = np.column_stack([np.ones(8), latents])
    fit = design @ np.linalg.lstsq(design, profiles[1], rcond=None)[0]
    np.testing.assert_allclose(r2[1], 1 - ((profiles[1] - fit) ** 2).sum() / (one_corner**2).sum())
    assert r2[1] < 0.5
