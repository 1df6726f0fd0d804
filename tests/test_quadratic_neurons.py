"""Quadratic neurons (config `neuron: quadratic` of mlp and convnet) and the ReLinear trainer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import UserError

from .conftest import run_python

MLP = dict(image_size=4, num_channels=1, hidden_sizes=[6, 5], num_labels=3)
CONVNET = dict(image_size=8, num_channels=1, channels=[2, 3], hidden_size=4, num_labels=3)


def seeded(name, seed=0, **config):
    torch.manual_seed(seed)
    return zoo.create_model(name, **config).eval()


@pytest.mark.parametrize("name,config", [("mlp", MLP), ("convnet", CONVNET)])
def test_relinear_start_is_the_linear_net_of_the_same_seed(name, config):
    linear = seeded(name, **config)
    quadratic = seeded(name, neuron="quadratic", **config)
    x = torch.rand(7, 1, config["image_size"], config["image_size"])
    assert torch.equal(quadratic(pixel_values=x).logits, linear(pixel_values=x).logits)
    # the same W_r, b_r under the linear layer's names; the quadratic terms are ReLinear's constants
    linear_state, quadratic_state = linear.state_dict(), quadratic.state_dict()
    for key, value in linear_state.items():
        assert torch.equal(quadratic_state[key], value), key
    extra = sorted(set(quadratic_state) - set(linear_state))
    assert extra and all(k.rsplit(".", 1)[1] in ("weight_g", "bias_g", "weight_b", "bias_b") for k in extra)
    for key in extra:
        expected = 1.0 if key.endswith("bias_g") else 0.0
        assert torch.all(quadratic_state[key] == expected), key
    # a trained linear checkpoint's weights load into the quadratic net and give its function
    with torch.no_grad():
        for p in linear.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    fresh = seeded(name, seed=5, neuron="quadratic", **config)
    missing, unexpected = fresh.load_state_dict(linear.state_dict(), strict=False)
    assert sorted(missing) == extra and not unexpected
    assert torch.equal(fresh(pixel_values=x).logits, linear(pixel_values=x).logits)


def test_random_init_is_not_linear():
    linear = seeded("mlp", **MLP)
    quadratic = seeded("mlp", neuron="quadratic", quadratic_init="random", **MLP)
    x = torch.rand(7, 1, 4, 4)
    assert not torch.allclose(quadratic(pixel_values=x).logits, linear(pixel_values=x).logits, atol=1e-3)
    assert quadratic.layers[0].linear.weight_g.abs().min() > 0  # every term drawn


def _quad(x, layer):
    """(W_r x + b_r) (W_g x + b_g) + W_b x² + c in float64 numpy, x: (N, in)."""
    p = {k: v.detach().double().numpy() for k, v in layer.named_parameters()}
    return (x @ p["weight"].T + p["bias"]) * (x @ p["weight_g"].T + p["bias_g"]) + (x * x) @ p["weight_b"].T + p["bias_b"]


def test_quadratic_mlp_matches_manual_forward():
    model = seeded("mlp", neuron="quadratic", quadratic_init="random", **MLP)
    x = torch.rand(3, 1, 4, 4)
    h = x.flatten(1).double().numpy()
    for block in model.layers:
        h = np.maximum(_quad(h, block.linear), 0.0)
    c = model.classifier
    manual = h @ c.weight.detach().double().numpy().T + c.bias.detach().double().numpy()
    np.testing.assert_allclose(model(pixel_values=x).logits.detach().double().numpy(), manual, rtol=1e-5, atol=1e-6)


def _patches(x, k):
    """(N, C, H, W) zero-padded → (N, H, W, C*k*k) windows, channel-major like a conv weight's flattening."""
    n, c, h, w = x.shape
    pad = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    out = np.empty((n, h, w, c * k * k))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = pad[:, :, i:i + k, j:j + k].reshape(n, -1)
    return out


