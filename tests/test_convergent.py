"""Convergent learning (analysis.convergent): streaming correlations, matching, baselines, sparse
prediction, mutual information, spectral groups, and the `zoo-analysis match` CLI."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import zoo
from analysis import convergent as cv
from analysis.errors import UserError

from .conftest import run

TINY_MLP = dict(image_size=8, num_channels=1, hidden_sizes=[24, 16], num_labels=10, activation="tanh")
LAYERS = ["layers.0.act", "layers.1.act"]


def tiny_mlp(seed: int, **changes):
    torch.manual_seed(seed)
    return zoo.create_model("mlp", **{**TINY_MLP, **changes}).eval()


def permuted_copy(model, perms):
    """The same function with the hidden units of each layer permuted: unit k of the copy is
    unit perms[l][k] of the original."""
    import copy

    other = copy.deepcopy(model)
    with torch.no_grad():
        for l, perm in enumerate(perms):
            lin = other.layers[l].linear
            lin.weight.copy_(lin.weight[perm])
            lin.bias.copy_(lin.bias[perm])
            nxt = other.layers[l + 1].linear if l + 1 < len(other.layers) else other.classifier
            nxt.weight.copy_(nxt.weight[:, perm])
    return other


def digits_batches(limit=600, batch_size=100):
    return cv.image_batches("digits", split="train", limit=limit, batch_size=batch_size)


# --- streaming statistics ------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-5), (torch.float64, 1e-10)])
def test_streaming_correlation_equals_numpy_corrcoef(dtype, tol):
    rng = np.random.default_rng(0)
    n, sizes = 1000, [7, 5, 4]
    latent = rng.standard_normal((n, 3))
    blocks = [latent @ rng.standard_normal((3, d)) + 0.5 * rng.standard_normal((n, d)) + 100.0 for d in sizes]
    stats = cv.LayerStatistics(sizes, compute_dtype=dtype)
    for start, stop in [(0, 13), (13, 400), (400, 401), (401, 1000)]:  # uneven batches, one of a single row
        stats.update([torch.from_numpy(b[start:stop]) for b in blocks])
    assert stats.n == n
    joint = np.corrcoef(np.concatenate(blocks, axis=1), rowvar=False)
    offsets = np.cumsum([0] + sizes)
    for i in range(3):
        for j in range(3):
            expected = joint[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]]
            np.testing.assert_allclose(stats.correlation(i, j), expected, atol=tol)


@pytest.mark.parametrize("unit_last_view, within, slice_elements", [
    (False, True, 1 << 19), (True, True, 1 << 19), (True, True, 50), (True, False, 50)])
def test_convolutional_units_are_channels_over_positions(monkeypatch, unit_last_view, within, slice_elements):
    # the unit-last view (what the hooks pass) is centred straight into channel-major layout, and
    # small slices of images force the cache-sized slicing through several slices per batch
    monkeypatch.setattr(cv.LayerStatistics, "_CACHE_ELEMENTS", slice_elements)
    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.standard_normal((6, 3, 5, 4))).float() + 50.0
    b = torch.from_numpy(rng.standard_normal((6, 2, 5, 4))).float() + a[:, :2]
    stats = cv.LayerStatistics([3, 2], within=within)
    for batch in (slice(0, 4), slice(4, 6)):
        stats.update([cv.flatten_units(a[batch], copy=not unit_last_view),
                      cv.flatten_units(b[batch], copy=not unit_last_view)])
    # independent: every (image, row, column) is one sample of each channel
    xa = a.double().numpy().transpose(1, 0, 2, 3).reshape(3, -1)
    xb = b.double().numpy().transpose(1, 0, 2, 3).reshape(2, -1)
    expected = np.corrcoef(np.concatenate([xa, xb]))
    np.testing.assert_allclose(stats.correlation(0, 1), expected[:3, 3:], atol=2e-5)
    np.testing.assert_allclose(stats.variance(0), xa.var(1, ddof=1), rtol=2e-5)
    np.testing.assert_allclose(stats.mean(1), xb.mean(1), rtol=1e-6)
    if within:
        np.testing.assert_allclose(stats.correlation(0, 0), expected[:3, :3], atol=2e-5)
    assert stats.n == 6 * 5 * 4


def test_dead_units_get_no_partner():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 4))
    y = x[:, [2, 0, 3, 1]].copy()
    x[:, 1] = 0.0  # a dead unit in A
    stats = cv.LayerStatistics([4, 4], compute_dtype=torch.float64)
    stats.update([torch.from_numpy(x), torch.from_numpy(y)])
    m = cv.match_units(stats.correlation(0, 1), ~stats.dead(0), ~stats.dead(1))
    assert m.partner[1] == -1 and np.isnan(m.value[1])
    assert [m.partner[k] for k in (0, 2, 3)] == [1, 0, 2]
    np.testing.assert_allclose(m.matched, 1.0, atol=1e-12)


# --- matching ------------------------------------------------------------------------------


def test_matching_against_brute_force():
    from itertools import permutations

    rng = np.random.default_rng(3)
    sim = rng.uniform(-1, 1, (6, 6))
    best = max(permutations(range(6)), key=lambda p: sum(sim[i, p[i]] for i in range(6)))
    m = cv.match_units(sim)
    assert tuple(m.partner) == best
    assert m.best_partner == sim.argmax(1).tolist()
    assert m.best_partner_b == sim.argmax(0).tolist()


def test_permuted_copy_is_recovered_exactly():
    model = tiny_mlp(0)
    rng = np.random.default_rng(0)
    perms = [rng.permutation(24), rng.permutation(16)]
    other = permuted_copy(model, perms)
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(model(pixel_values=x).logits, other(pixel_values=x).logits)  # same function
    total, batches = digits_batches()
    report = cv.compare_models([model, other], LAYERS, batches, total=total, progress=False, clusters=4)
    for comparison, perm in zip(report.comparisons, perms):
        # unit a of the original is unit k of the copy where perm[k] == a
        inverse = np.argsort(perm)
        assert comparison.matching.partner == inverse.tolist()
        np.testing.assert_allclose(comparison.matching.value, 1.0, atol=1e-5)
        assert comparison.mean_matched == pytest.approx(1.0, abs=1e-5)
        assert comparison.strong_share == 1.0
        assert comparison.matching.best_partner == inverse.tolist()
        assert comparison.baseline_mean < 0.9  # a rotation of the same space loses the basis
        assert comparison.sparse.single_unit_error == pytest.approx(0.0, abs=1e-4)
        assert np.mean(comparison.canonical) > 0.99
        # every spectral group of the joint graph holds each unit together with its copy
        la, lb = np.array(comparison.clusters.labels_a), np.array(comparison.clusters.labels_b)
        assert (la == lb[inverse]).all()


def test_independent_net_falls_to_the_baseline():
    a, b = tiny_mlp(0, hidden_sizes=[48, 32]), tiny_mlp(1, hidden_sizes=[48, 32])
    total, batches = digits_batches(limit=1000, batch_size=250)
    report = cv.compare_models([a, b], LAYERS, batches, total=total, progress=False, clusters=0, sparse=False,
                               rotations=5)
    copy = cv.compare_models([a, permuted_copy(a, [np.arange(48), np.arange(32)])], LAYERS,
                             digits_batches(limit=1000, batch_size=250)[1], progress=False, clusters=0, sparse=False)
    for independent, same in zip(report.comparisons, copy.comparisons):
        # the independent net's units are no better aligned with A's than a random basis of its space
        assert abs(independent.mean_matched - independent.baseline_mean) < 0.06, independent.layer
        assert same.mean_matched - same.baseline_mean > 0.15
        assert independent.mean_matched < same.mean_matched - 0.15


# --- sparse prediction -----------------------------------------------------------------------


def test_sparse_prediction_recovers_a_planted_mixing_matrix():
    rng = np.random.default_rng(4)
    n, da, db = 4000, 20, 12
    x = rng.standard_normal((n, da)) * rng.uniform(0.5, 2.0, da) + rng.uniform(-1, 1, da)
    mixing = np.zeros((da, db))
    for j in range(db):
        rows = rng.choice(da, 2, replace=False)
        mixing[rows, j] = rng.choice([-1, 1], 2) * rng.uniform(0.6, 1.5, 2)
    y = x @ mixing + 0.02 * rng.standard_normal((n, db))
    stats = cv.LayerStatistics([da, db], compute_dtype=torch.float64)
    for start in range(0, n, 512):
        stats.update([torch.from_numpy(x[start:start + 512]), torch.from_numpy(y[start:start + 512])])
    path = cv.sparse_prediction(stats.correlation(0, 0), stats.correlation(0, 1), keep_path=True,
                                num_lambdas=25, min_ratio=1e-3, max_iter=3000, tol=1e-9)
    support = mixing != 0
    exact = [k for k, w in enumerate(path.path_weights) if ((w != 0) == support).all()]
    assert exact, f"no λ on the path gives the planted support; nonzeros per unit: {path.nonzeros}"
    k = exact[0]
    assert path.nonzeros[k] == pytest.approx(2.0)
    assert path.refit_error[k] < 1e-3 < path.error[k]  # the selection is right; only the L1 shrinkage costs
    # least squares on the recovered support gives the planted weights back (raw units)
    sd_a, sd_b = np.sqrt(stats.variance(0)), np.sqrt(stats.variance(1))
    cov_aa, cov_ab = stats.covariance(0, 0), stats.covariance(0, 1)
    for j in range(db):
        rows = np.flatnonzero(path.path_weights[k][:, j])
        w = np.linalg.solve(cov_aa[np.ix_(rows, rows)], cov_ab[rows, j])
        np.testing.assert_allclose(w, mixing[rows, j], rtol=0.02, atol=0.01)
    # lasso weights are the planted ones, shrunk: same signs
    raw = cv.unstandardise(path.path_weights[k], sd_a, sd_b)
    assert (np.sign(raw[support]) == np.sign(mixing[support])).all()
    # one-to-many: two units predict far better than the best single unit
    assert path.error[-1] < 0.01 < 0.2 < path.single_unit_error
    assert path.full_error < 0.01


# --- mutual information ----------------------------------------------------------------------


def test_binned_mutual_information_against_histograms():
    rng = np.random.default_rng(5)
    n = 3000
    x = rng.standard_normal((n, 3))
    y = np.stack([x[:, 1] + 0.3 * rng.standard_normal(n), np.maximum(x[:, 0], 0), rng.standard_normal(n)], 1)
    mi = cv.BinnedMI([3, 3], bins=6)
    for start in range(0, n, 700):
        mi.update([torch.from_numpy(x[start:start + 700]).float(), torch.from_numpy(y[start:start + 700]).float()])
    got = mi.mutual_information(0, 1)

    def entropy(counts):
        p = counts[counts > 0] / n
        return -(p * np.log(p)).sum() + ((counts > 0).sum() - 1) / (2 * n)

    def binned(v, edges):
        return np.searchsorted(edges, v, side="right")

    for i in range(3):
        for j in range(3):
            bi = binned(x[:, i].astype(np.float32), mi.edges[0][i].numpy())
            bj = binned(y[:, j].astype(np.float32), mi.edges[1][j].numpy())
            joint = np.zeros((6, 6))
            np.add.at(joint, (bi, bj), 1)
            expected = max(entropy(joint.sum(1)) + entropy(joint.sum(0)) - entropy(joint), 0.0)
            assert got[i, j] == pytest.approx(expected, abs=1e-9)
    assert got[1, 0] > 0.5 and got[0, 1] > 0.2 and got[2, 2] < 0.01
    assert cv.match_units(got).partner == [1, 0, 2]


# --- language models ---------------------------------------------------------------------------


def test_llama_mlp_units_through_text(tmp_path):
    from analysis.testing import make_tokenizer, make_tiny

    model = make_tiny("llama", seed=0, num_layers=2).eval()
    other = make_tiny("llama", seed=0, num_layers=2).eval()
    inter = model.config.intermediate_size
    perm = torch.from_numpy(np.random.default_rng(0).permutation(inter))
    with torch.no_grad():
        mlp = other.model.layers[0].mlp
        mlp.gate_proj.weight.copy_(mlp.gate_proj.weight[perm])
        mlp.up_proj.weight.copy_(mlp.up_proj.weight[perm])
        mlp.down_proj.weight.copy_(mlp.down_proj.weight[:, perm])
    tok = make_tokenizer()
    total, batches = cv.text_batches([tok, tok], ["a", "b"], num_prompts=6, max_tokens=24, batch_size=3)
    layer = "model.layers.0.mlp.act_fn"
    report = cv.compare_models([model, other], [layer], batches, total=total, progress=False, clusters=0)
    c = report.comparisons[0]
    assert c.matching.partner == torch.argsort(perm).tolist()
    assert c.mean_matched == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(UserError, match="has no layer 'model.layers.0.mlp.act'.*close matches: model.layers.0.mlp.act_fn"):
        cv.check_layers(model, ["model.layers.0.mlp.act"], "tiny-llama")


# --- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def model_folders(tmp_path):
    model = tiny_mlp(0)
    perms = [np.random.default_rng(7).permutation(24), np.random.default_rng(8).permutation(16)]
    a, b = tmp_path / "net-a", tmp_path / "net-b"
    model.save_pretrained(a)
    permuted_copy(model, perms).save_pretrained(b)
    return a, b, perms


def cli(args, capsys):
    """`zoo-analysis` in this process (a subprocess costs a minute of imports on a loaded machine)."""
    from analysis.cli import main

    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_recovers_the_permutation(model_folders, tmp_path, hf_env, capsys):
    a, b, perms = model_folders
    out = tmp_path / "out"
    code, stdout, stderr = cli(["match", "--models", str(a), str(b), "--data", "digits", "--split", "train",
                                "--limit", "500", "--layers", *LAYERS, "--out", str(out), "--mi-bins", "6",
                                "--clusters", "4", "--quiet"], capsys)
    assert code == 0, stderr
    assert str(out) in stdout
    results = json.loads((out / "results.json").read_text())
    assert [c["layer"] for c in results["comparisons"]] == LAYERS
    for comparison, perm in zip(results["comparisons"], perms):
        assert comparison["matching"]["partner"] == np.argsort(perm).tolist()
        assert comparison["mean_matched"] == pytest.approx(1.0, abs=1e-5)
        assert comparison["mi_matching"]["partner"] == np.argsort(perm).tolist()
    assert (out / "summary.md").read_text().count("| layers.") == 2
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert "layers_summary.png" in figures and sum(f.startswith("matching__") for f in figures) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")]  # no temporary folder left

    code, stdout, stderr = cli(["match", "--list-layers", "--models", str(a), "--data", "digits"], capsys)
    assert code == 0, stderr
    assert "layers.1.act  Tanh  2×16" in stdout

    # matching alone (no baseline, sparse maps or clusters) runs on the cross-model statistics only
    code, stdout, stderr = cli(["match", "--models", str(a), str(b), "--data", "digits", "--split", "train",
                                "--limit", "300", "--layers", *LAYERS, "--out", str(tmp_path / "bare"),
                                "--rotations", "0", "--no-sparse", "--no-clusters", "--no-plots", "--quiet"], capsys)
    assert code == 0, stderr
    results = json.loads((tmp_path / "bare" / "results.json").read_text())
    for comparison, perm in zip(results["comparisons"], perms):
        assert comparison["matching"]["partner"] == np.argsort(perm).tolist()
        assert comparison["mean_matched"] == pytest.approx(1.0, abs=1e-5)


def test_cli_errors_leave_no_output(model_folders, tmp_path, hf_env, capsys):
    a, b, _ = model_folders
    out = tmp_path / "out"
    code, _, stderr = cli(["match", "--models", str(a), str(b), "--data", "digits",
                           "--layers", "layers.0.activation", "--out", str(out)], capsys)
    assert code == 2
    assert "has no layer 'layers.0.activation'" in stderr and "layers.0.act," in stderr
    assert len([line for line in stderr.splitlines() if "error" in line]) == 1
    assert not out.exists()

    torch.manual_seed(0)
    other = tmp_path / "xor-net"
    zoo.create_model("two_layer_mlp", **zoo.get_architecture("two_layer_mlp").tiny_config).save_pretrained(other)
    code, _, stderr = cli(["match", "--models", str(a), str(other), "--data", "digits",
                           "--layers", "layers.0.act", "--out", str(out)], capsys)
    assert code == 2
    assert "different kinds of input" in stderr and "pixel_values" in stderr and "input_features" in stderr
    assert not out.exists()

    code, _, stderr = cli(["match", "--models", str(a), str(b), "--layers", "layers.0.act", "--out", str(out)], capsys)
    assert code == 2 and "image models need --data" in stderr and "fashion_mnist" in stderr
    assert not out.exists()

    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, _, stderr = cli(["match", "--models", str(a), str(b), "--data", "digits",
                           "--layers", "layers.0.act", "--out", str(out)], capsys)
    assert code == 2 and "not an empty folder" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_cli_error_in_a_real_process(model_folders, tmp_path, hf_env):
    a, b, _ = model_folders
    out = tmp_path / "out"
    result = run([sys.executable, "-m", "analysis.cli", "match", "--models", str(a), str(b), "--data", "digits",
                  "--layers", "layers.9.act", "--out", str(out)], env={**hf_env, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("zoo-analysis match: error: ")
    assert "has no layer 'layers.9.act'; close matches: layers.1.act" in errors[0]
    assert not out.exists()


def test_api_errors():
    model = tiny_mlp(0)
    with pytest.raises(UserError, match="has no layer 'nope'; its layers: layers, layers.0, layers.0.linear"):
        cv.check_layers(model, ["nope"], "tiny")
    with pytest.raises(UserError, match="at least two models"):
        cv.compare_models([model], LAYERS, iter([]))


@pytest.mark.parametrize("shape", [(7, 7), (5, 9), (9, 5)])
def test_reduced_cost_matching_equals_plain_assignment(shape):
    """match_units minimises a row/column-reduced cost: same optimum as maximising directly,
    also for rectangular matrices (where only the fully assigned side may be reduced)."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(sum(shape))
    sim = rng.uniform(-1, 1, shape)
    sim[:, 0] = sim[:, 1]  # ties: semi-matching must still agree with argmax (first maximum)
    rows, cols = linear_sum_assignment(sim, maximize=True)
    m = cv.match_units(sim)
    matched = [(a, p) for a, p in enumerate(m.partner) if p >= 0]
    assert len(matched) == min(shape)
    assert sum(sim[a, p] for a, p in matched) == pytest.approx(sim[rows, cols].sum(), abs=1e-12)
    assert m.best_partner == sim.argmax(1).tolist()
    assert m.best_partner_b == sim.argmax(0).tolist()
    assert m.best_value_b == sim.max(0).tolist()


