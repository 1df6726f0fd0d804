"""Every registered architecture: forward, backward, save/load, Auto dispatch, remote code."""
from __future__ import annotations

import json

import pytest
import torch
import transformers
from transformers import AutoConfig, AutoModel

import zoo
from zoo.recipes import TRAINING_DEFAULTS, Recipe

from .conftest import run_python

ARCHITECTURES = zoo.list_models()


def tiny_model(name: str):
    torch.manual_seed(0)
    return zoo.create_model(name, **zoo.get_architecture(name).tiny_config).eval()


def test_registry_lists_the_first_architectures():
    assert {"two_layer_mlp", "mlp", "convnet"} <= set(ARCHITECTURES)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward_shapes_and_hidden_states(name):
    model = tiny_model(name)
    inputs = model.dummy_inputs
    out = model(**inputs, output_hidden_states=True)
    batch = next(iter(inputs.values())).shape[0]
    assert out.logits.shape == (batch, model.config.num_labels)
    assert out.hidden_states is not None and len(out.hidden_states) >= 2
    assert all(h.shape[0] == batch for h in out.hidden_states)
    assert torch.equal(out.hidden_states[0].reshape(batch, -1), next(iter(inputs.values())).reshape(batch, -1))
    assert model(**inputs).hidden_states is None


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_backward_reaches_every_parameter(name):
    model = tiny_model(name).train()
    inputs = model.dummy_inputs
    batch = next(iter(inputs.values())).shape[0]
    labels = torch.arange(batch) % model.config.num_labels
    out = model(**inputs, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits, labels)
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_save_load_round_trip(name, tmp_path):
    model = tiny_model(name)
    inputs = model.dummy_inputs
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_auto_classes_dispatch(name):
    arch = zoo.get_architecture(name)
    config = AutoConfig.for_model(name, **arch.tiny_config)
    assert isinstance(config, arch.config_class)
    assert type(AutoModel.from_config(config)) is arch.model_class
    if arch.task_auto_class:
        assert type(getattr(transformers, arch.task_auto_class).from_config(config)) is arch.model_class


def test_remote_code_loads_without_zoo(tmp_path, hf_env):
    """Every architecture exported as a repo loads with trust_remote_code where zoo cannot be imported."""
    from zoo.hub import export_repo

    expected = {}
    for name in ARCHITECTURES:
        model = tiny_model(name)
        model.save_pretrained(tmp_path / "out" / name)
        recipe = Recipe(id=f"remote-{name}", architecture=name, config=zoo.get_architecture(name).tiny_config,
                        data={"name": "digits"}, training=dict(TRAINING_DEFAULTS))
        repo = export_repo(recipe, repo_dir=tmp_path / "repos" / name, output_dir=tmp_path / "out" / name)
        assert "auto_map" in json.loads((repo / "config.json").read_text())
        inputs = model.dummy_inputs
        torch.save(inputs, tmp_path / f"{name}-inputs.pt")
        expected[name] = model(**inputs).logits
    code = f"""
import json, torch
from transformers import AutoModel
out = {{}}
for name in {ARCHITECTURES!r}:
    model = AutoModel.from_pretrained(r"{tmp_path}/repos/" + name, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    inputs = torch.load(r"{tmp_path}/" + name + "-inputs.pt", weights_only=True)
    out[name] = model(**inputs).logits.tolist()
print(json.dumps(out))
"""
    proc = run_python(code, env=hf_env, block_zoo=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ARCHITECTURES:
        torch.testing.assert_close(torch.tensor(got[name]), expected[name], rtol=1e-6, atol=1e-6)


def test_unknown_name_lists_close_matches():
    with pytest.raises(zoo.UserError, match="did you mean.*two_layer_mlp"):
        zoo.create_model("two_layer_mpl")


@pytest.mark.parametrize("name, field, value", [
    ("mlp", "dropout", 1.5),
    ("mlp", "hidden_sizes", [0]),
    ("convnet", "image_size", 30),
    ("two_layer_mlp", "activation", "softplusish"),
])
def test_invalid_config_value_names_the_field(name, field, value):
    with pytest.raises(zoo.UserError, match=field):
        zoo.create_model(name, **{field: value})


def test_fixed_second_layer_is_a_saved_buffer(tmp_path):
    model = zoo.create_model("two_layer_mlp", input_dim=5, hidden_dim=16, num_labels=2, fixed_second_layer=True)
    names = {n for n, _ in model.named_parameters()}
    assert names == {"hidden.weight"}  # the second layer is not trained
    weight = model.output_weight
    assert torch.allclose(weight.abs(), torch.full_like(weight, 16**-0.5))
    x = torch.randn(3, 5)
    manual = torch.relu(x @ model.hidden.weight.t()) @ weight.t()
    torch.testing.assert_close(model(input_features=x).logits, manual)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert torch.equal(loaded.output_weight, weight)


@pytest.mark.parametrize("activation, fn", [("quadratic", lambda z: z * z), ("tanh", torch.tanh), ("relu", torch.relu)])
def test_two_layer_mlp_matches_manual_forward(activation, fn):
    model = zoo.create_model("two_layer_mlp", input_dim=4, hidden_dim=7, num_labels=3, activation=activation,
                             first_layer_bias=True, second_layer_bias=True)
    x = torch.randn(5, 4)
    manual = fn(x @ model.hidden.weight.t() + model.hidden.bias) @ model.output.weight.t() + model.output.bias
    torch.testing.assert_close(model(input_features=x).logits, manual)


def test_mlp_matches_manual_forward():
    model = zoo.create_model("mlp", image_size=4, hidden_sizes=[6, 5], num_labels=3).eval()
    x = torch.rand(2, 1, 4, 4)
    h = x.flatten(1)
    for layer in model.layers:
        h = torch.relu(h @ layer.linear.weight.t() + layer.linear.bias)
    manual = h @ model.classifier.weight.t() + model.classifier.bias
    torch.testing.assert_close(model(pixel_values=x).logits, manual)


def test_convnet_matches_manual_forward():
    model = zoo.create_model("convnet", image_size=8, channels=[2, 3], hidden_size=4, num_labels=3).eval()
    x = torch.rand(2, 1, 8, 8)
    h = x
    for block in model.blocks:
        h = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(h, block.conv.weight, block.conv.bias, padding=1)), 2)
    h = torch.relu(h.flatten(1) @ model.fc.weight.t() + model.fc.bias)
    manual = h @ model.classifier.weight.t() + model.classifier.bias
    torch.testing.assert_close(model(pixel_values=x).logits, manual)
