"""Magnitude pruning with fine-tuning (`training.trainer: magnitude_pruning`), the sparse-RNN
thesis's first experiment (Darji 2024, RESEARCH.md E1): train dense, zero the smallest weights,
keep training with them held at zero.

    training:
      trainer: magnitude_pruning
      trainer_options: {sparsity: 0.7, dense_epochs: 5}

After `dense_epochs` epochs the `targets` weights (parameter names ending in one of them; by
default every recurrent layer's input and recurrent matrices) lose the `sparsity` fraction of
their entries of smallest magnitude, per tensor (`scope: layer`) or over all of them together
(`scope: global`). The run's evaluation of that epoch is taken right after the pruning, so
metrics.json's history holds the accuracy after pruning and after each recovery epoch. The
masks are re-applied after every optimiser step (a pruned weight stays exactly zero) and saved
with every checkpoint, so a resumed run prunes the same weights.
"""
from __future__ import annotations

import torch

from ..errors import UserError
from .base import register_trainer
from .loop import SGDTrainer

MASKS_FILE = "pruning_masks.safetensors"


def prunable_parameters(model, targets=("weight_ih", "weight_hh")) -> dict[str, torch.nn.Parameter]:
    """The parameters whose names end in one of `targets` (name → parameter)."""
    found = {name: p for name, p in model.named_parameters() if name.endswith(tuple(targets))}
    if not found:
        raise UserError(f"no parameter of {type(model).__name__} ends in {', '.join(targets)}: nothing to prune")
    return found


def magnitude_masks(params: dict[str, torch.Tensor], sparsity: float, scope: str = "layer") -> dict[str, torch.Tensor]:
    """Boolean keep-masks that drop the round(sparsity · n) entries of smallest |w| (ties: the
    lower flat index goes first), per tensor or over all tensors together."""
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"sparsity must be in [0, 1), got {sparsity!r}")

    def keep_largest(values: torch.Tensor) -> torch.Tensor:
        n_drop = int(round(sparsity * values.numel()))
        keep = torch.ones(values.numel(), dtype=torch.bool, device=values.device)
        if n_drop:
            keep[torch.argsort(values.abs().flatten(), stable=True)[:n_drop]] = False
        return keep

    if scope == "layer":
        return {name: keep_largest(p.detach()).view_as(p) for name, p in params.items()}
    if scope != "global":
        raise UserError(f"scope must be layer or global, got {scope!r}")
    flat = keep_largest(torch.cat([p.detach().flatten() for p in params.values()]))
    masks, start = {}, 0
    for name, p in params.items():
        masks[name] = flat[start:start + p.numel()].view_as(p)
        start += p.numel()
    return masks


def apply_masks(params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].dtype))


def sparsity_of(params: dict[str, torch.Tensor]) -> float:
    """The fraction of exactly-zero entries over `params`."""
    total = sum(p.numel() for p in params.values())
    return sum(int((p == 0).sum()) for p in params.values()) / max(total, 1)


@register_trainer("magnitude_pruning")
class MagnitudePruningTrainer(SGDTrainer):
    """SGD training, magnitude pruning after `dense_epochs` epochs, then fine-tuning with masks."""

    options = {"sparsity": 0.5, "dense_epochs": 1, "scope": "layer", "targets": ["weight_ih", "weight_hh"]}

    def setup(self, run) -> None:
        o = run.options
        if isinstance(o["sparsity"], bool) or not isinstance(o["sparsity"], (int, float)) or not 0 <= o["sparsity"] < 1:
            raise UserError(f"training.trainer_options.sparsity must be in [0, 1), got {o['sparsity']!r}")
        if not isinstance(o["dense_epochs"], int) or isinstance(o["dense_epochs"], bool) or o["dense_epochs"] < 0:
            raise UserError(f"training.trainer_options.dense_epochs must be an integer >= 0, got {o['dense_epochs']!r}")
        if o["dense_epochs"] >= run.settings["epochs"]:
            raise UserError(f"training.trainer_options.dense_epochs={o['dense_epochs']} leaves no epoch of the "
                            f"{run.settings['epochs']} to fine-tune the pruned model")
        if o["scope"] not in ("layer", "global"):
            raise UserError(f"training.trainer_options.scope must be layer or global, got {o['scope']!r}")
        self.params = prunable_parameters(run.unwrapped_model, tuple(o["targets"]))
        self.masks = None
        super().setup(run)
        if o["dense_epochs"] == 0 and run.state["step"] == 0:
            self.prune(run)

    def prune(self, run) -> None:
        self.masks = magnitude_masks(self.params, float(run.options["sparsity"]), run.options["scope"])
        apply_masks(self.params, self.masks)
        self.pruned_at_step = run.state["step"]

    def after_optimizer_step(self, run) -> None:
        if self.masks is not None:
            apply_masks(self.params, self.masks)

    def on_epoch_end(self, run, epoch: int) -> None:
        if epoch == run.options["dense_epochs"] and self.masks is None:
            self.prune(run)  # the run evaluates right after this: the accuracy after pruning

    def on_save_checkpoint(self, run, path) -> None:
        from safetensors.torch import save_file

        if self.masks is not None and run.accelerator.is_main_process:
            save_file({name: m.to(torch.uint8).contiguous().cpu() for name, m in self.masks.items()}, str(path / MASKS_FILE))

    def on_load_checkpoint(self, run, path) -> None:
        from safetensors.torch import load_file

        if (path / MASKS_FILE).exists():
            device = next(iter(self.params.values())).device
            self.masks = {name: m.bool().to(device) for name, m in load_file(str(path / MASKS_FILE)).items()}

    def train(self, run):
        outcome = super().train(run)
        outcome.metrics["pruning"] = {
            "sparsity": float(run.options["sparsity"]), "scope": run.options["scope"],
            "pruned_after_epoch": run.options["dense_epochs"], "targets": list(self.params),
            "measured_sparsity": sparsity_of(self.params),
        }
        return outcome
