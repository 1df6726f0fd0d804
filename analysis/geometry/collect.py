"""Representations of named layers of a model on a data set: one forward pass with forward hooks,
each layer's output flattened to (examples, units). "input" names the model's own input."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..hooks import Hooks
from ..models import first_tensor

__all__ = ["INPUT", "layer_representations", "dataset_batches"]

INPUT = "input"


def _modules(model: nn.Module, layers: Sequence[str], model_name: str) -> dict[str, nn.Module]:
    from ..convergent.inputs import check_layers  # the one layer-name check, with close matches

    return check_layers(model, [layer for layer in layers if layer != INPUT], model_name)


def layer_representations(model: nn.Module, layers: Sequence[str], batches: Iterable[dict], *,
                          model_name: str = "model") -> dict[str, np.ndarray]:
    """{layer: (n, units) float64 array} over every batch (dicts of model inputs; other keys
    are ignored by the caller's batches). Layers are module paths as named_modules() gives them."""
    modules = _modules(model, layers, model_name)
    main = getattr(model, "main_input_name", "input_features")
    collected: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}

    def hook_for(layer: str):
        def hook(module, args, output):
            tensor = first_tensor(output)
            collected[layer].append(tensor.detach().reshape(tensor.shape[0], -1).double().cpu().numpy())
        return hook

    device = next(iter(model.parameters()), torch.empty(0)).device
    with Hooks() as hooks:
        for layer, module in modules.items():
            hooks.forward(module, hook_for(layer))
        with torch.inference_mode():
            for batch in batches:
                if INPUT in collected:
                    x = batch[main]
                    collected[INPUT].append(x.reshape(x.shape[0], -1).double().cpu().numpy())
                model(**{main: batch[main].to(device)})
    if not any(collected.values()):
        raise UserError("no inputs: the data gave no batches")
    return {layer: np.concatenate(parts) for layer, parts in collected.items()}


def dataset_batches(name: str, options: dict, split: str, limit: int | None, batch_size: int, input_name: str):
    """(batches of the model input, the split's full table) of a zoo data set."""
    from zoo import data as zoo_data

    table = zoo_data.load(name, split=split, **options)
    if limit is not None:
        table = table.select(range(min(limit, len(table))))
    if input_name not in table.column_names:
        raise UserError(f"data set {name!r} has no column {input_name!r}, the model's input; its columns: "
                        f"{', '.join(table.column_names)}")
    columns = table[:]
    x = columns[input_name]
    batches = ({input_name: x[i:i + batch_size]} for i in range(0, len(x), batch_size))
    return batches, columns
