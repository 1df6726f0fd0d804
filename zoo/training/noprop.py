"""The NoProp trainer (`training.trainer: noprop`): each block of a NoProp model learns alone.

Every step, for each module of `model.local_modules()` in turn (block 1, …, block T, the head):
its loss from `model.local_losses` — which depends on that module's parameters only — is
back-propagated into it and its own optimiser steps; the autograd graph is freed before the
next block runs. No gradient crosses blocks and no forward pass runs through the stack, so the
peak training memory is one block's (benchmarks in experiments/noprop). Each module has its own
optimiser of the recipe's kind and learning rate (NoProp-DT trains the blocks independently).
The run's evaluation (the full denoising chain), curves, checkpoints and final save are shared.
"""
from __future__ import annotations

import torch

from ..errors import UserError
from .base import register_trainer
from .loop import SGDTrainer


@register_trainer("noprop")
class NoPropTrainer(SGDTrainer):
    options: dict = {}

    def setup(self, run) -> None:
        model = run.unwrapped_model
        if not hasattr(model, "local_loss") or not hasattr(model, "local_modules"):
            raise UserError(f"training.trainer noprop needs a model with local_loss/local_modules (architecture noprop), "
                            f"got {type(model).__name__}")
        if run.accelerator.num_processes > 1:
            raise UserError("training.trainer noprop runs in one process")
        self.modules = model.local_modules()
        optimizers = [self.build_optimizer(run, list(m.parameters())) for m in self.modules]
        schedulers = [self.build_scheduler(run, o) for o in optimizers]
        prepared = run.accelerator.prepare(*optimizers, *schedulers)  # so that checkpoints hold them all
        self.optimizers, self.schedulers = prepared[: len(optimizers)], prepared[len(optimizers):]

    def training_step(self, run, batch: dict) -> torch.Tensor:
        """One local update of every module; returns the sum of the local losses (for the log)."""
        model = run.unwrapped_model
        x, labels = batch["pixel_values"], batch["labels"]
        # the noise of step s comes from its own generator (seed, s): a resumed run draws the same
        # noise whatever else consumed the global RNG since the checkpoint
        generator = torch.Generator(device=x.device).manual_seed(run.settings["seed"] * 1_000_003 + run.state["step"])
        total = 0.0
        for index, (module, optimizer, scheduler) in enumerate(zip(self.modules, self.optimizers, self.schedulers)):
            loss = model.local_loss(x, labels, index, generator)
            loss.backward()
            if run.settings["max_grad_norm"]:
                torch.nn.utils.clip_grad_norm_(module.parameters(), run.settings["max_grad_norm"])
            optimizer.step()
            scheduler.step()
            optimizer.optimizer.zero_grad(set_to_none=True)  # the inner one's: see SGDTrainer.training_step
            total = total + loss.detach()
        return total
