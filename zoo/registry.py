"""The one registry: model_type → configuration class, model class, task, folder.

Every sub-package of ``zoo.models`` that declares ``ARCHITECTURE`` is discovered here and
registered with transformers' AutoConfig, AutoModel and its task Auto class, so a new
architecture needs no edit outside its own folder.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

import transformers
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from .errors import UserError


@dataclass(frozen=True)
class Architecture:
    """What the zoo knows about one architecture."""

    name: str  # == config_class.model_type
    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]
    task_auto_class: str | None  # e.g. "AutoModelForImageClassification"; None: AutoModel only
    description: str
    paper: str
    tiny_config: dict = field(default_factory=dict)  # small enough for tests

    @property
    def folder(self) -> Path:
        """The folder of the architecture's configuration/modeling pair (its remote code)."""
        return Path(importlib.import_module(self.model_class.__module__).__file__).parent

    @property
    def code_files(self) -> list[Path]:
        """The files a Hub repo needs: configuration_<name>.py and modeling_<name>.py."""
        return [
            Path(importlib.import_module(cls.__module__).__file__)
            for cls in (self.config_class, self.model_class)
        ]

    @property
    def auto_map(self) -> dict[str, str]:
        """config.json's `auto_map`: Auto class → "module.Class" in the repo's own files."""
        config_ref = f"{self.config_class.__module__.rsplit('.', 1)[-1]}.{self.config_class.__name__}"
        model_ref = f"{self.model_class.__module__.rsplit('.', 1)[-1]}.{self.model_class.__name__}"
        auto_map = {"AutoConfig": config_ref, "AutoModel": model_ref}
        if self.task_auto_class:
            auto_map[self.task_auto_class] = model_ref
        return auto_map


_REGISTRY: dict[str, Architecture] = {}


def _discover() -> None:
    from . import models

    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        spec = getattr(module, "ARCHITECTURE", None)
        if spec is None:
            continue
        arch = Architecture(name=spec["config_class"].model_type, **spec)
        register(arch)


def register(arch: Architecture) -> None:
    """Add an architecture to the registry and to transformers' Auto classes."""
    _REGISTRY[arch.name] = arch
    AutoConfig.register(arch.name, arch.config_class, exist_ok=True)
    AutoModel.register(arch.config_class, arch.model_class, exist_ok=True)
    if arch.task_auto_class:
        getattr(transformers, arch.task_auto_class).register(arch.config_class, arch.model_class, exist_ok=True)


def unknown_name_error(kind: str, name: str, known: list[str]) -> UserError:
    """A UserError for an unknown `name` that lists the close matches (or everything known)."""
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known)) or '(none)'}"
    return UserError(f"unknown {kind} {name!r}; {hint}")


def get_architecture(name: str) -> Architecture:
    if name not in _REGISTRY:
        raise unknown_name_error("architecture", name, list(_REGISTRY))
    return _REGISTRY[name]


def list_architectures(pattern: str | None = None) -> list[str]:
    return sorted(n for n in _REGISTRY if pattern is None or fnmatch.fnmatch(n, pattern))


def list_models(pattern: str | None = None, pretrained: bool = False, recipes: bool = False) -> list[str]:
    """Architecture names; with ``pretrained=True`` the ids actually published (a complete snapshot in
    the local Hugging Face cache, or on the Hub when it is reachable); with ``recipes=True`` the
    recipe ids (hub_configs/), published or not."""
    if pretrained:
        from .hub import published_ids

        return published_ids(pattern)
    if recipes:
        from .recipes import list_recipes

        return sorted(r for r in list_recipes() if pattern is None or fnmatch.fnmatch(r, pattern))
    return list_architectures(pattern)


def build_config(name: str, **overrides) -> PretrainedConfig:
    """The architecture's config with `overrides`; an invalid value is a UserError naming the field."""
    arch = get_architecture(name)
    try:
        return arch.config_class(**overrides)
    except (TypeError, ValueError) as error:
        raise UserError(f"invalid {name} config: {error}") from error


def create_model(name_or_type: str, pretrained: bool = False, **config_overrides) -> PreTrainedModel:
    """Build a model from an architecture name or a recipe id (timm-style).

    ``create_model("mlp", hidden_sizes=[64])`` builds a fresh `mlp`; ``create_model("mlp-fashion-mnist")``
    builds the recipe's configuration; with ``pretrained=True`` the recipe's published weights are
    loaded by name ("zooscope/<id>", from the local Hugging Face cache when offline).
    """
    if name_or_type in _REGISTRY:
        if pretrained:
            raise UserError(f"{name_or_type!r} is an architecture; pretrained weights belong to a recipe id "
                            f"(see `zoo list --pretrained`)")
        return get_architecture(name_or_type).model_class(build_config(name_or_type, **config_overrides))
    from .recipes import list_recipes, load_recipe

    if name_or_type not in list_recipes():
        raise unknown_name_error("architecture or recipe", name_or_type, list(_REGISTRY) + list_recipes())
    recipe = load_recipe(name_or_type)
    arch = get_architecture(recipe.architecture)
    if pretrained:
        from .hub import load_pretrained

        return load_pretrained(recipe.repo_id, **config_overrides)
    return arch.model_class(build_config(arch.name, **{**recipe.config, **config_overrides}))


_discover()
