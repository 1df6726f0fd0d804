"""The zoo's front door, timm-style: ``create_model`` and ``list_models``.

These compose the layers below them — the registry (architectures), the recipes (hub_configs/)
and the hub (published checkpoints) — so that none of those needs to import a layer above it.
"""
from __future__ import annotations

import fnmatch

from transformers import PreTrainedModel

from .errors import UserError, unknown_name_error
from .hub import load_pretrained, published_ids
from .recipes import list_recipes, load_recipe
from .registry import build_config, build_model, get_architecture, list_architectures


def list_models(pattern: str | None = None, pretrained: bool = False, recipes: bool = False) -> list[str]:
    """Architecture names; with ``pretrained=True`` the ids actually published (a complete snapshot in
    the local Hugging Face cache, or on the Hub when it is reachable); with ``recipes=True`` the
    recipe ids (hub_configs/), published or not."""
    if pretrained:
        return published_ids(pattern)
    if recipes:
        return sorted(r for r in list_recipes() if pattern is None or fnmatch.fnmatch(r, pattern))
    return list_architectures(pattern)


def create_model(name_or_type: str, pretrained: bool = False, **config_overrides) -> PreTrainedModel:
    """Build a model from an architecture name or a recipe id.

    ``create_model("mlp", hidden_sizes=[64])`` builds a fresh `mlp` (the task model, e.g.
    MLPForImageClassification); ``create_model("mlp-fashion-mnist")`` builds the recipe's
    configuration; with ``pretrained=True`` the recipe's published weights are loaded by name
    ("zooscope/<id>", from the local Hugging Face cache when offline). An unknown config key is a
    UserError naming the close match.
    """
    architectures = list_architectures()
    if name_or_type in architectures:
        if pretrained:
            raise UserError(f"{name_or_type!r} is an architecture; pretrained weights belong to a recipe id "
                            f"(see `zoo list --pretrained`)")
        return build_model(name_or_type, **config_overrides)
    if name_or_type not in list_recipes():
        raise unknown_name_error("architecture or recipe", name_or_type, architectures + list_recipes())
    recipe = load_recipe(name_or_type)
    if pretrained:
        return load_pretrained(recipe.repo_id, **config_overrides)
    arch = get_architecture(recipe.architecture)
    return arch.model_class(build_config(arch.name, **{**recipe.config, **config_overrides}))
