"""analysis.interaction_basis: the interaction basis drops a planted redundant direction (PCA keeps
it), the transform is invertible on the kept subspace and the layer's function is unchanged there,
the attributions and gradient Gram agree with closed forms computed here in numpy, decoder MLP
sublayers (RMSNorm + SwiGLU) work through the adapter, and bad input is a one-line error with no
output folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from analysis.errors import UserError
from analysis.interaction_basis import (
    decoder_mlp_nodes, edges_for_share, gini, gradient_gram, interaction_basis, module_nodes, top_k_share)


class Chain(nn.Module):
    """x → hidden = W1 x (+ optional tanh) → out = W2 hidden, float64."""

    main_input_name = "input_features"

    def __init__(self, W1, W2, tanh=False):
        super().__init__()
        self.hidden = nn.Linear(W1.shape[1], W1.shape[0], bias=False)
        self.act = nn.Tanh() if tanh else nn.Identity()
        self.out = nn.Linear(W2.shape[1], W2.shape[0], bias=False)
        self.double()  # before copying: float32 weights would round W1, W2
        with torch.no_grad():
            self.hidden.weight.copy_(torch.as_tensor(W1))
            self.out.weight.copy_(torch.as_tensor(W2))

    def forward(self, input_features):
        return self.out(self.act(self.hidden(input_features)))


def _batches(x, size=100):
    x = torch.as_tensor(x)
    return [{"input_features": x[i:i + size]} for i in range(0, len(x), size)]


@pytest.fixture(scope="module")
def planted():
    """Hidden unit 5 copies unit 0 (a linear dependence of activations: every basis drops it), and
    the output layer annihilates a direction v that does vary on the data (a linear dependence of
    the gradients: only the interaction basis drops it)."""
    rng = np.random.default_rng(0)
    W1 = rng.normal(size=(6, 6))
    W1[5] = W1[0]
    x = rng.normal(size=(300, 6))
    v = W1 @ rng.normal(size=6)
    v /= np.linalg.norm(v)
    W2 = rng.normal(size=(6, 6)) @ (np.eye(6) - np.outer(v, v))
    net = Chain(W1, W2)
    report = interaction_basis(net, module_nodes(net, ["input", "hidden", "out"]), _batches(x), "input_features")
    return dict(x=x, W1=W1, W2=W2, v=v, net=net, report=report)


def test_interaction_basis_drops_the_planted_direction_and_pca_does_not(planted):
    bases = planted["report"].bases["hidden"]
    ib, pca, v = bases["interaction"], bases["pca"], planted["v"]
    assert (bases["neuron"].size, pca.size, ib.kept_activations, ib.size) == (6, 5, 5, 4)
    assert np.linalg.norm(ib.C.T @ v) < 1e-9 * np.linalg.norm(ib.C)  # invisible to the interaction basis
    assert np.linalg.norm(pca.C.T @ v) > 0.999  # PCA keeps it whole
    h = planted["x"] @ planted["W1"].T
    assert np.abs(h @ v).std() > 0.1  # the planted direction does vary on the data
    layer = planted["report"].layers[1]
    assert layer.interaction_directions == 4 and layer.width == 6
    assert layer.gradient_eigenvalues[4] < 1e-12 * layer.gradient_eigenvalues[0]


def test_transform_is_invertible_on_the_kept_subspace_and_the_function_unchanged(planted):
    ib = planted["report"].bases["hidden"]["interaction"]
    assert np.allclose(ib.C_pinv @ ib.C, np.eye(ib.size), atol=1e-10)
    h = planted["x"] @ planted["W1"].T
    kept = (h @ ib.C) @ ib.C_pinv  # rows: reconstruct from the interaction coordinates
    W2 = planted["W2"]
    assert np.abs(kept - h).max() > 0.1  # the planted component is removed ...
    assert np.allclose(kept @ W2.T, h @ W2.T, atol=1e-9)  # ... and the output does not change
    assert np.allclose(kept @ ib.C, h @ ib.C, atol=1e-9)  # the coordinates are a function of the kept part
    assert planted["report"].layers[1].projection_effect < 1e-20
    # the coordinates are uncorrelated with variances Λ (their importance)
    G = h.T @ h / len(h)
    assert np.allclose(ib.C.T @ G @ ib.C, np.diag(ib.importance), rtol=1e-9, atol=1e-12 * ib.importance[0])


def test_attributions_and_gradient_gram_match_closed_forms():
    """tanh hidden layer: J(x) = diag(1 − tanh²(W1 x)) W1, computed here in numpy, independently
    of the hooks and autograd behind the tool."""
    rng = np.random.default_rng(1)
    W1, W2 = rng.normal(size=(5, 4)) / 2, rng.normal(size=(3, 5))
    x = rng.normal(size=(200, 4))
    net = Chain(W1, W2, tanh=True)
    nodes = module_nodes(net, ["input", "act", "out"])
    report = interaction_basis(net, nodes, _batches(x, 64), "input_features")
    a = np.tanh(x @ W1.T)
    J = (1 - a**2)[:, :, None] * W1[None]  # (n, 5, 4): ∂act/∂x
    # neuron basis: E[(J_ji x_i)²]
    assert np.allclose(report.edges[("input", "act")]["neuron"], ((J * x[:, None, :]) ** 2).mean(0), rtol=1e-10)
    # gradient Gram for arbitrary output directions C: E[Jᵀ C Cᵀ J]
    C = rng.normal(size=(5, 3))
    M = gradient_gram(net, nodes[0], nodes[1], _batches(x, 64), "input_features", C)
    JC = np.einsum("nji,jk->nki", J, C)
    assert np.allclose(M, np.einsum("nki,nkl->il", JC, JC) / len(x), rtol=1e-10)
    # interaction basis: Ĵ = C_actᵀ J P_in; E[Ĵᵀ Ĵ] = I and edges E[(Ĵ_ki f̂_i)²]
    b_in, b_act = report.bases["input"]["interaction"], report.bases["act"]["interaction"]
    J_hat = np.einsum("jk,nji,il->nkl", b_act.C, J, b_in.C_pinv.T)
    assert np.allclose(np.einsum("nki,nkl->il", J_hat, J_hat) / len(x), np.eye(b_in.size), atol=1e-9)
    f_hat = x @ b_in.C
    assert np.allclose(report.edges[("input", "act")]["interaction"], ((J_hat * f_hat[:, None, :]) ** 2).mean(0), rtol=1e-9)
    # a linear last step: edges are W² E[f²] in the neuron basis
    assert np.allclose(report.edges[("act", "out")]["neuron"], W2**2 * (a**2).mean(0)[None], rtol=1e-10)


def test_sparsity_measures():
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)
    assert gini([2, 2, 2]) == pytest.approx(0.0)
    assert top_k_share([1, 2, 3, 4], 2) == pytest.approx(0.7)
    assert top_k_share([1, 2], 10) == pytest.approx(1.0)
    assert edges_for_share([5, 3, 1, 1], 0.8) == 2 and edges_for_share([5, 3, 1, 1, 0, 0], 0.81) == 3


def test_decoder_mlp_sublayer_rmsnorm_swiglu():
    from analysis.models import DecoderAdapter
    from analysis.testing import make_tiny, random_prompts

    model = make_tiny("llama", num_layers=2).double()
    adapter = DecoderAdapter(model)
    nodes = decoder_mlp_nodes(adapter, 1)
    batches = [{"input_ids": p.reshape(1, -1)} for p in random_prompts((12, 9, 16))]
    report = interaction_basis(model, nodes, batches, "input_ids")
    d, hidden = adapter.hidden_size, model.config.intermediate_size
    assert [layer.width for layer in report.layers] == [d, hidden, d] and report.rows == 37
    # the hidden layer reaches the output through down_proj (rank ≤ d): at most d directions
    assert report.layers[1].interaction_directions <= d < hidden
    assert report.layers[1].projection_effect < 1e-20
    assert report.layers[0].projection_effect < 1e-6  # first-order truncation through SiLU·up
    with pytest.raises(UserError, match="out of range"):
        decoder_mlp_nodes(adapter, 5)


def test_layers_that_cannot_be_handled_are_clear_errors():
    net = Chain(np.eye(3), np.eye(3))
    with pytest.raises(UserError, match="has no layer 'hiden'.*its layers: hidden, act, out"):
        module_nodes(net, ["hiden", "out"])
    with pytest.raises(UserError, match="forward order"):
        interaction_basis(net, module_nodes(net, ["out", "hidden"]), _batches(np.ones((4, 3))), "input_features")
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    conv.main_input_name = "pixel_values"
    batches = [{"input": torch.ones(2, 1, 5, 5)}]
    with pytest.raises(UserError, match=r"\(2, 2, 3, 3\) tensors"):
        interaction_basis(conv, module_nodes(conv, ["0", "1"]), batches, "input")


@pytest.fixture(scope="module")
def li2_folder(tmp_path_factory):
    import zoo

    folder = tmp_path_factory.mktemp("li2")
    torch.manual_seed(0)
    zoo.create_model("li2_mlp", group_order=5, hidden_dim=8, activation="quadratic").save_pretrained(folder)
    return str(folder)


def test_cli_writes_results_and_refuses_bad_input_without_output(li2_folder, tmp_path, capsys):
    from analysis.cli import main

    common = ["interaction-basis", "--model", li2_folder, "--data", "modular_arithmetic",
              "--data-option", "modulus=5", "--split", "train", "--quiet"]
    out = tmp_path / "ok"
    assert main(common + ["--layers", "input", "li2.act", "output_layer", "--out", str(out), "--no-plots",
                          "--integration-steps", "4"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert [layer["name"] for layer in result["layers"]] == ["input", "li2.act", "output_layer"]
    # two one-hot blocks that each sum to 1: the input Gram has rank 2·5 − 1
    assert result["layers"][0]["width"] == 10 and result["layers"][0]["kept_activations"] == 9
    assert set(result["pairs"][0]["sparsity"]) == {"interaction", "pca", "neuron"}
    assert result["attribution"] == "integrated gradients (4 midpoint steps)"
    for args, message in (
        (["--layers", "input", "li2.actt"], "has no layer 'li2.actt'"),
        (["--mlp-layer", "0"], "not a decoder language model"),
    ):
        bad = tmp_path / "bad"
        assert main(common + args + ["--out", str(bad)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not bad.exists() and not list(tmp_path.glob(".interaction-basis-*"))


def test_cli_decoder_mlp_sublayer(tmp_path, capsys):
    from analysis.cli import main
    from analysis.testing import save_tiny

    folder = save_tiny(str(tmp_path / "llama"), "llama", num_layers=2)
    common = ["interaction-basis", "--model", folder, "--num-prompts", "2", "--max-tokens", "8", "--quiet", "--no-plots"]
    assert main(common + ["--mlp-layer", "1", "--out", str(tmp_path / "ok")]) == 0
    result = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert [layer["name"] for layer in result["layers"]] == [f"layers.1.mlp.{p}" for p in ("input", "hidden", "output")]
    assert result["rows"] == 16 and result["settings"]["family"] == "llama"
    assert main(common + ["--mlp-layer", "7", "--out", str(tmp_path / "bad")]) == 2
    assert "out of range: the model has layers 0..1" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_integrated_gradient_edges_satisfy_completeness():
    """One input unit: the integrated-gradient attribution x·∫∂g/∂x(αx)dα is g(x) − g(0) exactly
    (completeness), so the squared edge is E[(g(x) − g(0))²], computed here in numpy."""
    from analysis.interaction_basis import edge_attributions, neuron_basis

    rng = np.random.default_rng(2)
    W1 = rng.normal(size=(3, 1))
    net = Chain(W1, np.eye(3), tanh=True)
    x = rng.normal(size=(64, 1)) * 2
    nodes = module_nodes(net, ["input", "act"])
    neurons = {"neuron": (neuron_basis(np.eye(1)), neuron_basis(np.eye(3)))}
    edges = edge_attributions(net, nodes[0], nodes[1], _batches(x, 32), "input_features", neurons,
                              integration_steps=200)["neuron"]
    assert np.allclose(edges[:, 0], (np.tanh(x @ W1.T) ** 2).mean(0), rtol=1e-4)
    plain = edge_attributions(net, nodes[0], nodes[1], _batches(x, 32), "input_features", neurons)["neuron"]
    assert not np.allclose(plain, edges, rtol=1e-2)  # gradient × activation differs for tanh
