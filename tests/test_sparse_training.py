"""zoo.training.sparse: DST keeps the density exactly, Hebbian regrowth picks the planted
correlated pair, RigL scores are the dense gradient's block norms, the static masks hold, and
the trainers refuse models they cannot sparsify."""
from __future__ import annotations

import pytest
import torch
import yaml

import zoo
from zoo.models.g2gnet.modeling_g2gnet import G2GLinear
from zoo.training import train
from zoo.training.sparse import gradient_scores, hebbian_scores, random_mask, reset_optimizer_state, rewire

G2G_DIGITS = {
    "id": "tiny-g2gnet-digits", "architecture": "g2gnet",
    "config": {"image_size": 8, "hidden_sizes": [16, 16], "num_ensembles": 4, "input_ensembles": 8,
               "sparsity": 0.5, "num_labels": 10},
    "data": {"name": "digits"},
    "training": {"epochs": 2, "batch_size": 64, "lr": 0.01, "checkpoint_every": 0, "seed": 1, "optimizer": "adam"},
}


def write_recipe(tmp_path, **changes):
    recipe = yaml.safe_load(yaml.safe_dump(G2G_DIGITS))
    for key, value in changes.items():
        recipe[key] = {**recipe[key], **value} if isinstance(value, dict) and key != "config" else value
    path = tmp_path / f"{recipe['id']}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def layer_with_weights(in_e=8, out_e=4, k=3, block=2, seed=0):
    torch.manual_seed(seed)
    layer = G2GLinear(in_e * block, out_e * block, in_e, out_e, k)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    layer.connections.copy_(layer.initial_connections())
    return layer


def test_rewire_keeps_the_density_exactly_and_drops_the_weakest():
    layer = layer_with_weights()
    with torch.no_grad():
        layer.weight[2, 1] *= 1e-3  # the weakest block of output ensemble 2
    weakest_input = int(layer.connections[2, 1])
    generator = torch.Generator().manual_seed(0)
    before = layer.mask().sum().item()
    for round_ in range(20):
        changed = rewire(layer, 1, torch.rand(4, 8, generator=generator))
        assert len(changed) == 4  # one block per output ensemble
        assert layer.mask().sum().item() == before  # exactly the same number of weights
        for row in layer.connections.tolist():
            assert len(set(row)) == 3 and all(0 <= i < 8 for i in row)
        for j, slot in changed:
            assert torch.count_nonzero(layer.weight[j, slot]) == 0  # regrown blocks start at zero
        if round_ == 0:
            assert weakest_input not in layer.connections[2].tolist()
        with torch.no_grad():
            layer.weight.add_(torch.randn_like(layer.weight))


def test_hebbian_regrow_picks_the_most_correlated_input_ensemble():
    """Output ensemble j's units copy input ensemble planted[j]'s (sign flipped for one, with
    noise): the Hebbian score is highest there, and rewiring connects exactly those pairs."""
    torch.manual_seed(0)
    in_e, out_e, block, n = 8, 4, 3, 500
    x = torch.randn(n, in_e * block)
    planted = [5, 2, 7, 0]
    y = torch.randn(n, out_e * block) * 0.3
    for j, i in enumerate(planted):
        sign = -1 if j == 1 else 1
        y[:, j * block:(j + 1) * block] += sign * x[:, i * block:(i + 1) * block]
    scores = hebbian_scores(x, y, in_e, out_e)
    assert scores.argmax(dim=1).tolist() == planted
    # a constant unit correlates with nothing (no NaN)
    y[:, 0] = 1.0
    assert torch.isfinite(hebbian_scores(x, y, in_e, out_e)).all()

    layer = layer_with_weights(in_e, out_e, k=2, block=block)
    layer.connections.copy_(torch.tensor([[0, 1], [3, 4], [1, 2], [5, 6]]))  # none holds its planted input
    rewire(layer, 1, scores)
    for j, i in enumerate(planted):
        assert i in layer.connections[j].tolist()


def test_gradient_scores_are_the_dense_gradients_block_norms():
    layer = layer_with_weights().double()
    x = torch.randn(7, 16, dtype=torch.float64)
    w = layer.dense_weight().detach().requires_grad_(True)
    y = x @ w.T
    dy = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, w, dy)  # (out, in)
    expected = grad.view(4, 2, 8, 2).pow(2).sum(dim=(1, 3)).sqrt()
    torch.testing.assert_close(gradient_scores(x, dy, 8, 4), expected)


