"""`training.trainer: muon`: Muon (torch.optim.Muon) on chosen weight matrices, the recipe's
optimiser (`training.optimizer`, e.g. adam) on every other parameter.

Muon (Jordan et al. 2024) replaces a matrix parameter's (Nesterov) momentum by its
orthogonalisation, k Newton–Schulz iterations X ← aX + (bXXᵀ + c(XXᵀ)²)X that push every
singular value towards 1; Tian 2025 (Li₂ grokking) argues this is what makes it find missing
features faster. By default only the model's first weight matrix gets Muon (the Li₂ setting:
"Muon on the first layer"); `muon_params` names others by fnmatch patterns on parameter names.

Options (training.trainer_options): muon_params (list of patterns, or null: the first 2-D
parameter), lr / weight_decay (null: the recipe's training.lr / training.weight_decay), momentum,
nesterov, ns_steps, adjust_lr_fn (torch.optim.Muon's: null/"original" or "match_rms_adamw").
The learning-rate scheduler drives both optimisers' groups; checkpoints hold both states.
"""
from __future__ import annotations

import fnmatch

import torch

from ..errors import UserError
from .base import register_trainer
from .loop import SGDTrainer


class CombinedOptimizer(torch.optim.Optimizer):
    """Several optimisers over disjoint parameters stepped as one (one scheduler, one checkpoint).

    `param_groups` are the inner optimisers' own group dicts, so a scheduler that sets a group's
    lr sets it where the inner optimiser reads it.
    """

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = list(optimizers)
        groups = [group for optimizer in self.optimizers for group in optimizer.param_groups]
        super().__init__([{"params": group["params"]} for group in groups], {})
        self.param_groups = groups

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict["optimizers"]
        if len(saved) != len(self.optimizers):
            raise ValueError(f"checkpoint holds {len(saved)} optimiser states, this run has {len(self.optimizers)}")
        for optimizer, state in zip(self.optimizers, saved):
            optimizer.load_state_dict(state)


def split_muon_parameters(named_params: list[tuple[str, torch.nn.Parameter]], patterns: list[str] | None):
    """(Muon's parameters, the rest) of the trainable `named_params`; patterns=None: the first
    2-D parameter. A pattern that matches nothing, or a match that is not a matrix, is a UserError."""
    if patterns is None:
        matrices = [name for name, p in named_params if p.ndim == 2]
        if not matrices:
            raise UserError("trainer muon: the model has no trainable weight matrix (2-D parameter) for Muon")
        chosen = {matrices[0]}
    else:
        if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns) or not patterns:
            raise UserError(f"training.trainer_options.muon_params must be a list of parameter-name patterns, got {patterns!r}")
        names = [name for name, _ in named_params]
        chosen = set()
        for pattern in patterns:
            hits = fnmatch.filter(names, pattern)
            if not hits:
                raise UserError(f"training.trainer_options.muon_params: {pattern!r} matches no trainable parameter; "
                                f"parameters: {', '.join(names)}")
            chosen.update(hits)
    for name, p in named_params:
        if name in chosen and p.ndim != 2:
            raise UserError(f"training.trainer_options.muon_params: Muon needs weight matrices, {name} has shape {tuple(p.shape)}")
    muon = [p for name, p in named_params if name in chosen]
    rest = [p for name, p in named_params if name not in chosen]
    return muon, rest, sorted(chosen)


@register_trainer("muon")
class MuonTrainer(SGDTrainer):
    options = {"muon_params": None, "lr": None, "weight_decay": None, "momentum": 0.95, "nesterov": True,
               "ns_steps": 5, "adjust_lr_fn": None}

    def setup(self, run) -> None:
        named = [(name, p) for name, p in run.unwrapped_model.named_parameters() if p.requires_grad]
        optimizer = self.build_optimizer(run, named)
        scheduler = self.build_scheduler(run, optimizer)
        self.optimizer, self.scheduler = run.accelerator.prepare(optimizer, scheduler)

    def build_optimizer(self, run, named_params) -> torch.optim.Optimizer:
        o, t = run.options, run.settings
        muon, rest, self.muon_names = split_muon_parameters(named_params, o["muon_params"])
        lr = t["lr"] if o["lr"] is None else o["lr"]
        weight_decay = t["weight_decay"] if o["weight_decay"] is None else o["weight_decay"]
        try:
            optimizers = [torch.optim.Muon(muon, lr=lr, weight_decay=weight_decay, momentum=o["momentum"],
                                           nesterov=bool(o["nesterov"]), ns_steps=o["ns_steps"],
                                           adjust_lr_fn=o["adjust_lr_fn"])]
        except (TypeError, ValueError) as error:
            raise UserError(f"trainer muon: {error}") from None
        if rest:
            optimizers.append(super().build_optimizer(run, rest))
        return CombinedOptimizer(optimizers)

    def train(self, run):
        outcome = super().train(run)
        outcome.metrics["muon_params"] = self.muon_names
        return outcome
