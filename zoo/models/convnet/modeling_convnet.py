"""The small CNN image classifier."""
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.loss.loss_utils import ForSequenceClassificationLoss
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from .configuration_convnet import ConvNetConfig


class ConvBlock(nn.Module):
    """Conv → (BatchNorm) → ReLU → MaxPool. `act` outputs the block's units (one per channel)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.act(self.norm(self.conv(x))))


class ConvNetForImageClassification(PreTrainedModel):
    config_class = ConvNetConfig
    base_model_prefix = "convnet"
    main_input_name = "pixel_values"

    def __init__(self, config: ConvNetConfig):
        super().__init__(config)
        in_channels = [config.num_channels, *config.channels[:-1]]
        self.blocks = nn.ModuleList(
            ConvBlock(i, o, config.kernel_size, config.batch_norm) for i, o in zip(in_channels, config.channels)
        )
        side = config.image_size // 2 ** len(config.channels)
        self.fc = nn.Linear(config.channels[-1] * side * side, config.hidden_size)
        self.fc_act = nn.ReLU()
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        # PyTorch's default init for conv and linear layers; BatchNorm starts as the identity.
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            fan_in = module.weight[0].numel()
            init.uniform_(module.bias, -(fan_in**-0.5), fan_in**-0.5)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        hidden = pixel_values
        hidden_states = [hidden]
        for block in self.blocks:
            hidden = block(hidden)
            hidden_states.append(hidden)
        hidden = self.fc_act(self.fc(hidden.flatten(1)))
        hidden_states.append(hidden)
        logits = self.classifier(self.dropout(hidden))
        loss = ForSequenceClassificationLoss(labels, logits, self.config) if labels is not None else None
        return ImageClassifierOutputWithNoAttention(
            loss=loss, logits=logits, hidden_states=tuple(hidden_states) if output_hidden_states else None
        )