def test_reset_optimizer_state_zeroes_only_the_rewired_blocks():
    layer = layer_with_weights()
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.randn(3, 16)).sum().backward()
    optimizer.step()
    state = optimizer.state[layer.weight]
    reset_optimizer_state(optimizer, layer.weight, [(1, 2)])
    assert torch.count_nonzero(state["exp_avg"][1, 2]) == 0 and torch.count_nonzero(state["exp_avg_sq"][1, 2]) == 0
    assert torch.count_nonzero(state["exp_avg"][0]) > 0


def test_random_mask_has_exactly_the_asked_zeros():
    mask = random_mask((10, 7), 0.75, torch.Generator().manual_seed(0))
    assert int((mask == 0).sum()) == round(0.75 * 70)


@pytest.mark.parametrize("regrow", ["hebbian", "gradient"])
def test_dst_run_rewires_and_saves_its_connections(tmp_path, regrow):
    recipe = write_recipe(tmp_path, training={"trainer": "dst", "trainer_options": {"update_every": 5, "regrow": regrow}})
    torch.manual_seed(0)
    initial = zoo.create_model("g2gnet", **G2G_DIGITS["config"])
    result = train(recipe, output_dir=tmp_path / "out")
    dst = result.metrics["dst"]
    assert dst["regrow"] == regrow and dst["blocks_rewired"] > 0
    assert set(dst["density"].values()) == {0.5}
    assert result.metrics["final"]["eval_sparsity"] == 0.5
    loaded = zoo.registry.auto_class_for(initial.config).from_pretrained(tmp_path / "out")
    changed = 0
    for block, start in zip(loaded.layers, initial.layers):
        layer = block.linear
        assert layer.mask().double().mean().item() == 0.5  # density exactly kept
        changed += int((layer.connections.sort(1).values != start.linear.connections).any())
    assert changed > 0  # the saved model carries the rewired connections
    assert result.metrics["final"]["eval_accuracy"] > 0.3


def test_static_sparse_masks_hold_through_training(tmp_path):
    recipe = write_recipe(tmp_path, architecture="mlp", config={"image_size": 8, "hidden_sizes": [32, 16], "num_labels": 10},
                          training={"trainer": "static-sparse", "trainer_options": {"sparsity": 0.75}})
    result = train(recipe, output_dir=tmp_path / "out")
    assert result.metrics["sparsity"]["zero_fraction"] == pytest.approx(0.75, abs=1e-3)
    assert result.metrics["final"]["eval_sparsity"] == result.metrics["sparsity"]["zero_fraction"]
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    for name in ("layers.0.linear.weight", "layers.1.linear.weight"):
        assert (weights[name] == 0).double().mean().item() == pytest.approx(0.75, abs=1e-3)
    assert (weights["classifier.weight"] != 0).all()  # the head stays dense


@pytest.mark.parametrize("architecture, config, trainer, options, message", [
    ("mlp", {"image_size": 8, "hidden_sizes": [16], "num_labels": 10}, "dst", {}, "no G2GLinear"),
    ("g2gnet", {**G2G_DIGITS["config"], "hidden_sizes": [16], "num_ensembles": 4}, "static-sparse", {},
     "no hidden nn.Linear"),  # its one hidden layer is a G2GLinear, the classifier stays dense
    ("g2gnet", G2G_DIGITS["config"], "dst", {"regrow": "telepathy"}, "regrow must be one of"),
    ("g2gnet", G2G_DIGITS["config"], "dst", {"prune_fraction": 0}, "prune_fraction"),
    ("mlp", {"image_size": 8, "hidden_sizes": [16], "num_labels": 10}, "static-sparse", {"sparsity": 1.0}, "sparsity"),
])
def test_trainers_refuse_what_they_cannot_do(tmp_path, architecture, config, trainer, options, message):
    recipe = write_recipe(tmp_path, architecture=architecture, config=config,
                          training={"trainer": trainer, "trainer_options": options})
    with pytest.raises(zoo.UserError, match=message):
        train(recipe, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written
