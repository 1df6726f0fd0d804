"""The hypernet architecture: MIP's constant-norm encoding, θ = θ₀ at Δθ = 0, the target MLP
is its manual forward with the predicted weights, bad configs are refused."""
import math

import pytest
import torch

import zoo
from zoo.models.hypernet.configuration_hypernet import HyperNetConfig
from zoo.models.hypernet.modeling_hypernet import HyperNetForImageClassification, encode_gamma

TINY = dict(image_size=3, target_hidden_size=4, hyper_hidden_sizes=[5, 6], num_labels=3)


def model(parametrization, seed=0):
    torch.manual_seed(seed)
    return HyperNetForImageClassification(HyperNetConfig(**TINY, parametrization=parametrization)).eval()


def test_mip_encoding_has_constant_norm_and_standard_does_not():
    gammas = torch.linspace(0, 1, 101)
    mip = encode_gamma(gammas, "mip")
    assert mip.shape == (101, 2)
    torch.testing.assert_close(mip.norm(dim=-1), torch.ones(101))
    torch.testing.assert_close(mip[:, 0], torch.cos(math.pi * gammas / 2))  # [cos(πγ/2), sin(πγ/2)]
    torch.testing.assert_close(mip[:, 1], torch.sin(math.pi * gammas / 2))
    standard = encode_gamma(gammas, "standard")
    assert standard.norm(dim=-1).max() == 1 and standard.norm(dim=-1).min() == 0  # magnitude = γ


def test_theta_is_theta0_when_delta_is_zero():
    m = model("mip")
    hypernet = m.hypernet
    with torch.no_grad():
        hypernet.output.weight.zero_()
        hypernet.output.bias.zero_()
    for gamma in (0.0, 0.3, 1.0):
        torch.testing.assert_close(hypernet.theta(gamma), hypernet.theta0, rtol=0, atol=0)
    # and in general θ = θ₀ + Δθ(γ), with θ₀ a parameter of its own that the standard form lacks
    m = model("mip", seed=1)
    torch.testing.assert_close(m.hypernet.theta(0.7), m.hypernet.theta0 + m.hypernet.delta(0.7))
    assert model("standard").hypernet.theta0 is None
    assert "hypernet.theta0" in dict(m.named_parameters())


def test_target_network_is_the_manual_forward_with_the_predicted_weights():
    for parametrization in ("standard", "mip"):
        m = model(parametrization)
        x = torch.rand(5, 1, 3, 3)
        theta = m.hypernet.theta(0.25).detach()
        w1, theta = theta[:36].view(4, 9), theta[36:]
        b1, theta = theta[:4], theta[4:]
        w2, b2 = theta[:12].view(3, 4), theta[12:]
        expected = torch.relu(x.flatten(1) @ w1.T + b1) @ w2.T + b2
        torch.testing.assert_close(m(pixel_values=x, gamma=0.25).logits, expected)
        # γ changes the weights, hence the outputs; no γ means config.default_gamma
        assert not torch.allclose(m(pixel_values=x, gamma=0.0).logits, m(pixel_values=x, gamma=1.0).logits)
        torch.testing.assert_close(m(pixel_values=x).logits, m(pixel_values=x, gamma=m.config.default_gamma).logits)


def test_theta0_starts_as_the_target_mlps_default_init():
    m = HyperNetForImageClassification(HyperNetConfig(image_size=10, target_hidden_size=50, num_labels=10))
    w = m.hypernet.split(m.hypernet.theta0.detach())
    assert w["fc1.weight"].abs().max() <= 100**-0.5 and w["fc1.weight"].abs().max() > 0.9 * 100**-0.5
    assert w["fc2.weight"].abs().max() <= 50**-0.5 and w["fc2.weight"].abs().max() > 0.9 * 50**-0.5


@pytest.mark.parametrize("field, value", [("parametrization", "magnitude"), ("default_gamma", 1.5),
                                          ("hyper_hidden_sizes", []), ("activation", "swish")])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        HyperNetConfig(**{field: value})
    with pytest.raises(zoo.UserError, match=field):
        zoo.create_model("hypernet", **{field: value})


def test_gamma_must_be_one_value():
    with pytest.raises(ValueError, match="gamma"):
        model("mip")(pixel_values=torch.rand(2, 1, 3, 3), gamma=torch.tensor([0.1, 0.2]))
