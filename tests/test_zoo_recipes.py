"""Every recipe in hub_configs/ trains in its tiny form (the recipe's own `ci:` overrides), in
this process, through the same `zoo.training.train` that `train.py` runs, and the saved model
reloads with its task Auto class and gives the logits the run's evaluation saw.

A new recipe is tested the day it is added; one without a `ci:` block fails here.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from zoo import recipes
from zoo.registry import get_architecture

from .conftest import REPO_ROOT

RECIPES = sorted(p.stem for p in (REPO_ROOT / "hub_configs").glob("*.yaml"))


def test_every_recipe_is_listed():
    assert RECIPES and set(RECIPES) <= set(recipes.list_recipes())


@pytest.mark.parametrize("recipe_id", RECIPES)
def test_recipe_trains_in_its_tiny_form(recipe_id, tmp_path):
    import transformers

    from zoo.training import train

    path = REPO_ROOT / "hub_configs" / f"{recipe_id}.yaml"
    full = recipes.load_recipe(path)
    assert full.ci, f"{path.name} has no `ci:` block (the overrides that make it a few-second run)"
    tiny = recipes.load_recipe(path, full.ci_overrides())
    result = train(tiny, output_dir=tmp_path / "out")
    metrics = result.metrics
    assert metrics["finished"] and metrics["step"] == metrics["total_steps"] >= 1
    assert recipes.load_recipe(tmp_path / "out" / "recipe.yaml").ci == full.ci  # kept with the run as run
    finals = {k: v for k, v in metrics["final"].items() if isinstance(v, (int, float))}
    assert finals and all(math.isfinite(v) for v in finals.values()), finals

    arch = get_architecture(full.architecture)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["model_type"] == arch.name
    model = getattr(transformers, arch.task_auto_class).from_pretrained(tmp_path / "out").eval()
    assert type(model) is arch.model_class
    with torch.no_grad():
        assert all(torch.isfinite(p).all() for p in model.parameters())
