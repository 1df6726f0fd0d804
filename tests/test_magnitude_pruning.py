"""Magnitude pruning: the masks drop exactly the smallest weights; pruned weights stay zero
through fine-tuning; the masks survive a checkpoint."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from zoo import recipes
from zoo.errors import UserError
from zoo.training import train
from zoo.training.magnitude_pruning import MASKS_FILE, magnitude_masks

RECIPE = """
id: tiny-pruned-rnn
architecture: rnn_classifier
config: {input_size: 7, hidden_size: 5, cell: CELL, num_labels: 2, max_steps: 20}
data: {name: reber, embedded: false, n_train: 64, n_test: 32, max_length: 20}
training:
  trainer: magnitude_pruning
  trainer_options: {sparsity: 0.6, dense_epochs: 1}
  epochs: 3
  batch_size: 16
  lr: 0.01
  checkpoint_every: 0
  keep_checkpoints: 5
"""


def test_masks_drop_exactly_the_smallest():
    torch.manual_seed(0)
    params = {"a": torch.randn(6, 5), "b": torch.randn(4, 3)}
    for sparsity in (0.1, 0.5, 0.9):
        masks = magnitude_masks(params, sparsity)
        for name, p in params.items():
            values = np.abs(p.numpy()).ravel()
            n_drop = int(round(sparsity * values.size))
            threshold = np.sort(values)[n_drop - 1]  # independently: the n_drop-th smallest magnitude
            np.testing.assert_array_equal(masks[name].numpy().ravel(), values > threshold)
        glob = magnitude_masks(params, sparsity, scope="global")
        everything = np.concatenate([np.abs(p.numpy()).ravel() for p in params.values()])
        threshold = np.sort(everything)[int(round(sparsity * everything.size)) - 1]
        for name, p in params.items():
            np.testing.assert_array_equal(glob[name].numpy(), np.abs(p.numpy()) > threshold)
    with pytest.raises(UserError, match="sparsity"):
        magnitude_masks(params, 1.0)


@pytest.mark.parametrize("cell", ["lstm"])
def test_pruned_weights_stay_zero_through_fine_tuning(cell, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.replace("CELL", cell))
    out = tmp_path / "out"
    result = train(recipes.load_recipe(path), output_dir=out)
    history = result.metrics["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    pruning = result.metrics["pruning"]
    assert pruning["pruned_after_epoch"] == 1 and pruning["measured_sparsity"] == pytest.approx(0.6, abs=0.01)
    checkpoints = sorted(out.glob("checkpoints/step_*"), key=lambda p: int(p.name.rsplit("_", 1)[-1]))
    assert len(checkpoints) == 3  # one an epoch; the first is taken right after the pruning
    masks = {k: v.bool() for k, v in load_file(str(checkpoints[-1] / MASKS_FILE)).items()}
    first = {k: v.bool() for k, v in load_file(str(checkpoints[0] / MASKS_FILE)).items()}
    assert all(torch.equal(masks[k], first[k]) for k in masks)  # the same weights pruned all along
    final = load_file(str(out / "model.safetensors"))
    assert set(masks) == {k for k in final if k.endswith(("weight_ih", "weight_hh"))}
    for name, keep in masks.items():
        assert not final[name][~keep].any(), name  # pruned: exactly zero after two epochs of fine-tuning
        assert final[name][keep].ne(0).all(), name
        assert keep.float().mean() == pytest.approx(0.4, abs=0.05)
    json.loads((out / "metrics.json").read_text())


def test_bad_options_are_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.replace("CELL", "gru").replace("dense_epochs: 1", "dense_epochs: 3"))
    with pytest.raises(UserError, match="leaves no epoch"):
        train(recipes.load_recipe(path), output_dir=tmp_path / "out")
    path.write_text(RECIPE.replace("CELL", "gru").replace("sparsity: 0.6", "sparsity: 1.5"))
    with pytest.raises(UserError, match="sparsity must be in"):
        train(recipes.load_recipe(path), output_dir=tmp_path / "out2")
