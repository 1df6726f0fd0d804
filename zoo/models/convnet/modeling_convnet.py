"""The small CNN: a backbone `ConvNetModel` (AutoModel) and `ConvNetForImageClassification`.

Module paths and state-dict keys are those of round 1 (``blocks.0.act``, ``fc_act``,
``classifier.weight``): analysis tools, docs and published checkpoints name them. So the
backbone (the convolutional blocks) sits in the head's ``blocks`` attribute (the
`base_model_prefix`) and holds its blocks as children ``0``, ``1``, ...
"""
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_convnet import ConvNetConfig
from .quadratic_neurons import QuadraticConv2d, QuadraticLinear, conv_layer, init_quadratic_terms, linear_layer
from .zoo_common import classification_loss, init, return_tuple


class ConvBlock(nn.Module):
    """Conv → (BatchNorm) → ReLU → MaxPool. `act` outputs the block's units (one per channel)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool, neuron: str = "linear"):
        super().__init__()
        self.conv = conv_layer(neuron, in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.act(self.norm(self.conv(x))))


class ConvNetPreTrainedModel(PreTrainedModel):
    config_class = ConvNetConfig
    base_model_prefix = "blocks"
    main_input_name = "pixel_values"
    _no_split_modules = ["ConvBlock"]

    def _init_weights(self, module):
        # PyTorch's default init for conv and linear layers; BatchNorm starts as the identity.
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            fan_in = module.weight[0].numel()
            init.uniform_(module.bias, -(fan_in**-0.5), fan_in**-0.5)
            if isinstance(module, (QuadraticLinear, QuadraticConv2d)):
                init_quadratic_terms(module, self.config.quadratic_init)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def init_weights(self):
        # A backbone built by its head leaves its weights to the head's one init pass, so that a
        # seed draws the same weights, in the same order, as round 1's single-module classes.
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}


class ConvNetModel(ConvNetPreTrainedModel):
    """The convolutional blocks: pixels → the last block's feature map (no classifier).

    `last_hidden_state` is the (batch, channels, side, side) map, `pooler_output` its flattening
    (what the head reads). Indexable like the round-1 ``nn.ModuleList``: ``model[i]`` is block i.
    """

    def __init__(self, config: ConvNetConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        in_channels = [config.num_channels, *config.channels[:-1]]
        for i, (c_in, c_out) in enumerate(zip(in_channels, config.channels)):
            self.add_module(str(i), ConvBlock(c_in, c_out, config.kernel_size, config.batch_norm, config.neuron))
        self.post_init()

    def __len__(self):
        return len(self.config.channels)

    def __getitem__(self, index):
        return self._modules[str(range(len(self))[index])]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        hidden = pixel_values
        hidden_states = [hidden]
        for block in self:
            hidden = block(hidden)
            hidden_states.append(hidden)
        out = BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden, pooler_output=hidden.flatten(1),
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
        )
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class ConvNetForImageClassification(ConvNetPreTrainedModel):
    """`ConvNetModel` + flatten → Linear → ReLU → dropout → Linear.

    hidden_states = (pixels, each block's output, the fully connected layer's units).
    """

    def __init__(self, config: ConvNetConfig):
        super().__init__(config)
        self.blocks = ConvNetModel(config, init_by_head=True)
        side = config.image_size // 2 ** len(config.channels)
        self.fc = linear_layer(config.neuron, config.channels[-1] * side * side, config.hidden_size)
        self.fc_act = nn.ReLU()
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()
        self.blocks._init_by_head = False

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        base = self.blocks(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        hidden = self.fc_act(self.fc(base.pooler_output))
        logits = self.classifier(self.dropout(hidden))
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(
            loss=loss, logits=logits, hidden_states=(*base.hidden_states, hidden) if output_hidden_states else None
        )
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
