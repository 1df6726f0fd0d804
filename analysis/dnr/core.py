"""The dynamic dead neuron rate (DNR, Activating-while-Pruning): how often ReLU-family units output zero.

For a batch of N examples through a layer of U ReLU units, the layer's DNR is the fraction of
the N·U unit outputs that are <= 0 (a ReLU outputs exactly 0 there; a leaky ReLU something
negative). The model's DNR weighs every layer by its unit count. "Dynamic": measured on the
batches the net is trained on, in training mode, as the weights change (`DNRMeter` as a
callback); a checkpoint's number is the same count over a data set in eval mode
(`dead_neuron_rate`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import torch
from torch import nn

from ..errors import AnalysisError

RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.RReLU, nn.PReLU)


def relu_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every ReLU-family activation module of `model`."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, RELU_FAMILY)]


@dataclass
class DNRResult:
    """A dead neuron rate: overall and per layer, with the counts behind it."""

    rate: float
    layers: dict[str, float]
    units: dict[str, int]  # units per example of each layer
    examples: int
    model: str = ""
    data: str = ""
    curve: list[dict] = field(default_factory=list)  # [{"step": s, "rate": r}, ...] for a training curve

    def to_json(self) -> dict:
        return asdict(self)


class DNRMeter:
    """Counts the zeros of every ReLU-family layer of `model` over the forward passes it sees.

    As a callback: create it on the model being trained (hooks attached), let training run,
    call `record(step)` whenever a curve point is due (it appends the rate since the last
    point and starts a new span); `close()` removes the hooks. `only_training=True` counts the
    training-mode passes only, so evaluations between steps do not count.
    """

    def __init__(self, model: nn.Module, only_training: bool = True):
        self.layers = relu_layers(model)
        if not self.layers:
            raise AnalysisError(f"{type(model).__name__} has no ReLU-family activation module (nn.ReLU, nn.LeakyReLU, ...): "
                                "the dead neuron rate counts their zero outputs")
        self.only_training = only_training
        self.dead = {name: 0 for name, _ in self.layers}
        self.total = {name: 0 for name, _ in self.layers}
        self.units: dict[str, int] = {}
        self.examples = 0
        self.curve: list[dict] = []
        self._first = self.layers[0][0]
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.layers]

    def _hook(self, name: str):
        def hook(module, args, output):
            if self.only_training and not module.training:
                return
            out = output.detach()
            n = out.shape[0] if out.dim() > 1 else 1
            self.dead[name] += int((out <= 0).sum())
            self.total[name] += out.numel()
            self.units[name] = out.numel() // n
            if name == self._first:
                self.examples += n
        return hook

    def result(self, **labels) -> DNRResult:
        seen = sum(self.total.values())
        if not seen:
            raise AnalysisError("no forward pass reached the ReLU layers (in training mode, for a training curve)")
        layers = {name: self.dead[name] / self.total[name] for name in self.dead if self.total[name]}
        return DNRResult(rate=sum(self.dead.values()) / seen, layers=layers, units=dict(self.units),
                         examples=self.examples, curve=list(self.curve), **labels)

    def reset(self) -> None:
        for name in self.dead:
            self.dead[name] = self.total[name] = 0
        self.examples = 0

    def record(self, step: int) -> float:
        """Append the rate since the last point to the curve, then start a new span."""
        rate = self.result().rate
        self.curve.append({"step": step, "rate": rate})
        self.reset()
        return rate

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def dead_neuron_rate(model: nn.Module, batches: Iterable[dict], *, model_name: str = "", data: str = "",
                     progress: bool = False, total: int | None = None) -> DNRResult:
    """The DNR of `model` (eval mode, no gradients) over `batches` of model inputs."""
    from ..batching import progress as progress_bar

    was_training = model.training
    model.eval()
    meter = DNRMeter(model, only_training=False)
    try:
        with torch.no_grad():
            for batch in progress_bar(batches, total=total, desc="dnr", progress=progress):
                model(**batch)
    finally:
        meter.close()
        model.train(was_training)
    return meter.result(model=model_name, data=data)
