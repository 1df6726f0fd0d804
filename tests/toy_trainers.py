"""Toy trainers, written the way a user's own package would: a recipe names them with
`training.trainer: tests.toy_trainers:RidgeHeadTrainer` (module:Class), no zoo code edited.

- RidgeHeadTrainer: a solver-type trainer with its own train(): it keeps the network's random
  hidden features and solves the output layer in closed form (ridge regression onto one-hot
  labels). It takes no steps; the run's shared code evaluates and saves.
- MaskedHeadTrainer: the default loop with two hooks changed: only the output layer is
  optimised (build_optimizer), and a fixed mask zeroes every other input column of it after
  each optimizer step (after_optimizer_step) — the pattern of mask-based sparse trainers.
- KilledAtStepTrainer: the default loop that crashes (SIGKILL) at a chosen step, for resume tests.
"""
from __future__ import annotations

import os
import signal

import torch

from zoo.training import SGDTrainer, TrainOutcome, register_trainer


def output_layer(model) -> torch.nn.Linear:
    """The last nn.Linear of the model: its classification head."""
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]


def head_inputs(model, examples) -> tuple[torch.Tensor, torch.Tensor]:
    """(the head's input features, the labels) over all `examples` (TensorBatches)."""
    captured = []
    handle = output_layer(model).register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    batch = examples.__getitems__(list(range(len(examples))))
    batch.pop("example_index")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(**{k: v.to(model.device) for k, v in batch.items()})
    finally:
        handle.remove()
        model.train(was_training)
    return captured[0], batch["labels"]


class RidgeHeadTrainer:
    name = "ridge-head"
    options = {"l2": 1e-2}

    def train(self, run) -> TrainOutcome:
        model = run.unwrapped_model
        features, labels = head_inputs(model, run.train_set)
        x = torch.cat([features.double(), torch.ones(len(features), 1, dtype=torch.float64, device=features.device)], 1)
        y = torch.nn.functional.one_hot(labels.to(x.device), model.config.num_labels).double()
        gram = x.T @ x + run.options["l2"] * torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        solution = torch.linalg.solve(gram, x.T @ y)  # (features + 1, labels)
        head = output_layer(model)
        with torch.no_grad():
            head.weight.copy_(solution[:-1].T.to(head.weight.dtype))
            head.bias.copy_(solution[-1].to(head.bias.dtype))
        run.total_steps = run.state["step"] = 1  # one solve
        return TrainOutcome(metrics={"solver": "ridge normal equations"})


@register_trainer("masked-head")
class MaskedHeadTrainer(SGDTrainer):
    options = {"keep_every": 2}

    def build_optimizer(self, run, params):
        head = output_layer(run.unwrapped_model)
        self.mask = torch.zeros_like(head.weight)
        self.mask[:, :: run.options["keep_every"]] = 1
        with torch.no_grad():
            head.weight.mul_(self.mask)
        return super().build_optimizer(run, list(head.parameters()))

    def after_optimizer_step(self, run) -> None:
        with torch.no_grad():
            output_layer(run.unwrapped_model).weight.mul_(self.mask)


class KilledAtStepTrainer(SGDTrainer):
    """The default loop, except that with $ZOO_TEST_KILL_AT_STEP=N each process SIGKILLs itself
    during step N: a crash with no chance to clean up (tests/test_scaleout.py resumes from it)."""

    supports_fsdp = True

    def after_optimizer_step(self, run) -> None:
        at = os.environ.get("ZOO_TEST_KILL_AT_STEP")
        if at and run.state["step"] + 1 == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
