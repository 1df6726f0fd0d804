"""Recipes and the trainer registry, in-process: override parsing, unknown keys, settings, trainers."""
from __future__ import annotations

import types

import pytest
import torch
import yaml

from zoo import UserError
from zoo.recipes import load_recipe, parse_yaml
from zoo.training import SGDTrainer, TrainOutcome, evaluate, get_trainer, list_trainers, register_trainer
from zoo.training.base import check_options
from zoo.training.run import recipe_differences


@pytest.mark.parametrize("text, value", [
    ("3e-4", 3e-4), ("1e5", 1e5), ("-2E+3", -2000.0), ("1.0e-3", 1e-3), (".5", 0.5), ("+1.5", 1.5),
    ("3", 3), ("-7", -7), ("[64, 32]", [64, 32]), ("null", None), ("true", True),
    ("3e", "3e"), ("e3", "e3"), ("cosine", "cosine"), ("1e-4x", "1e-4x"),
])
def test_values_parse_as_yaml_1_2(text, value):
    parsed = parse_yaml(text)
    assert parsed == value and type(parsed) is type(value)


def test_exponent_floats_in_overrides_and_in_recipe_files(tiny_recipe):
    # The README's own example: PyYAML (YAML 1.1) reads 3e-4 as the string '3e-4'.
    assert load_recipe(tiny_recipe(), ["training.lr=3e-4"]).training["lr"] == pytest.approx(3e-4)
    path = tiny_recipe()
    path.write_text(path.read_text().replace("lr: 0.01", "lr: 5e-3"))
    assert "lr: 5e-3" in path.read_text()
    assert load_recipe(path).training["lr"] == pytest.approx(5e-3)


@pytest.mark.parametrize("overrides, message", [
    (["config.hidden_size=64"], "unknown recipe config key 'hidden_size' for architecture mlp; did you mean hidden_sizes"),
    (["config.dropuot=0.1"], "did you mean dropout"),
    (["training.eval_every_step=5"], "training.eval_every_step (did you mean eval_every_steps?)"),
    (["trainig.lr=0.1"], "unknown recipe field 'trainig' (did you mean training?)"),
    (["training.scheduler=cosin"], "unknown training.scheduler 'cosin' (did you mean cosine"),
    (["training.scheduler=reduce_lr_on_plateau"], "unknown training.scheduler"),
    (["training.checkpoint_every=sometimes"], "or null / never"),
    (["training.eval_every_steps=-2"], "training.eval_every_steps must be"),
    (["training.checkpoint_every=never", "training.stop_after_steps=5"], "stop_after_steps needs checkpoints"),
    (["training.trainer_options=3"], "trainer_options must be a mapping"),
    (["config=[1]"], "config must be a mapping"),
])
def test_unknown_keys_and_bad_settings_name_the_problem(tiny_recipe, overrides, message):
    with pytest.raises(UserError) as error:
        load_recipe(tiny_recipe(), overrides)
    assert message in str(error.value)


def test_unknown_config_key_in_a_recipe_file(tiny_recipe):
    path = tiny_recipe(config={"hiden_sizes": [64]})
    with pytest.raises(UserError, match=r"config key 'hiden_sizes' for architecture mlp; did you mean hidden_sizes"):
        load_recipe(path)
    # the config class's own keys and PretrainedConfig's are accepted
    assert load_recipe(tiny_recipe(), ["config.activation=tanh", "config.problem_type=single_label_classification"])


def test_checkpointing_and_curve_settings(tiny_recipe):
    recipe = load_recipe(tiny_recipe())
    assert recipe.checkpointing and recipe.eval_every_steps is None  # minibatch: no curves unless asked
    for off in ("never", "null"):
        assert not load_recipe(tiny_recipe(), [f"training.checkpoint_every={off}"]).checkpointing
    assert load_recipe(tiny_recipe(), ["training.eval_every_steps=7"]).eval_every_steps == 7
    full = load_recipe(tiny_recipe(), ["training.batch_size=full"])
    assert full.eval_every_steps == 1  # full-batch GD: a curve point every step by default
    assert load_recipe(tiny_recipe(), ["training.batch_size=full", "training.eval_every_steps=never"]).eval_every_steps is None


def test_the_xor_recipe_takes_no_checkpoints_and_keeps_curves():
    recipe = load_recipe("two-layer-mlp-xor-cluster")
    assert not recipe.checkpointing
    assert recipe.training["batch_size"] == "full" and recipe.eval_every_steps == 1


