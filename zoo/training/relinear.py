"""ReLinear (`training.trainer: relinear`): the training strategy of Fan et al. for quadratic nets.

A quadratic neuron (W_r x + b_r) * (W_g x + b_g) + W_b (x * x) + c (the `neuron: quadratic`
field of the mlp and convnet configs) is trained with its quadratic terms — W_g, b_g, W_b and c —
at a much smaller learning rate than the linear terms, so that the net, which ReLinear's
initialisation (config `quadratic_init: relinear`) starts as the conventional net, grows its
quadratic part gradually. The reference (FengleiFan/ReLinear, qtrainer_10_5.py) uses SGD with
lr 0.1 for W_r, b_r and the rest, and 1e-5 for the g and b terms: a ratio of 1e-4, the default
`quadratic_lr_scale` here. Everything else is the default loop (`SGDTrainer`): only
`build_optimizer` changes, to give the optimiser two parameter groups.

    training:
      trainer: relinear
      trainer_options: {quadratic_lr_scale: 1.0e-4}
"""
from __future__ import annotations

import torch

from ..errors import UserError
from .base import register_trainer
from .loop import SGDTrainer

# The parameter names of a quadratic layer's quadratic terms (zoo/models/_shared/quadratic_neurons.py).
QUADRATIC_PARAMETER_NAMES = ("weight_g", "bias_g", "weight_b", "bias_b")


def is_quadratic_parameter(name: str) -> bool:
    """Whether a `named_parameters()` name is one of a quadratic layer's quadratic terms."""
    return name.rsplit(".", 1)[-1] in QUADRATIC_PARAMETER_NAMES


def relinear_parameter_groups(model: torch.nn.Module, lr: float, quadratic_lr_scale: float) -> list[dict]:
    """The optimiser's two parameter groups: linear terms (and every other parameter) at `lr`,
    quadratic terms at `lr * quadratic_lr_scale`. Only parameters that require gradients."""
    linear, quadratic = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (quadratic if is_quadratic_parameter(name) else linear).append(parameter)
    if not quadratic:
        raise UserError("training.trainer relinear needs a model with quadratic neurons (config.neuron: quadratic)")
    return [{"params": linear, "lr": lr}, {"params": quadratic, "lr": lr * quadratic_lr_scale}]


@register_trainer("relinear")
class ReLinearTrainer(SGDTrainer):
    """The default loop with the quadratic terms in their own, slower parameter group."""

    options = {"quadratic_lr_scale": 1.0e-4}

    def build_optimizer(self, run, params) -> torch.optim.Optimizer:
        scale = run.options["quadratic_lr_scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 1:
            raise UserError(f"training.trainer_options.quadratic_lr_scale must be a number in [0, 1], got {scale!r}")
        groups = relinear_parameter_groups(run.unwrapped_model, run.settings["lr"], float(scale))
        return super().build_optimizer(run, groups)
