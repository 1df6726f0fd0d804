"""The residual MLP family: a backbone `HourglassMLPModel` (AutoModel: lift + residual blocks) and
`HourglassMLPForImageRegression` (+ the output map; a classifier or a regressor per problem_type).

With lift "fixed" the lift P is the persistent buffer ``backbone.lift_weight``: drawn once at
initialisation, saved in model.safetensors with the weights and reloaded bit-exactly, never seen
by the optimiser. With lift "learned" it is the parameter ``backbone.lift.weight``.
"""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .configuration_hourglass_mlp import HourglassMLPConfig
from .zoo_common import classification_loss, copy_, init, return_tuple


@dataclass
class HourglassMLPOutput(ModelOutput):
    """`logits`: the num_labels outputs (class scores, or the regression target, e.g. the denoised
    image flattened); `hidden_states` = (flattened input, lifted stream, the stream after each block)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class ResidualBlock(nn.Module):
    """z + W_up σ(W_down z): stream_size → hidden_size → stream_size. `act` outputs the block's units."""

    def __init__(self, stream_size: int, hidden_size: int, activation: str):
        super().__init__()
        self.down = nn.Linear(stream_size, hidden_size)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.up = nn.Linear(hidden_size, stream_size)

    def forward(self, z):
        return z + self.up(self.act(self.down(z)))


class HourglassMLPPreTrainedModel(PreTrainedModel):
    config_class = HourglassMLPConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    _no_split_modules = ["ResidualBlock"]

    def _init_weights(self, module):
        # PyTorch's default init for the linear maps; the fixed lift ~ N(0, 1/fan_in).
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            if module.bias is not None:
                bound = 1 / module.in_features**0.5
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, HourglassMLPModel) and module.lift is None:
            fan_in = module.lift_weight.shape[1]
            copy_(module.lift_weight, torch.randn(module.lift_weight.shape) / fan_in**0.5)

    def init_weights(self):
        # A backbone built by its head leaves its weights to the head's one init pass.
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}


class HourglassMLPModel(HourglassMLPPreTrainedModel):
    """Lift and residual blocks: pixels → the residual stream after the last block."""

    def __init__(self, config: HourglassMLPConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        inputs = config.num_channels * config.image_size**2
        if config.lift == "fixed":
            # A buffer, not a parameter: the optimizer never sees it, but it is saved with the weights.
            self.register_buffer("lift_weight", torch.zeros(config.stream_size, inputs), persistent=True)
            self.lift = None
        else:
            self.lift = nn.Linear(inputs, config.stream_size, bias=False)
        self.blocks = nn.ModuleList(ResidualBlock(config.stream_size, config.hidden_size, config.activation)
                                    for _ in range(config.depth))
        self.post_init()

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        x = pixel_values.flatten(1)
        z = x @ self.lift_weight.t() if self.lift is None else self.lift(x)
        hidden_states = [x, z]
        for block in self.blocks:
            z = block(z)
            hidden_states.append(z)
        out = BaseModelOutput(last_hidden_state=z, hidden_states=tuple(hidden_states) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class HourglassMLPForImageRegression(HourglassMLPPreTrainedModel):
    """`HourglassMLPModel` + the output map W_out z + b_out (num_labels outputs).

    problem_type "regression" with float labels of shape (batch, num_labels) — e.g. the clean
    image for a denoising task — gives the mean squared error; integer labels give cross-entropy.
    """

    def __init__(self, config: HourglassMLPConfig):
        super().__init__(config)
        self.backbone = HourglassMLPModel(config, init_by_head=True)
        self.head = nn.Linear(config.stream_size, config.num_labels)
        self.post_init()
        self.backbone._init_by_head = False

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.backbone(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.head(base.last_hidden_state)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = HourglassMLPOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
