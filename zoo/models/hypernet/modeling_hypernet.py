"""Hypernetworks with the standard or the magnitude-invariant parametrisation (MIP).

`HyperNetModel` (AutoModel) holds the hypernetwork γ → θ(γ) (the target MLP's parameter vector,
`target_parameters`) and runs the target MLP's hidden layer with it; `HyperNetForImageClassification`
adds the target's output layer (its weights are in θ(γ) too). With MIP the
input is encoded as [cos(πγ/2), sin(πγ/2)] (norm 1 whatever γ, so the hypernetwork's output
magnitude no longer scales with its input's) and θ = θ₀ + Δθ(γ) with θ₀ a learned parameter.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutputWithNoAttention

from .configuration_hypernet import HyperNetConfig
from .zoo_common import classification_loss, init, return_tuple

ACTIVATION_FUNCTIONS = {"relu": F.relu, "leaky_relu": F.leaky_relu, "tanh": torch.tanh, "gelu": F.gelu}


def _gain_name(activation: str) -> str:
    """The torch.nn.init gain for an activation (gelu: leaky_relu's, as the reference library does)."""
    return "tanh" if activation == "tanh" else "leaky_relu" if activation in ("leaky_relu", "gelu") else "relu"


def target_shapes(config: HyperNetConfig) -> list[tuple[str, tuple[int, ...]]]:
    """The target MLP's parameters, in the order of θ."""
    pixels, hidden = config.num_channels * config.image_size**2, config.target_hidden_size
    return [("fc1.weight", (hidden, pixels)), ("fc1.bias", (hidden,)),
            ("fc2.weight", (config.num_labels, hidden)), ("fc2.bias", (config.num_labels,))]


def encode_gamma(gamma: torch.Tensor, parametrization: str) -> torch.Tensor:
    """The hypernetwork's input for γ: [γ] (standard) or [cos(πγ/2), sin(πγ/2)] (MIP, norm 1)."""
    gamma = gamma.reshape(-1, 1)
    if parametrization == "mip":
        return torch.cat([torch.cos(math.pi * gamma / 2), torch.sin(math.pi * gamma / 2)], -1)
    return gamma


class HyperNetPreTrainedModel(PreTrainedModel):
    config_class = HyperNetConfig
    base_model_prefix = "hypernet"
    main_input_name = "pixel_values"

    def _init_weights(self, module):
        fan_out = getattr(self.config, "hyper_init", "pytorch") == "fan_out"
        if isinstance(module, nn.Linear) and fan_out:
            gain = _gain_name(self.config.activation)
            init.zeros_(module.bias)
            shapes = getattr(module, "target_shapes", None)  # set on the output layer (modules are visited in any order)
            if shapes is None:
                init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity=gain)
            start = 0
            for name, shape in shapes or ():
                size = math.prod(shape)
                rows = module.weight[start:start + size]
                if name.endswith(".bias"):
                    init.zeros_(rows)
                else:  # fan-out mode on this target tensor's rows alone: std = gain/√size
                    init.kaiming_normal_(rows, mode="fan_out", nonlinearity=gain)
                start += size
        elif isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            bound = 1 / module.in_features**0.5
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        if isinstance(module, HyperNetModel) and module.theta0 is not None:
            # θ₀ starts as PyTorch's default init of the target MLP (uniform ±1/√fan_in per layer)
            start = 0
            for name, shape in module.shapes:
                size = math.prod(shape)
                fan_in = shape[1] if len(shape) == 2 else module.fan_ins[name]
                init.uniform_(module.theta0[start:start + size], -(fan_in**-0.5), fan_in**-0.5)
                start += size

    def init_weights(self):
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}


class HyperNetModel(HyperNetPreTrainedModel):
    """The hypernetwork (an MLP on the encoded γ, plus θ₀ for MIP) and the target's hidden layer."""

    def __init__(self, config: HyperNetConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        self.shapes = target_shapes(config)
        self.fan_ins = {"fc1.bias": config.num_channels * config.image_size**2, "fc2.bias": config.target_hidden_size}
        self.num_target_parameters = sum(math.prod(shape) for _, shape in self.shapes)
        widths = [2 if config.parametrization == "mip" else 1, *config.hyper_hidden_sizes]
        self.layers = nn.ModuleList(nn.Linear(widths[i], widths[i + 1]) for i in range(len(widths) - 1))
        layernorm = getattr(config, "hyper_norm", "none") == "layernorm"
        self.norms = nn.ModuleList(nn.LayerNorm(width) for width in widths[1:]) if layernorm else None
        self.output = nn.Linear(widths[-1], self.num_target_parameters)
        self.output.target_shapes = self.shapes  # its rows are initialised per target tensor (hyper_init fan_out)
        self.theta0 = nn.Parameter(torch.empty(self.num_target_parameters)) if config.parametrization == "mip" else None
        self.post_init()

    def delta(self, gamma) -> torch.Tensor:
        """The hypernetwork's own output for γ (θ itself for standard, Δθ for MIP): (num_target_parameters,)."""
        act = ACTIVATION_FUNCTIONS[self.config.activation]
        h = encode_gamma(_gamma(gamma, self.config, self.output.weight), self.config.parametrization)
        for index, layer in enumerate(self.layers):
            h = layer(h)
            h = act(h if self.norms is None else self.norms[index](h))
        return self.output(h)[0]

    def theta(self, gamma=None) -> torch.Tensor:
        """θ(γ): the target MLP's parameter vector (γ = config.default_gamma when None)."""
        delta = self.delta(gamma)
        return delta if self.theta0 is None else self.theta0 + delta

    def split(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """θ as the target MLP's named weights."""
        out, start = {}, 0
        for name, shape in self.shapes:
            size = math.prod(shape)
            out[name] = theta[start:start + size].view(shape)
            start += size
        return out

    def target_parameters(self, gamma=None) -> dict[str, torch.Tensor]:
        return self.split(self.theta(gamma))

    def hidden(self, pixel_values: torch.Tensor, weights: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = pixel_values.flatten(1)
        return x, ACTIVATION_FUNCTIONS[self.config.activation](F.linear(x, weights["fc1.weight"], weights["fc1.bias"]))

    def forward(self, pixel_values, gamma=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        x, hidden = self.hidden(pixel_values, self.target_parameters(gamma))
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=(x, hidden) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


def _gamma(gamma, config, like: torch.Tensor) -> torch.Tensor:
    if gamma is None:
        gamma = config.default_gamma
    gamma = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
    if gamma.numel() != 1:
        raise ValueError(f"gamma must be one value for the batch, got shape {tuple(gamma.shape)}")
    return gamma.reshape(())


class HyperNetForImageClassification(HyperNetPreTrainedModel):
    """The hypernetwork + the target MLP it parametrises; `gamma` conditions the weights."""

    def __init__(self, config: HyperNetConfig):
        super().__init__(config)
        self.hypernet = HyperNetModel(config, init_by_head=True)
        self.post_init()
        self.hypernet._init_by_head = False

    def forward(self, pixel_values, labels=None, gamma=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        weights = self.hypernet.target_parameters(gamma)  # θ(γ) once, for both target layers
        x, hidden = self.hypernet.hidden(pixel_values, weights)
        logits = F.linear(hidden, weights["fc2.weight"], weights["fc2.bias"])
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits,
                                                   hidden_states=(x, hidden) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
