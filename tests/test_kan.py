"""The kan architecture: the fast B-spline layer equals the Cox–de Boor reference (and scipy),
ReLU-KAN's basis is its formula, AF-KAN's layer is its manual forward, bad configs are refused."""
import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

import zoo
from zoo.models.kan.configuration_kan import KANConfig
from zoo.models.kan.modeling_kan import (KANForImageClassification, cardinal_bspline_pieces, cox_de_boor_bases,
                                         fused_bspline_bases, local_bspline_bases, relu_kan_bases)


def inputs(n=300, features=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g) * 1.5  # inside, near and beyond the extended grid
    x[0, 0], x[1, 1], x[2, 2] = 1e6, -1e6, -1.0  # far outside both sides, and exactly on a knot
    return x


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("grid_size", [1, 3, 5])
def test_fast_bspline_bases_equal_cox_de_boor(grid_size, order):
    x = inputs()
    reference = cox_de_boor_bases(x, -1.0, 1.0, grid_size, order)
    assert reference.shape == (x.shape[0], grid_size + order, x.shape[1])
    for fast in (local_bspline_bases, fused_bspline_bases):
        torch.testing.assert_close(fast(x, -1.0, 1.0, grid_size, order), reference, rtol=0, atol=1e-5)
    # the autograd (out-of-place) form of the fused bases is the same function
    torch.testing.assert_close(fused_bspline_bases(x.clone().requires_grad_(), -1.0, 1.0, grid_size, order), reference,
                               rtol=0, atol=1e-5)


def test_fused_bases_in_row_chunks_equal_the_whole_batch(monkeypatch):
    import zoo.models.kan.modeling_kan as kan

    x = inputs(n=50, features=30)
    whole = kan.fused_bspline_bases(x, -1.0, 1.0, 5, 3), kan.relu_kan_bases(x, 0.0, 1.0, 5, 3)
    monkeypatch.setattr(kan, "CHUNK_VALUES", 8 * 30 * 7)  # chunks of 7 rows (the last one short)
    torch.testing.assert_close(kan.fused_bspline_bases(x, -1.0, 1.0, 5, 3), whole[0], rtol=0, atol=0)
    torch.testing.assert_close(kan.relu_kan_bases(x, 0.0, 1.0, 5, 3), whole[1], rtol=0, atol=0)


@pytest.mark.parametrize("order", [1, 3])
def test_bspline_bases_match_scipy(order):
    """Independent: scipy's design matrix on the same extended knot vector (float64), on the base
    interval [low, high] where scipy defines it."""
    low, high, grid_size = -0.5, 1.5, 4
    h = (high - low) / grid_size
    knots = low + h * np.arange(-order, grid_size + order + 1)
    x = np.random.default_rng(0).uniform(low, high - 1e-9, 400)
    expected = BSpline.design_matrix(x, knots, order, extrapolate=False).toarray()  # (400, G + k)
    for fast in (local_bspline_bases, fused_bspline_bases):
        got = fast(torch.tensor(x)[None], low, high, grid_size, order)[0]  # (1, G + k, 400)
        np.testing.assert_allclose(got.numpy().T, expected, atol=1e-10)


def test_cardinal_pieces_are_the_cubic_closed_form():
    # N_3(u + m), m = 0..3: u³/6, (1 + 3u + 3u² − 3u³)/6, (4 − 6u² + 3u³)/6, (1 − u)³/6
    expected = [[0, 0, 0, 1 / 6], [1 / 6, 1 / 2, 1 / 2, -1 / 2], [2 / 3, 0, -1, 1 / 2], [1 / 6, -1 / 2, 1 / 2, -1 / 6]]
    np.testing.assert_allclose(cardinal_bspline_pieces(3), expected, atol=1e-15)


