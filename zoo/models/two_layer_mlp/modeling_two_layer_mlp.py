"""The two-layer network f(x) = W₂ σ(W₁ x + b₁) + b₂, with an optional fixed second layer."""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.loss.loss_utils import ForSequenceClassificationLoss
from transformers.utils import ModelOutput

from .configuration_two_layer_mlp import TwoLayerMLPConfig


@dataclass
class TwoLayerMLPOutput(ModelOutput):
    """`hidden_states` = (input, hidden activations σ(W₁x+b₁)) when requested."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class Quadratic(nn.Module):
    """σ(x) = x², the activation of the grokking theory (Tian 2025)."""

    def forward(self, x):
        return x * x


def make_activation(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "quadratic": Quadratic,
        "gelu": nn.GELU,
        "sigmoid": nn.Sigmoid,
        "leaky_relu": nn.LeakyReLU,
        "identity": nn.Identity,
    }[name]()


class TwoLayerMLPModel(PreTrainedModel):
    config_class = TwoLayerMLPConfig
    base_model_prefix = "two_layer_mlp"
    main_input_name = "input_features"

    def __init__(self, config: TwoLayerMLPConfig):
        super().__init__(config)
        self.hidden = nn.Linear(config.input_dim, config.hidden_dim, bias=config.first_layer_bias)
        self.act = make_activation(config.activation)
        if config.fixed_second_layer:
            # A buffer, not a parameter: the optimizer never sees it, but it is saved with the weights.
            self.register_buffer("output_weight", torch.empty(config.num_labels, config.hidden_dim))
            self.output = None
        else:
            self.output = nn.Linear(config.hidden_dim, config.num_labels, bias=config.second_layer_bias)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif module is self and self.config.fixed_second_layer:
            signs = torch.randint(0, 2, self.output_weight.shape, dtype=torch.float32) * 2 - 1
            init.copy_(self.output_weight, signs / self.config.hidden_dim**0.5)

    @property
    def dummy_inputs(self):
        return {"input_features": torch.randn(4, self.config.input_dim)}

    def forward(self, input_features, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        hidden = self.act(self.hidden(input_features))
        if self.output is None:
            logits = hidden @ self.output_weight.t()
        else:
            logits = self.output(hidden)
        loss = None
        if labels is not None:
            loss = ForSequenceClassificationLoss(labels, logits, self.config)
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        return TwoLayerMLPOutput(
            loss=loss,
            logits=logits,
            hidden_states=(input_features, hidden) if output_hidden_states else None,
        )
