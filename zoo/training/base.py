"""The trainer interface and the trainer registry.

A trainer turns a prepared `TrainingRun` (recipe, accelerator, model, data loaders, the shared
evaluation / curves / checkpointing) into a trained model:

    class Trainer(Protocol):
        name: str
        def train(self, run: TrainingRun) -> TrainOutcome: ...

Whatever the trainer, the run then ends the same way (`TrainingRun.finish`): save_pretrained
safetensors, metrics.json and recipe.yaml, so `zoo publish` and loading by name work unchanged.

A recipe picks its trainer with `training.trainer`:

- a registered name (`sgd`, the accelerate loop, is the default);
- `package.module:Class` for a trainer in any importable module (nothing to register);
- a name an installed package declares under the `zooscope.trainers` entry-point group
  (`[project.entry-points."zooscope.trainers"] my-trainer = "my_pkg.trainers:MyTrainer"`).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from ..errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

ENTRY_POINT_GROUP = "zooscope.trainers"
# Built-in trainers live in their own modules, imported only when a recipe names them.
_BUILTIN_MODULES = {
    "sgd": "zoo.training.loop",
    "convex": "zoo.training.convex",
    "dst": "zoo.training.sparse",
    "hypernet": "zoo.training.hypernet",
    "imp": "zoo.training.pruning",
    "magnitude_pruning": "zoo.training.magnitude_pruning",
    "muon": "zoo.training.muon",
    "n2n": "zoo.training.n2n",
    "noprop": "zoo.training.noprop",
    "relinear": "zoo.training.relinear",
    "static-sparse": "zoo.training.sparse",
}
_TRAINERS: dict[str, type] = {}


@dataclass
class TrainOutcome:
    """What a trainer hands back to the shared end of the run.

    model: the trained model (unwrapped); None means the run's own model.
    finished: False when the trainer stopped early (training.stop_after_steps): no final model
        is saved, the latest checkpoint is what `--resume` continues from.
    final: extra metrics of the final model (eval_* names) merged into metrics.json "final".
    metrics: extra top-level entries of metrics.json (a trainer's own statistics).
    """

    model: "PreTrainedModel | None" = None
    finished: bool = True
    final: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


@runtime_checkable
class Trainer(Protocol):
    name: str

    # `run` is a zoo.training.run.TrainingRun; not imported here, not even for type checkers:
    # run.py builds on this module, and the dependency runs one way
    def train(self, run: Any) -> TrainOutcome: ...


def register_trainer(name: str) -> Callable[[type], type]:
    """Class decorator: make a trainer available to recipes as `training.trainer: <name>`."""

    def decorator(cls: type) -> type:
        if not callable(getattr(cls, "train", None)):
            raise TypeError(f"trainer {cls.__name__} has no train(run) method")
        cls.name = name
        _TRAINERS[name] = cls
        return cls

    return decorator


def _entry_points() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def list_trainers() -> list[str]:
    """Every trainer name a recipe can use (registered, built in, or installed as an entry point)."""
    return sorted(set(_TRAINERS) | set(_BUILTIN_MODULES) | set(_entry_points()))


def _from_import_path(spec: str) -> type:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UserError(f"training.trainer {spec!r}: cannot import {module_name!r} ({error})") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise UserError(f"training.trainer {spec!r}: module {module_name!r} has no {attr!r}")
    return cls


def get_trainer(name: str) -> type:
    """The trainer class a recipe's `training.trainer` names; an unknown name is a UserError."""
    if ":" in name:
        cls = _from_import_path(name)
    else:
        if name not in _TRAINERS and name in _BUILTIN_MODULES:
            importlib.import_module(_BUILTIN_MODULES[name])  # registers itself
        if name not in _TRAINERS:
            entry = _entry_points().get(name)
            if entry is None:
                from ..errors import unknown_name_error

                error = unknown_name_error("trainer", name, list_trainers())
                raise UserError(f"{error} (or give package.module:Class)")
            _TRAINERS[name] = entry.load()
        cls = _TRAINERS[name]
    if not isinstance(cls, type) or not callable(getattr(cls, "train", None)):
        raise UserError(f"training.trainer {name!r} is not a trainer class (a class with a train(run) method)")
    return cls


def trainer_name(cls: type, spec: str) -> str:
    """The name metrics.json records: the class's `name`, else the recipe's spec."""
    return str(getattr(cls, "name", None) or spec)


def check_options(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """`training.trainer_options` checked against the trainer's `options` defaults (a dict)."""
    from ..recipes import close_matches

    defaults = dict(getattr(cls, "options", None) or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise UserError(f"unknown training.trainer_options.{unknown[0]} for trainer {trainer_name(cls, cls.__name__)!r}"
                        f"{close_matches(unknown[0], defaults)}; its options: {known}")
    return {**defaults, **options}