def test_quadratic_convnet_matches_manual_forward():
    model = seeded("convnet", neuron="quadratic", quadratic_init="random", **CONVNET)
    x = torch.rand(2, 1, 8, 8)
    h = x.double().numpy()
    for block in model.blocks:
        conv = block.conv
        flat = {k: v for k, v in conv.named_parameters()}
        as_linear = torch.nn.Module()  # the conv's weights as (out, C*k*k) matrices
        for k, v in flat.items():
            as_linear.register_parameter(k, torch.nn.Parameter(v.detach().flatten(1) if v.ndim > 1 else v.detach()))
        n, _, side, _ = h.shape
        y = _quad(_patches(h, 3).reshape(-1, as_linear.weight.shape[1]), as_linear)
        y = np.maximum(y.reshape(n, side, side, -1).transpose(0, 3, 1, 2), 0.0)
        h = y.reshape(n, y.shape[1], side // 2, 2, side // 2, 2).max(axis=(3, 5))  # 2×2 max pool
    h = np.maximum(_quad(h.reshape(len(h), -1), model.fc), 0.0)
    c = model.classifier
    manual = h @ c.weight.detach().double().numpy().T + c.bias.detach().double().numpy()
    np.testing.assert_allclose(model(pixel_values=x).logits.detach().double().numpy(), manual, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,config", [("mlp", MLP), ("convnet", CONVNET)])
@pytest.mark.parametrize("field,value", [("neuron", "cubic"), ("quadratic_init", "zeros")])
def test_unknown_neuron_kind_names_the_field(name, config, field, value):
    config_class = zoo.get_architecture(name).config_class
    with pytest.raises(ValueError, match=rf"^{field} must be one of linear, quadratic; got '{value}'$"
                       if field == "neuron" else rf"^{field} must be one of relinear, random; got '{value}'$"):
        config_class(**config, **{field: value})
    with pytest.raises(UserError, match=rf"invalid {name} config: {field} must be one of"):
        zoo.create_model(name, **config, **{field: value})


def test_old_configs_default_to_linear_neurons():
    config = zoo.get_architecture("convnet").config_class(**CONVNET)
    payload = config.to_dict()
    del payload["neuron"], payload["quadratic_init"]  # a config.json written before the field existed
    again = type(config).from_dict(payload)
    assert again.neuron == "linear"
    model = zoo.create_model("convnet", **CONVNET)
    assert type(model.fc) is torch.nn.Linear and type(model.blocks[0].conv) is torch.nn.Conv2d


def _recipe(tmp_path, neuron="quadratic", **options):
    from zoo.recipes import load_recipe

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "relinear.yaml"
    path.write_text(json.dumps({
        "id": "tiny-relinear", "architecture": "mlp",
        "config": {"image_size": 8, "hidden_sizes": [12], "num_labels": 10, "neuron": neuron},
        "data": {"name": "digits"},
        "training": {"trainer": "relinear", "trainer_options": options, "epochs": 1, "batch_size": 64,
                     "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "checkpoint_every": "never", "seed": 1},
    }))
    return load_recipe(path, [f"output_dir={tmp_path / 'out'}"])


def test_relinear_trainer_gives_quadratic_terms_their_own_learning_rate(tmp_path):
    from zoo.training import train

    from transformers import AutoModelForImageClassification

    result = train(_recipe(tmp_path, quadratic_lr_scale=0.0))
    model = AutoModelForImageClassification.from_pretrained(result.output_dir)
    layer = model.layers[0].linear
    start = seeded("mlp", seed=1, image_size=8, hidden_sizes=[12], num_labels=10, neuron="quadratic").layers[0].linear
    # lr 0 for the quadratic terms: still ReLinear's constants; the linear terms trained
    assert torch.all(layer.weight_g == 0) and torch.all(layer.bias_g == 1)
    assert torch.all(layer.weight_b == 0) and torch.all(layer.bias_b == 0)
    assert not torch.allclose(layer.weight, start.weight)
    assert result.metrics["final"]["eval_accuracy"] > 0.5


def test_relinear_parameter_groups():
    from zoo.training.relinear import relinear_parameter_groups

    model = seeded("convnet", neuron="quadratic", **CONVNET)
    linear, quadratic = relinear_parameter_groups(model, 0.1, 1e-4)
    assert quadratic["lr"] == pytest.approx(1e-5) and linear["lr"] == 0.1
    names = {id(p): n for n, p in model.named_parameters()}
    assert len(quadratic["params"]) == 4 * 3  # two convolutions and fc, four terms each
    assert all(names[id(p)].split(".")[-1] in ("weight_g", "bias_g", "weight_b", "bias_b") for p in quadratic["params"])
    assert len(linear["params"]) + len(quadratic["params"]) == len(list(model.parameters()))


def test_relinear_trainer_refuses_linear_models_and_bad_scales(tmp_path):
    from zoo.training import train

    with pytest.raises(UserError, match="config.neuron: quadratic"):
        train(_recipe(tmp_path, neuron="linear"))
    with pytest.raises(UserError, match="quadratic_lr_scale must be a number in"):
        train(_recipe(tmp_path / "b", quadratic_lr_scale=2))


def test_quadratic_repo_loads_by_name_without_zoo(tmp_path, hf_env):
    """The exported repo carries quadratic_neurons.py: trust_remote_code loads it where zoo is absent."""
    from zoo.hub import publish_to_cache

    from .test_registry import export_tiny

    config = dict(CONVNET, neuron="quadratic", quadratic_init="random")
    model, repo, _ = export_tiny("convnet", tmp_path, config=config)
    assert (repo / "quadratic_neurons.py").exists()
    publish_to_cache(repo, "zooscope/tiny-quadratic")
    x = torch.rand(2, 1, 8, 8)
    torch.save({"x": x}, tmp_path / "x.pt")
    proc = run_python(f"""
import json, torch, transformers
m = transformers.AutoModelForImageClassification.from_pretrained("zooscope/tiny-quadratic", trust_remote_code=True).eval()
x = torch.load(r"{tmp_path / 'x.pt'}", weights_only=True)["x"]
print(json.dumps(m(pixel_values=x).logits.tolist()))
""", env=hf_env, block_zoo=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.tensor(json.loads(proc.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, model(pixel_values=x).logits.detach(), rtol=0, atol=0)
