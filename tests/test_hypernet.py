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


def test_layernorm_hypernet_is_the_manual_forward():
    torch.manual_seed(0)
    m = HyperNetForImageClassification(HyperNetConfig(**TINY, parametrization="standard", hyper_norm="layernorm")).eval()
    h = m.hypernet
    assert len(h.norms) == 2
    z = torch.tensor([[0.3]])
    for layer in h.layers:  # Linear → LayerNorm (zero mean, unit variance over the width) → ReLU
        a = layer(z)
        z = torch.relu((a - a.mean()) / (a.var(unbiased=False) + 1e-5).sqrt())
    torch.testing.assert_close(h.theta(0.3), h.output(z)[0])
    with pytest.raises(ValueError, match="hyper_norm"):
        HyperNetConfig(hyper_norm="batchnorm")


def test_smoothed_loss_is_label_smoothing_cross_entropy():
    from zoo.training.hypernet import smoothed_cross_entropy

    torch.manual_seed(0)
    logits, labels = torch.randn(7, 5), torch.randint(5, (7,))
    for eps in (0.0, 0.2, 0.5):  # torch's label_smoothing: targets (1 − ε)·one-hot + ε/C
        expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=eps)
        torch.testing.assert_close(smoothed_cross_entropy(logits, labels, eps), expected)


def _recipe(tmp_path, **options):
    import json

    recipe = tmp_path / "hypernet-digits.yaml"
    recipe.write_text(json.dumps({
        "id": "hypernet-digits", "architecture": "hypernet",
        "config": {"image_size": 8, "target_hidden_size": 16, "hyper_hidden_sizes": [8], "num_labels": 10},
        "data": {"name": "digits"},
        "training": {"trainer": "hypernet", "trainer_options": options, "epochs": 2, "batch_size": 128,
                     "optimizer": "adam", "lr": 0.01, "seed": 3, "checkpoint_every": "never"}}))
    return recipe


def test_the_hypernet_trainer_draws_one_gamma_per_step_and_trains(tmp_path, monkeypatch):
    from zoo.training import train
    from zoo.training.hypernet import sample_gamma

    import functools

    seen = []
    forward = HyperNetForImageClassification.forward

    @functools.wraps(forward)  # the run reads the forward's signature
    def recording(self, *args, gamma=None, **kwargs):
        if self.training:
            seen.append(gamma)
        return forward(self, *args, gamma=gamma, **kwargs)

    monkeypatch.setattr(HyperNetForImageClassification, "forward", recording)
    result = train(_recipe(tmp_path, gamma_low=0.2, gamma_high=0.6), output_dir=tmp_path / "run")
    steps = result.metrics["step"]
    assert steps == len(seen) > 15
    assert seen == [sample_gamma(3, step, 0.2, 0.6) for step in range(steps)]  # reproducible, per (seed, step)
    assert min(seen) >= 0.2 and max(seen) <= 0.6 and len(set(seen)) == steps
    final = result.metrics["final"]
    assert final["eval_accuracy"] > 0.5  # it learns (10 classes: chance 0.1)
    assert 0 < final["eval_accuracy_gamma_low"] <= 1 and 0 < final["eval_accuracy_gamma_high"] <= 1


@pytest.mark.parametrize("options, message", [({"gamma_low": 0.8, "gamma_high": 0.2}, "gamma_low"),
                                              ({"max_smoothing": 2}, "max_smoothing"),
                                              ({"gamma_hi": 1.0}, "gamma_hi")])
def test_the_hypernet_trainer_refuses_bad_options(tmp_path, options, message):
    from zoo.training import train

    with pytest.raises(zoo.UserError, match=message):
        train(_recipe(tmp_path, **options), output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_hypernet_trainer_refuses_another_architecture():
    from types import SimpleNamespace

    from zoo.recipes import TRAINING_DEFAULTS
    from zoo.training.hypernet import HyperNetTrainer

    model = zoo.create_model("mlp", image_size=4, hidden_sizes=[5], num_labels=3)
    run = SimpleNamespace(unwrapped_model=model, model=model, settings=dict(TRAINING_DEFAULTS), total_steps=1,
                          options=dict(HyperNetTrainer.options))
    with pytest.raises(zoo.UserError, match="hypernet needs a hypernetwork"):
        HyperNetTrainer().setup(run)


def test_fan_out_init_follows_the_reference_library_and_shows_the_magnitude_proportionality():
    torch.manual_seed(0)
    config = dict(image_size=10, target_hidden_size=50, hyper_hidden_sizes=[16, 64], num_labels=10, hyper_init="fan_out")
    standard = HyperNetForImageClassification(HyperNetConfig(**config, parametrization="standard")).hypernet
    weight, rows, start = standard.output.weight.detach(), {}, 0
    for name, shape in standard.shapes:  # the output rows of each target tensor
        rows[name], start = weight[start:start + math.prod(shape)], start + math.prod(shape)
    assert rows["fc1.bias"].abs().max() == 0 and rows["fc2.bias"].abs().max() == 0
    assert standard.output.bias.abs().max() == 0 and all(layer.bias.abs().max() == 0 for layer in standard.layers)
    std = rows["fc1.weight"].std().item()  # Kaiming normal, fan-out = the 5000 rows of fc1.weight: √2/√5000
    assert abs(std / (2 / 5000) ** 0.5 - 1) < 0.05
    # zero biases + ReLU (positively homogeneous): the standard hypernet's output is proportional to γ
    torch.testing.assert_close(standard.theta(1.0), 5 * standard.theta(0.2))
    assert standard.theta(0.0).abs().max() == 0
    # MIP: the encoding has norm 1 whatever γ, so Δθ's magnitude does not collapse at small γ
    mip = HyperNetForImageClassification(HyperNetConfig(**config, parametrization="mip")).hypernet
    delta = [mip.delta(g).norm().item() for g in (0.0, 0.5, 1.0)]
    assert min(delta) > 0.2 * max(delta)
    with pytest.raises(ValueError, match="hyper_init"):
        HyperNetConfig(hyper_init="xavier")
