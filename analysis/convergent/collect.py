"""The one pass over the inputs: forward hooks on the chosen layers of every model stream each
batch's units into ``LayerStatistics`` (and ``BinnedMI``); only the current batch is held."""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from ..errors import UserError
from ..hooks import Hooks
from .inputs import check_layers
from .statistics import BinnedMI, LayerStatistics, flatten_units

__all__ = ["collect_statistics"]


def collect_statistics(models: Sequence[nn.Module], layers: Sequence[str], batches: Iterable[dict], *,
                       names: Sequence[str] | None = None, within: bool = True, mi_bins: int = 0,
                       compute_dtype: torch.dtype = torch.float32, total: int | None = None,
                       progress: bool = True) -> tuple[dict[str, LayerStatistics], dict[str, BinnedMI]]:
    """Run every model on every batch and stream the chosen layers' units into statistics.

    Returns ``({layer: LayerStatistics}, {layer: BinnedMI})`` (the second empty unless
    ``mi_bins``). Only the current batch's activations are ever held.
    """
    from tqdm.auto import tqdm

    names = list(names or [f"model{m}" for m in range(len(models))])
    modules = [check_layers(model, layers, name) for model, name in zip(models, names)]
    current: list[dict[str, torch.Tensor]] = [dict() for _ in models]
    mask_holder: dict[str, torch.Tensor | None] = {"mask": None}

    def hook_for(m: int, layer: str):
        def hook(module, inputs, output):
            current[m][layer] = flatten_units(output, mask_holder["mask"], copy=False).detach()
        return hook

    stats: dict[str, LayerStatistics] = {}
    infos: dict[str, BinnedMI] = {}
    bar = tqdm(total=total, desc="correlating", unit="input", disable=not progress)
    # the project's one hooks context manager: every hook is removed however the pass ends
    with Hooks() as hooks:
        for m, mods in enumerate(modules):
            for layer, module in mods.items():
                hooks.forward(module, hook_for(m, layer))
        try:
            with torch.inference_mode():
                for batch in batches:
                    mask_holder["mask"] = batch.get("attention_mask")
                    for m, model in enumerate(models):
                        device = next(iter(model.parameters()), torch.empty(0)).device
                        model(**{k: v.to(device) for k, v in batch.items()})
                    for layer in layers:
                        acts = [current[m][layer] for m in range(len(models))]
                        if layer not in stats:
                            stats[layer] = LayerStatistics([a.shape[-1] for a in acts], within=within,
                                                           compute_dtype=compute_dtype)
                            if mi_bins:
                                infos[layer] = BinnedMI([a.shape[-1] for a in acts], bins=mi_bins)
                        stats[layer].update(acts)
                        if mi_bins:
                            infos[layer].update([a.reshape(-1, a.shape[-1]) for a in acts])
                    for c in current:
                        c.clear()
                    first = next(iter(batch.values()))
                    bar.update(first.shape[0])
        finally:
            bar.close()
    if not stats:
        raise UserError("no inputs: the data gave no batches")
    return stats, infos