def test_cli_failure_while_writing_leaves_no_output(model_folders, tmp_path, hf_env, capsys, monkeypatch):
    """The runner's staging: a failure after results.json is written (here in the figures) removes
    the staging folder and leaves --out absent; the common options are the runner's."""
    a, b, _ = model_folders
    out = tmp_path / "out"

    def broken(self, folder):
        raise UserError("figure failed")

    monkeypatch.setattr(cv.ConvergentReport, "plot", broken)
    code, _, stderr = cli(["match", "--models", str(a), str(b), "--data", "digits", "--limit", "100",
                           "--layers", "layers.0.act", "--out", str(out), "--quiet", "--clusters", "2"], capsys)
    assert code == 2 and "figure failed" in stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    code, _, stderr = cli(["match", "--models", str(a), str(b), "--data", "digits", "--layers", "layers.0.act",
                           "--out", str(out), "--threads", "0"], capsys)
    assert code == 2 and "--threads must be at least 1" in stderr and not out.exists()


def test_package_keeps_every_round1_name():
    """analysis.convergent became a package: every name of the round-1 module is importable from
    it, the private ones others used are the public functions under their old names."""
    round1 = ["LayerStatistics", "BinnedMI", "Matching", "SparsePath", "SpectralGroups", "PairComparison",
              "ConvergentReport", "flatten_units", "list_layers", "check_layers", "collect_statistics",
              "match_units", "rotation_baseline", "canonical_correlations", "sparse_prediction", "spectral_groups",
              "compare_pair", "compare_models", "load_models", "image_batches", "text_batches", "unstandardise",
              "add_cli"]
    assert [n for n in round1 if not hasattr(cv, n)] == []
    assert [n for n in cv.__all__ if not hasattr(cv, n)] == []
    assert cv._column_argmax is cv.column_argmax and cv._check_inputs is cv.check_inputs
    assert cv._layer_sizes is cv.layer_shapes and cv._jsonable is cv.jsonable
    from analysis.convergent import matching, statistics

    assert cv.match_units is matching.match_units and cv.LayerStatistics is statistics.LayerStatistics


