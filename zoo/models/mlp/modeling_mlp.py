"""The deep MLP image classifier."""
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.loss.loss_utils import ForSequenceClassificationLoss
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from .configuration_mlp import MLPConfig


class MLPBlock(nn.Module):
    """Linear → activation → dropout. The activation module's output is the layer's units."""

    def __init__(self, in_features: int, out_features: int, activation: str, dropout: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}[activation]()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.act(self.linear(x)))


class MLPForImageClassification(PreTrainedModel):
    config_class = MLPConfig
    base_model_prefix = "mlp"
    main_input_name = "pixel_values"

    def __init__(self, config: MLPConfig):
        super().__init__(config)
        widths = [config.num_channels * config.image_size**2, *config.hidden_sizes]
        self.layers = nn.ModuleList(
            MLPBlock(widths[i], widths[i + 1], config.activation, config.dropout) for i in range(len(config.hidden_sizes))
        )
        self.classifier = nn.Linear(widths[-1], config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        # PyTorch's default (Kaiming-uniform) init: the usual choice for ReLU MLPs, unlike HF's N(0, 0.02).
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            bound = 1 / module.in_features**0.5
            init.uniform_(module.bias, -bound, bound)

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        hidden = pixel_values.flatten(1)
        hidden_states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden)
            hidden_states.append(hidden)
        logits = self.classifier(hidden)
        loss = ForSequenceClassificationLoss(labels, logits, self.config) if labels is not None else None
        return ImageClassifierOutputWithNoAttention(
            loss=loss, logits=logits, hidden_states=tuple(hidden_states) if output_hidden_states else None
        )