def test_trainer_registry():
    assert get_trainer("sgd") is SGDTrainer and "sgd" in list_trainers()
    with pytest.raises(UserError, match=r"unknown trainer 'sdg'; did you mean sgd"):
        get_trainer("sdg")
    with pytest.raises(UserError, match="cannot import 'no_such_package.trainers'"):
        get_trainer("no_such_package.trainers:Mine")
    with pytest.raises(UserError, match="has no 'Nope'"):
        get_trainer("tests.toy_trainers:Nope")
    with pytest.raises(UserError, match="is not a trainer class"):
        get_trainer("tests.toy_trainers:output_layer")
    from tests.toy_trainers import RidgeHeadTrainer

    assert get_trainer("tests.toy_trainers:RidgeHeadTrainer") is RidgeHeadTrainer
    assert "masked-head" in list_trainers()  # registered by the import above

    @register_trainer("test-noop")
    class Noop:
        def train(self, run):
            return TrainOutcome()

    assert get_trainer("test-noop") is Noop and Noop.name == "test-noop"
    with pytest.raises(TypeError, match="no train"):
        register_trainer("broken")(type("Broken", (), {}))


def test_an_installed_package_provides_a_trainer_by_entry_point(tmp_path, monkeypatch):
    """The `zooscope.trainers` entry-point group, read from a real (minimal) installed distribution."""
    dist = tmp_path / "my_lab_trainers-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-lab-trainers\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[zooscope.trainers]\nlab-ridge = tests.toy_trainers:RidgeHeadTrainer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from tests.toy_trainers import RidgeHeadTrainer

    assert "lab-ridge" in list_trainers()
    assert get_trainer("lab-ridge") is RidgeHeadTrainer


def test_trainer_options_are_checked_against_the_trainers_defaults():
    from tests.toy_trainers import RidgeHeadTrainer

    assert check_options(RidgeHeadTrainer, {}) == {"l2": 1e-2}
    assert check_options(RidgeHeadTrainer, {"l2": 1.0}) == {"l2": 1.0}
    with pytest.raises(UserError, match=r"trainer_options.l2x for trainer 'ridge-head' \(did you mean l2"):
        check_options(RidgeHeadTrainer, {"l2x": 1.0})
    with pytest.raises(UserError, match="its options: none"):
        check_options(SGDTrainer, {"x": 1})


def test_recipe_differences_ignore_what_does_not_change_the_run(tiny_recipe):
    base = load_recipe(tiny_recipe()).to_dict()
    same = load_recipe(tiny_recipe(), ["training.stop_after_steps=3", "training.keep_checkpoints=5",
                                       "output_dir=/elsewhere", "description=other"]).to_dict()
    assert recipe_differences(same, base) == []
    other = load_recipe(tiny_recipe(), ["training.lr=0.02", "config.hidden_sizes=[8]"]).to_dict()
    assert recipe_differences(other, base) == ["config.hidden_sizes=[8] (the run's: [16])",
                                               "training.lr=0.02 (the run's: 0.01)"]
    # a saved recipe from before a setting existed compares with that setting's default
    old = yaml.safe_load(yaml.safe_dump(base))
    del old["training"]["trainer"], old["training"]["eval_every_steps"]
    assert recipe_differences(base, old) == []


class OneOutput(torch.nn.Module):
    """A classifier with a single output: evaluate() must not take it for a regressor."""

    def __init__(self, problem_type):
        super().__init__()
        self.config = types.SimpleNamespace(problem_type=problem_type)

    def forward(self, pixel_values, labels=None):
        return types.SimpleNamespace(logits=pixel_values[:, :1])


def test_evaluate_takes_the_task_from_the_config_not_the_output_width():
    batch = {"pixel_values": torch.tensor([[0.5], [2.0], [-1.0]]), "labels": torch.tensor([0, 0, 0])}
    as_classifier = evaluate(OneOutput("single_label_classification"), [dict(batch)])
    # one class: softmax is 1, the loss is 0, every prediction is class 0
    assert as_classifier == {"eval_loss": 0.0, "eval_accuracy": 1.0}
    as_regressor = evaluate(OneOutput("regression"), [dict(batch)])
    assert as_regressor == {"eval_loss": pytest.approx((0.25 + 4 + 1) / 3)}