def test_cli_refuses_different_tokenizers_before_loading_any_weights(tmp_path, hf_env, capsys, monkeypatch):
    """Only the tokenizers are read: the weights of two models whose tokenizers split the text
    differently are never loaded (issue: 2 minutes and 4.4 GB before the refusal)."""
    import analysis.convergent.inputs as inputs
    from analysis.testing import make_tokenizer, save_tiny

    a = save_tiny(str(tmp_path / "lm-a"), num_layers=2)
    b = save_tiny(str(tmp_path / "lm-b"), num_layers=2)
    make_tokenizer(vocab_size=40).save_pretrained(b)  # most words become [UNK]: another split

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the tokenizer check")

    monkeypatch.setattr(inputs, "load_models", no_weights)
    out = tmp_path / "out"
    code, _, stderr = cli(["match", "--models", a, b, "--layers", "model.layers.0.mlp.act_fn", "--out", str(out)], capsys)
    assert code == 2 and "tokenizes the text differently" in stderr and not out.exists()
    # the same tokenizer passes the early check and reaches the (here forbidden) weights
    with pytest.raises(AssertionError, match="weights were loaded"):
        cli(["match", "--models", a, a, "--layers", "model.layers.0.mlp.act_fn", "--out", str(out)], capsys)


def test_sparse_products_leave_the_lasso_path_unchanged(monkeypatch):
    """The lasso iterates go through a sparse product when they are sparse enough: the path
    (errors, non-zeros, kept weights) equals the all-dense computation to float rounding."""
    import analysis.convergent.sparse as sp

    c_aa, c_ab = _lasso_problems()["mixture"]
    fast = sp.sparse_prediction(c_aa, c_ab, solver="dense")
    monkeypatch.setattr(sp, "SPARSE_PRODUCT_DENSITY", 0.0)  # never sparse
    dense = sp.sparse_prediction(c_aa, c_ab, solver="dense")
    assert fast.iterations == dense.iterations and fast.kept_index == dense.kept_index
    np.testing.assert_allclose(fast.error, dense.error, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.weights, dense.weights, rtol=0, atol=1e-12)
    assert min(fast.nonzeros) < 0.1 * 40  # the sparse branch was taken on part of the path
    # the per-column prediction error against its definition, 1 - 2 wᵀc + wᵀ C w
    w = fast.weights
    direct = [1 - 2 * w[:, j] @ c_ab[:, j] + w[:, j] @ c_aa @ w[:, j] for j in range(25)]
    np.testing.assert_allclose(sp._prediction_error(c_aa, c_ab, w), direct, atol=1e-12)


