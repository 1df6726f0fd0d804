"""The residual CNN's two layouts: deep Π(I + F_i) and shallow-parallel I + Σ F_i of the same branches."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.errors import UserError

CONFIG = dict(image_size=8, num_channels=1, filters=3, kernel_size=3, num_labels=4)


def pair(depth, **extra):
    torch.manual_seed(0)
    sequential = zoo.create_model("residual_cnn", depth=depth, layout="sequential", **CONFIG, **extra).eval()
    torch.manual_seed(0)
    parallel = zoo.create_model("residual_cnn", depth=depth, layout="parallel", **CONFIG, **extra).eval()
    return sequential, parallel


def test_one_branch_is_the_same_function_in_both_layouts():
    sequential, parallel = pair(1)
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(sequential(pixel_values=x).logits, parallel(pixel_values=x).logits)


def test_layouts_share_parameters_and_differ_from_depth_two():
    sequential, parallel = pair(3)
    assert list(sequential.state_dict()) == list(parallel.state_dict())
    for (k, a), (_, b) in zip(sequential.state_dict().items(), parallel.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.rand(5, 1, 8, 8)
    assert not torch.allclose(sequential(pixel_values=x).logits, parallel(pixel_values=x).logits, atol=1e-4)


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_both_layouts_match_manual_forward(stem_stride):
    sequential, parallel = pair(3, stem_stride=stem_stride)
    x = torch.rand(2, 1, 8, 8)
    backbone = sequential.backbone
    z0 = F.relu(F.conv2d(x, backbone.stem.weight, backbone.stem.bias, stride=stem_stride, padding=1))
    branch = lambda z, b: F.relu(F.conv2d(z, b.conv.weight, b.conv.bias, padding=1))  # noqa: E731
    z = z0
    for b in backbone.branches:
        z = z + branch(z, b)
    wide = z0 + sum(branch(z0, b) for b in backbone.branches)
    head = sequential.classifier
    for model, stream in ((sequential, z), (parallel, wide)):
        manual = stream.flatten(1) @ head.weight.t() + head.bias
        torch.testing.assert_close(model(pixel_values=x).logits, manual, rtol=1e-5, atol=1e-6)
    hidden = sequential(pixel_values=x, output_hidden_states=True).hidden_states
    assert len(hidden) == 2 + 3 and len(parallel(pixel_values=x, output_hidden_states=True).hidden_states) == 3


@pytest.mark.parametrize("field,value,message", [
    ("layout", "diagonal", r"^layout must be one of sequential, parallel; got 'diagonal'$"),
    ("kernel_size", 4, r"^kernel_size must be odd"),
    ("depth", 0, r"^depth must be a positive integer"),
])
def test_bad_config_names_the_field(field, value, message):
    config_class = zoo.get_architecture("residual_cnn").config_class
    with pytest.raises(ValueError, match=message):
        config_class(**{**CONFIG, field: value})
    with pytest.raises(UserError, match=f"invalid residual_cnn config: {field}"):
        zoo.create_model("residual_cnn", **{**CONFIG, field: value})
