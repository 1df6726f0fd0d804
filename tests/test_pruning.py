"""zoo.training.pruning: IMP's masks equal torch.nn.utils.prune's (per layer and global, over
repeated cycles), AP removes the least-changed negative weights, a run prunes to the planned
sparsity with rewinding, and a model with nothing to prune is refused."""
from __future__ import annotations

import pytest
import torch
import yaml
from torch.nn.utils import prune

import zoo
from zoo.training import train
from zoo.training.pruning import ap_masks, magnitude_masks, prunable_weights


def two_layers(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_imp_masks_equal_torch_prune_over_three_cycles(scope):
    ours, theirs = two_layers(), two_layers()
    weights = {"0.weight": ours[0].weight, "2.weight": ours[2].weight}
    masks = {n: torch.ones_like(w) for n, w in weights.items()}
    for cycle in range(3):
        masks = magnitude_masks(weights, masks, 0.3, scope)
        if scope == "layer":
            for module in (theirs[0], theirs[2]):
                prune.l1_unstructured(module, "weight", amount=0.3)
        else:
            prune.global_unstructured([(theirs[0], "weight"), (theirs[2], "weight")],
                                      pruning_method=prune.L1Unstructured, amount=0.3)
        assert torch.equal(masks["0.weight"], theirs[0].weight_mask)
        assert torch.equal(masks["2.weight"], theirs[2].weight_mask)
        with torch.no_grad():  # train a little between cycles: new magnitudes, both nets alike
            noise = [torch.randn_like(ours[0].weight), torch.randn_like(ours[2].weight)]
            ours[0].weight.add_(noise[0]).mul_(masks["0.weight"])
            ours[2].weight.add_(noise[1]).mul_(masks["2.weight"])
            theirs[0].weight_orig.add_(noise[0])
            theirs[2].weight_orig.add_(noise[1])
            theirs(torch.zeros(1, 10))  # torch prunes on module.weight, which its forward pre-hook refreshes
    alive = sum(float(m.sum()) for m in masks.values())
    assert alive == pytest.approx(torch.cat([theirs[0].weight_mask.flatten(), theirs[2].weight_mask.flatten()]).sum().item())


def test_ap_removes_the_negative_weights_that_changed_least():
    w = torch.tensor([[-1.0, -2.0, 3.0, -0.5], [0.2, -4.0, -3.0, 1.0]])
    rewind = torch.tensor([[-0.9, -0.5, 3.0, -0.5], [0.2, -1.0, -2.95, 0.0]])
    mask = torch.ones_like(w)
    mask[1, 1] = 0  # already pruned: not a candidate
    # alive: 7 weights; fraction 0.3 → round(2.1) = 2 removed, among the alive negatives
    # (-1.0 changed 0.1, -2.0 changed 1.5, -0.5 changed 0, -3.0 changed 0.05): the -0.5 and the -3.0
    new = ap_masks({"w": w}, {"w": rewind}, {"w": mask}, 0.3)["w"]
    expected = mask.clone()
    expected[0, 3] = expected[1, 2] = 0
    assert torch.equal(new, expected)
    assert torch.equal(ap_masks({"w": w.abs()}, {"w": rewind}, {"w": mask}, 0.3)["w"], mask)  # no negative weight


def test_prunable_weights_leave_the_classifier():
    model = zoo.create_model("convnet", image_size=8, num_channels=1, channels=[3, 4], hidden_size=6, num_labels=3)
    names = set(prunable_weights(model))
    assert "classifier.weight" not in names and any("conv" in n or "0" in n for n in names)
    assert len(names) == 3  # two convolutions and the hidden fully connected layer


def imp_recipe(tmp_path, architecture="mlp", config=None, **options):
    recipe = {"id": "tiny-imp", "architecture": architecture,
              "config": config or {"image_size": 8, "hidden_sizes": [32, 16], "num_labels": 10},
              "data": {"name": "digits"},
              "training": {"epochs": 6, "batch_size": 64, "lr": 0.01, "optimizer": "adam", "scheduler": "cosine",
                           "checkpoint_every": 0, "seed": 0, "trainer": "imp",
                           "trainer_options": {"cycles": 2, "prune_fraction": 0.5, **options}}}
    path = tmp_path / "imp.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("ap_fraction", [0.0, 0.1])
def test_imp_run_reaches_the_planned_sparsity_and_saves_it(tmp_path, ap_fraction):
    from safetensors.torch import load_file

    result = train(imp_recipe(tmp_path, ap_fraction=ap_fraction), output_dir=tmp_path / "out")
    imp = result.metrics["imp"]
    assert [c["cycle"] for c in imp["cycles"]] == [0, 1, 2]
    planned = 1 - (1 - 0.5) ** 2
    expected = planned if not ap_fraction else 1 - 0.5 * 0.9 * 0.5 * 0.9
    assert imp["final_sparsity"] == pytest.approx(expected, abs=0.01)
    assert result.metrics["final"]["eval_sparsity"] == imp["final_sparsity"]  # what the model card shows
    assert imp["cycles"][0]["sparsity"] == 0 and imp["cycles"][1]["sparsity"] > 0
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    zeros = sum(int((weights[n] == 0).sum()) for n in ("layers.0.linear.weight", "layers.1.linear.weight"))
    total = sum(weights[n].numel() for n in ("layers.0.linear.weight", "layers.1.linear.weight"))
    assert zeros / total == pytest.approx(expected, abs=0.01)  # the saved model is the pruned one
    assert result.metrics["final"]["eval_accuracy"] > 0.5


def test_imp_refuses_a_model_with_nothing_to_prune(tmp_path):
    config = {"image_size": 8, "hidden_sizes": [16], "num_ensembles": 4, "input_ensembles": 8, "num_labels": 10}
    with pytest.raises(zoo.UserError, match="no prunable layer"):
        train(imp_recipe(tmp_path, architecture="g2gnet", config=config), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("trainer", ["imp", "dst"])
def test_an_interrupted_sparse_run_resumes_to_the_same_weights(tmp_path, trainer):
    """IMP's masks and rewind point (imp_state.safetensors) and DST's rewired connections (model
    buffers) come back from a checkpoint taken after a prune / rewire: same final weights."""
    from safetensors.torch import load_file

    if trainer == "imp":
        recipe = imp_recipe(tmp_path)  # 22 steps per epoch; at 3 epochs 3 phases of 22: pruned at steps 22 and 44
        overrides = ["training.epochs=3"]
    else:
        recipe = tmp_path / "dst.yaml"
        recipe.write_text(yaml.safe_dump({
            "id": "tiny-dst", "architecture": "g2gnet",
            "config": {"image_size": 8, "hidden_sizes": [16, 16], "num_ensembles": 4, "input_ensembles": 8,
                       "sparsity": 0.5, "num_labels": 10},
            "data": {"name": "digits"},
            "training": {"epochs": 2, "batch_size": 64, "lr": 0.01, "optimizer": "adam", "seed": 0, "checkpoint_every": 0,
                         "trainer": "dst", "trainer_options": {"update_every": 7, "regrow": "random"}}}))
        overrides = []  # 44 steps, rewired at steps 7, 14, ...
    whole = train(recipe, overrides, output_dir=tmp_path / "whole")
    part = tmp_path / "part"
    # the checkpoint resumed from comes after a change of mask: step 30 > 22 (imp), step 20 > 7, 14 (dst)
    every = "training.checkpoint_every=30" if trainer == "imp" else "training.checkpoint_every=20"
    stopped = train(recipe, [*overrides, every, "training.stop_after_steps=35"], output_dir=part)
    assert not stopped.metrics["finished"] and stopped.metrics["step"] == 35
    resumed = train(recipe, [*overrides, every], output_dir=part, resume=True)
    assert resumed.metrics["finished"]
    a, b = load_file(str(tmp_path / "whole" / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    key = "imp" if trainer == "imp" else "dst"
    assert resumed.metrics[key] == whole.metrics[key]


@pytest.mark.parametrize("options, message", [
    ({"cycles": 0}, "cycles must be an integer >= 1"),
    ({"prune_fraction": 1.0}, r"prune_fraction must be in \[0, 1\)"),
    ({"scope": "neuron"}, "scope must be layer or global"),
])
def test_imp_refuses_bad_options(tmp_path, options, message):
    with pytest.raises(zoo.UserError, match=message):
        train(imp_recipe(tmp_path, **options), output_dir=tmp_path / "out")
