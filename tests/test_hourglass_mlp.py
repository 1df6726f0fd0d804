"""The residual MLP family: Hourglass (fixed random lift, wide-narrow-wide) and conventional blocks; the denoising data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import UserError

from .conftest import run_python

HOURGLASS = dict(image_size=4, num_channels=1, block_shape="hourglass", stream_size=24, hidden_size=5, depth=3,
                 num_labels=16, problem_type="regression")


def seeded(**config):
    torch.manual_seed(0)
    return zoo.create_model("hourglass_mlp", **config).eval()


def test_fixed_lift_is_a_buffer_and_never_trains():
    model = seeded(**HOURGLASS).train()
    lift = model.backbone.lift_weight
    assert "backbone.lift_weight" in model.state_dict() and "lift_weight" not in {n for n, _ in model.named_parameters()}
    assert abs(float(lift.std()) - 16**-0.5) < 0.05  # N(0, 1/fan_in)
    before = lift.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.rand(8, 1, 4, 4), torch.rand(8, 16)
    model(pixel_values=x, labels=y).loss.backward()
    optimizer.step()
    assert torch.equal(model.backbone.lift_weight, before)
    learned = seeded(**{**HOURGLASS, "lift": "learned"})
    assert "backbone.lift.weight" in {n for n, _ in learned.named_parameters()}
    assert not hasattr(learned.backbone, "lift_weight")
    assert seeded(**{**HOURGLASS, "block_shape": "conventional", "stream_size": 4, "hidden_size": 9}).config.lift == "learned"


@pytest.mark.parametrize("shape,stream,hidden,lift", [("hourglass", 24, 5, "fixed"), ("conventional", 4, 9, "learned")])
def test_matches_manual_forward(shape, stream, hidden, lift):
    model = seeded(**{**HOURGLASS, "block_shape": shape, "stream_size": stream, "hidden_size": hidden, "lift": lift})
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    x = torch.rand(3, 1, 4, 4)
    z = x.flatten(1).double().numpy() @ (p["backbone.lift_weight"] if lift == "fixed" else p["backbone.lift.weight"]).T
    for i in range(3):
        h = np.maximum(z @ p[f"backbone.blocks.{i}.down.weight"].T + p[f"backbone.blocks.{i}.down.bias"], 0)
        z = z + h @ p[f"backbone.blocks.{i}.up.weight"].T + p[f"backbone.blocks.{i}.up.bias"]
    manual = z @ p["head.weight"].T + p["head.bias"]
    out = model(pixel_values=x, labels=torch.from_numpy(manual).float())
    np.testing.assert_allclose(out.logits.detach().double().numpy(), manual, rtol=1e-5, atol=1e-6)
    assert float(out.loss.detach()) < 1e-10  # regression: MSE against the target


@pytest.mark.parametrize("changes,message", [
    (dict(hidden_size=24), r"^hidden_size \(24\) must be smaller than stream_size \(24\) for block_shape hourglass"),
    (dict(block_shape="conventional", hidden_size=20), r"^hidden_size \(20\) must be larger than stream_size \(24\) for block_shape conventional"),
    (dict(block_shape="hexagon"), r"^block_shape must be one of hourglass, conventional; got 'hexagon'$"),
    (dict(lift="frozen"), r"^lift must be one of fixed, learned; got 'frozen'$"),
])
def test_bad_config_names_the_field(changes, message):
    config_class = zoo.get_architecture("hourglass_mlp").config_class
    with pytest.raises(ValueError, match=message):
        config_class(**{**HOURGLASS, **changes})
    with pytest.raises(UserError, match="invalid hourglass_mlp config: " + message.lstrip("^").split(" ")[0]):
        zoo.create_model("hourglass_mlp", **{**HOURGLASS, **changes})


def test_lift_survives_publish_and_load_by_name_without_zoo(tmp_path, hf_env):
    from zoo.hub import publish_to_cache

    from .test_registry import export_tiny

    model, repo, _ = export_tiny("hourglass_mlp", tmp_path, config=HOURGLASS)
    publish_to_cache(repo, "zooscope/tiny-hourglass")
    x = torch.rand(2, 1, 4, 4)
    torch.save({"x": x}, tmp_path / "x.pt")
    proc = run_python(f"""
import json, torch, transformers
m = transformers.AutoModelForImageClassification.from_pretrained("zooscope/tiny-hourglass", trust_remote_code=True).eval()
assert type(m).__module__.startswith("transformers_modules"), type(m).__module__
x = torch.load(r"{tmp_path / 'x.pt'}", weights_only=True)["x"]
torch.save({{"lift": m.backbone.lift_weight}}, r"{tmp_path / 'lift.pt'}")
print(json.dumps(m(pixel_values=x).logits.tolist()))
""", env=hf_env, block_zoo=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lift = torch.load(tmp_path / "lift.pt", weights_only=True)["lift"]
    assert lift.dtype == model.backbone.lift_weight.dtype and torch.equal(lift, model.backbone.lift_weight)
    got = torch.tensor(json.loads(proc.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, model(pixel_values=x).logits.detach(), rtol=0, atol=0)


def test_denoising_data_is_the_clean_image_plus_seeded_noise():
    from zoo import data

    a = data.load("fashion_mnist_denoising", noise_std=0.3, limit_train=64, limit_test=32)
    b = data.load("fashion_mnist_denoising", noise_std=0.3, limit_train=64, limit_test=32)
    clean = data.load("fashion_mnist", limit_train=64, limit_test=32)
    for split in ("train", "test"):
        t = a[split].with_format("torch")[:]
        assert t["pixel_values"].shape == (len(a[split]), 1, 28, 28) and t["labels"].shape == (len(a[split]), 784)
        source = clean[split].with_format("torch")[:]["pixel_values"].flatten(1)
        assert torch.equal(t["labels"], source)
        noise = t["pixel_values"].flatten(1) - source
        assert abs(float(noise.std()) - 0.3) < 0.01 and abs(float(noise.mean())) < 0.01
        assert torch.equal(b[split].with_format("torch")[:]["pixel_values"], t["pixel_values"])  # seeded
    train_noise = a["train"].with_format("torch")[:32]["pixel_values"] - clean["train"].with_format("torch")[:32]["pixel_values"]
    assert not torch.allclose(train_noise, noise.reshape(-1, 1, 28, 28))  # splits draw different noise
    clipped = data.load("fashion_mnist_denoising", clip=True, limit_train=8, limit_test=8)["test"].with_format("torch")[:]
    assert clipped["pixel_values"].min() >= 0 and clipped["pixel_values"].max() <= 1
    with pytest.raises(UserError, match="noise_std must be a positive number"):
        data.load("fashion_mnist_denoising", noise_std=0)