def test_bspline_model_outputs_equal_the_reference_implementation():
    torch.manual_seed(0)
    config = dict(image_size=6, hidden_sizes=[7], grid_size=4, spline_order=3, num_labels=3)
    reference = KANForImageClassification(KANConfig(**config, bspline_impl="cox_de_boor")).eval()
    x = torch.rand(16, 1, 6, 6) * 2.4 - 1.2
    y = torch.arange(16) % 3
    reference(pixel_values=x, labels=y).loss.backward()
    for impl in ("fused", "local"):
        fast = KANForImageClassification(KANConfig(**config, bspline_impl=impl)).eval()
        fast.load_state_dict(reference.state_dict())
        torch.testing.assert_close(fast(pixel_values=x).logits, reference(pixel_values=x).logits, rtol=0, atol=1e-5)
        # and the gradients of the weights agree
        fast(pixel_values=x, labels=y).loss.backward()
        for (name, a), b in zip(fast.named_parameters(), reference.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_bspline_layer_is_its_manual_forward():
    torch.manual_seed(0)
    model = KANForImageClassification(KANConfig(image_size=2, hidden_sizes=[3], grid_size=3, spline_order=2, num_labels=2)).eval()
    x = torch.rand(5, 1, 2, 2) * 2 - 1
    layer = model.kan.layers[0]
    flat = x.flatten(1).double().numpy()
    knots = -1 + (2 / 3) * np.arange(-2, 3 + 2 + 1)
    w_s, w_b = layer.spline_weight.detach().double().numpy(), layer.base_weight.detach().double().numpy()
    expected = np.zeros((5, 3))
    for b in range(5):
        for i in range(4):
            bases = BSpline.design_matrix([flat[b, i]], knots, 2, extrapolate=False).toarray()[0]
            silu = flat[b, i] / (1 + np.exp(-flat[b, i]))
            expected[b] += bases @ w_s[:, i, :] + silu * w_b[:, i]
    np.testing.assert_allclose(layer(x.flatten(1)).detach().numpy(), expected, atol=1e-5)


def test_relu_kan_basis_is_its_formula():
    x = inputs(features=3).clamp(-2, 2)
    low, high, grid_size, order = 0.0, 1.0, 5, 3
    got = relu_kan_bases(x, low, high, grid_size, order)
    a = np.arange(-order, grid_size) / grid_size  # ReLU-KAN's phase_low on [0, 1]
    b = a + (order + 1) / grid_size
    r = 4 * grid_size**2 / (order + 1) ** 2
    xn = x.double().numpy()[:, None]  # (batch, 1, in) against the bumps (G + k, 1)
    expected = (np.maximum(xn - a[:, None], 0) * np.maximum(b[:, None] - xn, 0) * r) ** 2
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert got.max() <= 1 + 1e-6  # normalised: each bump peaks at 1 at its centre
    centre = torch.tensor([[(a[4] + b[4]) / 2]], dtype=torch.float32)
    assert relu_kan_bases(centre, low, high, grid_size, order)[0, 4, 0].item() == pytest.approx(1.0, abs=1e-6)


def test_relu_kan_layer_is_bases_times_weights_plus_bias():
    torch.manual_seed(0)
    model = KANForImageClassification(KANConfig(image_size=2, hidden_sizes=[3], basis="relu", grid_range=[0, 1], num_labels=2))
    layer, x = model.kan.layers[0], torch.rand(4, 4)
    bases = relu_kan_bases(x, 0.0, 1.0, 5, 3)  # (4, 8, 4)
    expected = torch.einsum("bji,jio->bo", bases, layer.weight) + layer.bias
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_af_kan_layer_is_its_manual_forward_and_batch_independent():
    torch.manual_seed(0)
    config = KANConfig(image_size=2, hidden_sizes=[3], basis="af", grid_range=[0, 1], norm="layer", num_labels=2)
    layer = KANForImageClassification(config).kan.layers[0].eval()
    x = torch.rand(6, 4)
    # manual: quad1 over silu, per-example min-max, attention over the inputs, LayerNorm, W·silu(z)
    xn = x.double().numpy()
    a = np.arange(-3, 5) / 5
    b = a + 4 / 5
    silu = lambda v: v / (1 + np.exp(-v))  # noqa: E731
    w_att = layer.reduce.weight.detach().double().numpy()[0]
    w = layer.weight.detach().double().numpy()
    temperature = max(layer.temperature.item(), 1.0)
    for n in range(6):
        phi = (silu(xn[n][:, None] - a) * silu(b - xn[n][:, None])) ** 2  # (in, G + k)
        phi = (phi - phi.min()) / (phi.max() - phi.min())
        score = phi @ w_att / temperature
        attention = np.exp(score - score.max()) / np.exp(score - score.max()).sum()
        z = attention * phi.sum(1)
        z = (z - z.mean()) / np.sqrt(z.var() + 1e-5)
        expected = w @ silu(z)
        np.testing.assert_allclose(layer(x[n:n + 1]).detach().numpy()[0], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(layer(x)[2], layer(x[2:3])[0], rtol=1e-5, atol=1e-6)  # no batch statistics


@pytest.mark.parametrize("field, value", [
    ("grid_size", 0), ("grid_size", -2), ("spline_order", -1), ("spline_order", 1.5), ("basis", "chebyshev"),
    ("grid_range", [1, 1]), ("bspline_impl", "fast"), ("af_function", "quad9"), ("norm", "group"),
])
def test_bad_config_is_a_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        KANConfig(**{field: value})
    with pytest.raises(zoo.UserError, match=field):
        zoo.create_model("kan", **{field: value})


def test_parameter_counts():
    bspline = zoo.create_model("kan", hidden_sizes=[64], num_labels=10)
    assert sum(p.numel() for p in bspline.parameters()) == (784 * 64 + 64 * 10) * (5 + 3 + 1)
    af = zoo.create_model("kan", hidden_sizes=[64], basis="af", norm="layer", num_labels=10)
    # W (out·in) + attention (G + k) + temperature + LayerNorm (2·in), per layer
    assert sum(p.numel() for p in af.parameters()) == 784 * 64 + 8 + 1 + 2 * 784 + 64 * 10 + 8 + 1 + 2 * 64


def test_relu_kan_hand_written_backward_is_the_formulas_gradient():
    """With autograd (inputs after a LayerNorm), the bases run the in-place form and a hand-written
    backward: its gradient equals autograd's through the formula, and passes gradcheck."""
    torch.manual_seed(0)
    x = (torch.rand(7, 5, dtype=torch.float64) * 1.4 - 0.2).requires_grad_()
    weights = torch.randn(7, 8, 5, dtype=torch.float64)
    a = torch.arange(-3, 5, dtype=torch.float64).view(-1, 1) / 5
    formula = (torch.relu(x.unsqueeze(-2) - a) * torch.relu(a + 0.8 - x.unsqueeze(-2)) * (4 * 25 / 16)) ** 2
    expected, = torch.autograd.grad((formula * weights).sum(), x)
    got, = torch.autograd.grad((relu_kan_bases(x, 0.0, 1.0, 5, 3) * weights).sum(), x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda v: relu_kan_bases(v, 0.0, 1.0, 5, 3), (x,))
