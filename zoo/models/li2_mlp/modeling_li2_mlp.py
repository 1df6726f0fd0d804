"""The Li₂ grokking network (Tian 2025): one-hot operands → Linear(num_operands·M → K, no bias)
→ σ (x² by default) → Linear(K → M, no bias).

`Li2MLPModel` is the hidden layer σ(W x) (what AutoModel returns); `Li2MLPForClassification`
adds the output layer V and the cross-entropy loss (AutoModelForSequenceClassification, the
transformers Auto class of vector → logits heads). State-dict keys: ``li2.first_layer.weight``
(W) and ``output_layer.weight`` (V).
"""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .configuration_li2_mlp import Li2MLPConfig
from .zoo_common import classification_loss, init, return_tuple


@dataclass
class Li2MLPOutput(ModelOutput):
    """`hidden_states` = (input, hidden activations σ(W x)) when requested."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class Square(nn.Module):
    """σ(x) = x², the activation the Li₂ theory is worked out for."""

    def forward(self, x):
        return x * x


def make_activation(name: str) -> nn.Module:
    return {
        "quadratic": Square,
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "sigmoid": nn.Sigmoid,
        "identity": nn.Identity,
    }[name]()


class Li2MLPPreTrainedModel(PreTrainedModel):
    config_class = Li2MLPConfig
    base_model_prefix = "li2"
    main_input_name = "input_features"

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            if self.config.initializer == "uniform":  # nn.Linear's default, as the reference code uses
                bound = 1 / module.in_features**0.5
                init.uniform_(module.weight, -bound, bound)
            else:
                init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)

    @property
    def dummy_inputs(self):
        """Four examples of one-hot operands (a, b, ...) drawn from the group."""
        config = self.config
        elements = torch.arange(4 * config.num_operands).reshape(4, config.num_operands) % config.group_order
        return {"input_features": one_hot_operands(elements, config.group_order)}


def one_hot_operands(elements: torch.Tensor, group_order: int) -> torch.Tensor:
    """(batch, num_operands) element indices → (batch, num_operands·group_order) concatenated one-hots."""
    return nn.functional.one_hot(elements.long(), group_order).flatten(1).float()


class Li2MLPModel(Li2MLPPreTrainedModel):
    """The hidden layer: input_features (concatenated one-hots) → σ(W x) (`last_hidden_state`)."""

    def __init__(self, config: Li2MLPConfig):
        super().__init__(config)
        self.first_layer = nn.Linear(config.input_dim, config.hidden_dim, bias=False)
        self.act = make_activation(config.activation)
        self.post_init()

    def operand_weights(self) -> torch.Tensor:
        """W as (hidden_dim, num_operands, group_order): unit k's weights on each operand's one-hot."""
        config = self.config
        return self.first_layer.weight.reshape(config.hidden_dim, config.num_operands, config.group_order)

    def forward(self, input_features, output_hidden_states=None, return_dict=None, **kwargs):
        if input_features.shape[-1] != self.config.input_dim:
            raise ValueError(f"input_features must have {self.config.input_dim} columns "
                             f"(num_operands · group_order one-hots), got {input_features.shape[-1]}")
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        hidden = self.act(self.first_layer(input_features))
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=(input_features, hidden) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class Li2MLPForClassification(Li2MLPPreTrainedModel):
    """`Li2MLPModel` + the output layer V (no bias): logits over the group's elements."""

    def __init__(self, config: Li2MLPConfig):
        super().__init__(config)
        self.li2 = Li2MLPModel(config)
        self.output_layer = nn.Linear(config.hidden_dim, config.num_labels, bias=False)
        self.post_init()

    def forward(self, input_features, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.li2(input_features, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.output_layer(base.last_hidden_state)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = Li2MLPOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
