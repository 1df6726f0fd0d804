"""The batches a sharpness measurement runs on: the first examples of a zoo data set, in the
columns the model takes, checked by one trial forward pass."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import UserError

__all__ = ["parse_data_args", "dataset_batches", "check_model_takes"]


def parse_data_args(items) -> dict[str, Any]:
    """``["dim=100", "label_noise=0.1", "name=x"]`` → ``{"dim": 100, "label_noise": 0.1, "name": "x"}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--data-arg {item!r} is not KEY=VALUE")
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        out[key] = value
    return out


def _input_name(model: nn.Module) -> str:
    return getattr(model, "main_input_name", None) or "input_ids"


def dataset_batches(model: nn.Module, data: str, *, split: str = "train", limit: int | None = 512,
                    batch_size: int = 256, data_args: dict | None = None, model_name: str = "the model",
                    device=None, dtype=None) -> tuple[list[dict], str]:
    """(batches of ``{input: ..., "labels": ...}``, a description) from zoo data set ``data``.

    A data set parameter named ``dim`` that is not given defaults to the model config's
    ``input_dim`` (the synthetic sets), so ``--data xor_cluster`` fits a model built for it.
    """
    from zoo import data as zoo_data

    args = dict(data_args or {})
    params = zoo_data.dataset_parameters(data)  # unknown name → UserError listing the data sets
    input_dim = getattr(getattr(model, "config", None), "input_dim", None)
    if "dim" in params and "dim" not in args and isinstance(input_dim, int):
        args["dim"] = input_dim
    dataset = zoo_data.load(data, split=split, **args)
    name = _input_name(model)
    if name not in dataset.column_names:
        raise UserError(f"{model_name} takes {name} but data set {data!r} has columns "
                        f"{', '.join(dataset.column_names)}; it cannot take this data set")
    if "labels" not in dataset.column_names:
        raise UserError(f"data set {data!r} has no labels column; the loss needs labels")
    total = len(dataset) if limit is None else min(limit, len(dataset))
    batches = []
    for start in range(0, total, batch_size):
        rows = dataset[start:min(start + batch_size, total)]
        inputs = rows[name]
        if dtype is not None and torch.is_tensor(inputs) and inputs.is_floating_point():
            inputs = inputs.to(dtype)
        labels = rows["labels"]
        if dtype is not None and labels.is_floating_point():
            labels = labels.to(dtype)
        batch = {name: inputs, "labels": labels}
        if device is not None:
            batch = {k: v.to(device) for k, v in batch.items()}
        batches.append(batch)
    check_model_takes(model, batches[0], f"data set {data!r}", model_name)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
    return batches, f"{data} ({split} split, first {total} examples{'; ' + shown if shown else ''})"


def check_model_takes(model: nn.Module, batch: dict, what: str = "the data", model_name: str = "the model") -> None:
    """One forward pass on two examples; a model that cannot take ``batch`` is a one-line UserError."""
    trial = {k: v[:2] for k, v in batch.items()}
    try:
        with torch.no_grad():
            model(**trial)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{model_name} cannot take {what}: {first}") from None