def _lasso_problems():
    """A one-to-many pair (B's units sparse mixtures of A's, plus noise) and a self-pair of
    correlated ReLU units (fewer samples than units, as in the 1 536-unit benchmark)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 40))
    b = a[:, :30] @ (rng.standard_normal((30, 25)) * (rng.random((30, 25)) < 0.1)) + 0.3 * rng.standard_normal((400, 25))
    z = np.concatenate([a, b], 1)
    z = (z - z.mean(0)) / z.std(0)
    c = z.T @ z / len(z)
    x = np.maximum(rng.standard_normal((96, 8)) @ rng.standard_normal((8, 120)) + 0.5 * rng.standard_normal((96, 120)), 0)
    x = (x - x.mean(0)) / x.std(0)
    return {"mixture": (c[:40, :40], c[:40, 40:]), "self": (x.T @ x / len(x), x.T @ x / len(x))}


@pytest.mark.parametrize("problem", ["mixture", "self"])
def test_screened_lasso_is_the_dense_one_and_meets_the_optimality_conditions(problem):
    """The working-set solver gives the dense FISTA's path to the solvers' tolerance, and its
    weights satisfy the lasso's optimality conditions on every entry (independent of either
    solver): ∂_ij = (C_AA W − C_AB)_ij is −λ·sign(w_ij) on the support and |∂_ij| ≤ λ off it."""
    import analysis.convergent.sparse as sp

    c_aa, c_ab = _lasso_problems()[problem]
    screened = sp.sparse_prediction(c_aa, c_ab, stop_nonzeros=None, keep_path=True, max_iter=5000, tol=1e-10)
    dense = sp.sparse_prediction(c_aa, c_ab, stop_nonzeros=None, keep_path=True, max_iter=5000, tol=1e-10,
                                 solver="dense")
    assert screened.nonzeros == dense.nonzeros and screened.kept_index == dense.kept_index
    np.testing.assert_allclose(screened.error, dense.error, rtol=0, atol=1e-8)
    np.testing.assert_allclose(screened.weights, dense.weights, rtol=0, atol=1e-7)
    for lam, w in zip(screened.lambdas, screened.path_weights):
        gradient = c_aa @ w - c_ab
        on = w != 0
        np.testing.assert_allclose(gradient[on], -lam * np.sign(w[on]), rtol=0, atol=1e-6)
        assert np.abs(gradient[~on]).max() <= lam * (1 + 1e-6)
    if problem == "self":  # the closed form: each unit predicts itself, shrunk, W = (1 - λ) I
        for lam, w in zip(screened.lambdas, screened.path_weights):
            np.testing.assert_allclose(w, (1 - lam) * np.eye(len(w)), rtol=0, atol=1e-6)
    else:
        assert max(screened.nonzeros) > 4  # the path went well past one unit per target
    with pytest.raises(ValueError, match="solver must be"):
        sp.sparse_prediction(c_aa, c_ab, solver="admm")


def test_the_lambda_path_stops_once_it_passes_what_is_reported():
    """stop_nonzeros ends the path after the first λ with that many units per target: what is
    reported (the errors at 1 and 4 units, the kept weights) equals the whole path's, which is
    the cut path continued."""
    import analysis.convergent.sparse as sp

    c_aa, c_ab = _lasso_problems()["mixture"]
    whole = sp.sparse_prediction(c_aa, c_ab, stop_nonzeros=None)
    cut = sp.sparse_prediction(c_aa, c_ab, stop_nonzeros=8.0)
    k = len(cut.lambdas)
    assert k < len(whole.lambdas) and cut.nonzeros[-1] >= 8.0 > max(cut.nonzeros[:-1])
    assert cut.lambdas == whole.lambdas[:k] and cut.error == whole.error[:k] and cut.nonzeros == whole.nonzeros[:k]
    assert cut.error_at(1.0) == whole.error_at(1.0) and cut.error_at(4.0) == whole.error_at(4.0)
    assert cut.kept_index == whole.kept_index and np.array_equal(cut.weights, whole.weights)
