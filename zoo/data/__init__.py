"""Every data set as a `datasets.Dataset` / `DatasetDict`, offline-first, seeded and deterministic.

Columns are named after the model inputs they feed (``pixel_values``, ``input_features``,
``labels``), so a batch goes straight into ``model(**batch)``.

    >>> from zoo import data
    >>> data.load("xor_cluster", split="train", dim=20, n_train=100)
"""
from __future__ import annotations

import inspect
from typing import Callable

import datasets

from ..errors import UserError
from ..errors import unknown_name_error

_LOADERS: dict[str, Callable[..., datasets.DatasetDict]] = {}


def register_dataset(name: str):
    """Decorator: make a function returning a DatasetDict loadable as `zoo.data.load(name)`."""

    def decorator(fn):
        _LOADERS[name] = fn
        return fn

    return decorator


def list_datasets() -> list[str]:
    return sorted(_LOADERS)


def dataset_parameters(name: str) -> dict[str, object]:
    """The keyword arguments a data set takes, with their defaults."""
    fn = _get_loader(name)
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()}


def _get_loader(name: str):
    if name not in _LOADERS:
        raise unknown_name_error("data set", name, list(_LOADERS))
    return _LOADERS[name]


def load(name: str, split: str | None = None, **kwargs) -> datasets.Dataset | datasets.DatasetDict:
    """Load data set `name` (a DatasetDict, or one split), in torch format.

    Unknown names, unknown or invalid parameters and missing files are `UserError`s that say
    what to do.
    """
    fn = _get_loader(name)
    accepted = inspect.signature(fn).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UserError(f"data set {name!r} has no parameter {', '.join(unknown)}; it takes: {', '.join(accepted) or 'none'}")
    dataset_dict = fn(**kwargs).with_format("torch")
    if split is None:
        return dataset_dict
    if split not in dataset_dict:
        raise UserError(f"data set {name!r} has no split {split!r}; splits: {', '.join(dataset_dict)}")
    return dataset_dict[split]


# Importing the modules registers their data sets.
from . import ctr, denoising, images, pde, seq_maps, sequences, synthetic, teacher  # noqa: E402,F401

__all__ = ["dataset_parameters", "list_datasets", "load", "register_dataset"]
