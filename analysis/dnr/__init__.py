"""analysis.dnr: the dynamic dead neuron rate (Activating-while-Pruning, C2) of any zoo model with ReLU-family units.

    from analysis.dnr import DNRMeter, dead_neuron_rate
    meter = DNRMeter(model)          # a callback: hooks count the zeros of the training passes
    ...train...; meter.record(step)  # one curve point per call
    dead_neuron_rate(model, batches) # a checkpoint's number (eval mode)

CLI: ``zoo-analysis dnr --model NAME --data fashion_mnist --out DIR``. Names are imported on
first use, so building the zoo-analysis parser does not load torch.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "add_cli": ("cli", "add_cli"),
    "model_batches": ("cli", "model_batches"),
    "RELU_FAMILY": ("core", "RELU_FAMILY"),
    "DNRMeter": ("core", "DNRMeter"),
    "DNRResult": ("core", "DNRResult"),
    "dead_neuron_rate": ("core", "dead_neuron_rate"),
    "relu_layers": ("core", "relu_layers"),
    "plot_layers": ("plots", "plot_layers"),
    "summary_markdown": ("report", "summary_markdown"),
    "write_files": ("report", "write_files"),
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
