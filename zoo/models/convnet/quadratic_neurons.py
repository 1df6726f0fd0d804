"""Quadratic neurons (Fan et al., "On Expressivity and Trainability of Quadratic Networks"):

    y = (W_r x + b_r) * (W_g x + b_g) + W_b (x * x) + c

as drop-in subclasses of nn.Linear and nn.Conv2d. `weight` / `bias` are W_r / b_r (the names of
the linear layer they replace, so a linear checkpoint's weights load into them unchanged);
`weight_g` / `bias_g`, `weight_b` and `bias_b` (= c) are the quadratic terms.

Two initialisations (`init_quadratic_terms`):
- "relinear": W_g = 0, b_g = 1, W_b = 0, c = 0. The neuron starts as the conventional neuron
  W_r x + b_r, so a quadratic net built with the same seed as a linear net computes the same
  function at step 0 (the constructor draws no random numbers beyond nn.Linear / nn.Conv2d's own).
- "random": every term drawn like the linear weights (PyTorch's default init): plain training.

QUADRATIC_PARAMETER_NAMES lists the quadratic terms' parameter names: ReLinear trains them with
a much smaller learning rate (zoo.training.relinear builds the optimiser's parameter groups).

Single source: zoo/models/_shared/; each architecture folder that uses it holds a byte-identical copy.
It imports only torch and its sibling zoo_common.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .zoo_common import init

NEURON_KINDS = ("linear", "quadratic")
QUADRATIC_INITS = ("relinear", "random")
QUADRATIC_PARAMETER_NAMES = ("weight_g", "bias_g", "weight_b", "bias_b")


def _add_quadratic_terms(module: nn.Module) -> None:
    # ReLinear's values as the constructor's (no random numbers drawn); _init_weights sets them again
    module.weight_g = nn.Parameter(torch.zeros_like(module.weight))
    module.bias_g = nn.Parameter(torch.ones(module.weight.shape[0]))
    module.weight_b = nn.Parameter(torch.zeros_like(module.weight))
    module.bias_b = nn.Parameter(torch.zeros(module.weight.shape[0]))


class QuadraticLinear(nn.Linear):
    """A fully connected layer of quadratic neurons (in_features → out_features)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features)
        _add_quadratic_terms(self)

    def forward(self, x):
        return (F.linear(x, self.weight, self.bias) * F.linear(x, self.weight_g, self.bias_g)
                + F.linear(x * x, self.weight_b, self.bias_b))


class QuadraticConv2d(nn.Conv2d):
    """A convolution of quadratic neurons: each of the three terms is a convolution of the same shape."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding)
        _add_quadratic_terms(self)

    def _conv(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x):
        return (self._conv(x, self.weight, self.bias) * self._conv(x, self.weight_g, self.bias_g)
                + self._conv(x * x, self.weight_b, self.bias_b))


def linear_layer(neuron: str, in_features: int, out_features: int) -> nn.Linear:
    """nn.Linear or QuadraticLinear, per the config's `neuron` field."""
    return QuadraticLinear(in_features, out_features) if neuron == "quadratic" else nn.Linear(in_features, out_features)


def conv_layer(neuron: str, in_channels: int, out_channels: int, kernel_size: int, padding: int) -> nn.Conv2d:
    """nn.Conv2d or QuadraticConv2d, per the config's `neuron` field."""
    if neuron == "quadratic":
        return QuadraticConv2d(in_channels, out_channels, kernel_size, padding=padding)
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)


def init_quadratic_terms(module: nn.Module, mode: str) -> None:
    """Initialise a quadratic layer's quadratic terms ("relinear" or "random"; see the module doc)."""
    if mode == "relinear":
        init.zeros_(module.weight_g)
        init.ones_(module.bias_g)
        init.zeros_(module.weight_b)
        init.zeros_(module.bias_b)
        return
    bound = module.weight[0].numel() ** -0.5
    for weight, bias in ((module.weight_g, module.bias_g), (module.weight_b, module.bias_b)):
        init.kaiming_uniform_(weight, a=5**0.5)
        init.uniform_(bias, -bound, bound)
