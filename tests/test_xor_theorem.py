"""The XOR theorem's network (Xu et al. 2023) in the zoo: two_layer_mlp with the fixed, balanced
±1/√m second layer (`fixed_second_layer_init="balanced"`)."""
from __future__ import annotations

import math

import pytest
import torch

import zoo


def test_balanced_fixed_second_layer_is_the_theorems_network(tmp_path):
    m = 6
    model = zoo.create_model("two_layer_mlp", input_dim=5, hidden_dim=m, num_labels=2, activation="relu",
                             fixed_second_layer=True, fixed_second_layer_init="balanced")
    a = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]) / math.sqrt(m)
    torch.testing.assert_close(model.output_weight, torch.stack([-a / 2, a / 2]))
    x = torch.randn(7, 5)
    logits = model(input_features=x).logits
    f = torch.relu(x @ model.hidden.weight.t()) @ a  # f(x) = Σ_j a_j σ(⟨w_j, x⟩)
    torch.testing.assert_close(logits[:, 1] - logits[:, 0], f)
    model.save_pretrained(tmp_path)
    torch.testing.assert_close(type(model).from_pretrained(tmp_path).output_weight, model.output_weight)
    assert zoo.create_model("two_layer_mlp", input_dim=5, hidden_dim=m, fixed_second_layer=True).config \
        .fixed_second_layer_init == "random_signs"  # the default is unchanged


@pytest.mark.parametrize("kwargs", [dict(fixed_second_layer_init="balanced"),  # a trained W₂
                                    dict(fixed_second_layer=True, fixed_second_layer_init="balanced", num_labels=3),
                                    dict(fixed_second_layer=True, fixed_second_layer_init="alternating")])
def test_balanced_second_layer_bad_config(kwargs):
    with pytest.raises(ValueError, match="fixed_second_layer_init"):
        zoo.create_model("two_layer_mlp", input_dim=5, hidden_dim=4, **kwargs)
