"""The two-layer network f(x) = W₂ σ(W₁ x + b₁) + b₂: a backbone `TwoLayerMLPModel` (the hidden
layer σ(W₁ x + b₁), what AutoModel returns) and `TwoLayerMLPForClassification` (+ W₂, trained or fixed).

State-dict keys are those of round 1 (``hidden.weight``, ``output.weight``, ``output_weight``):
the backbone sits in the head's ``hidden`` attribute (the `base_model_prefix`) and holds W₁, b₁
itself, so round-1 checkpoints load unchanged.
"""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .configuration_two_layer_mlp import TwoLayerMLPConfig
from .zoo_common import classification_loss, copy_, init, return_tuple


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


class TwoLayerMLPPreTrainedModel(PreTrainedModel):
    config_class = TwoLayerMLPConfig
    base_model_prefix = "hidden"
    main_input_name = "input_features"
    # One hidden layer: nothing to split across devices, so no _no_split_modules.

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, TwoLayerMLPModel)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, TwoLayerMLPForClassification) and module.output is None:
            m = self.config.hidden_dim
            if getattr(self.config, "fixed_second_layer_init", "random_signs") == "balanced":
                a = torch.tensor([1.0, -1.0]).repeat(m // 2 + 1)[:m] / m**0.5  # a_j = ±1/√m, alternating
                copy_(module.output_weight, torch.stack([-a / 2, a / 2]))
            else:
                signs = torch.randint(0, 2, module.output_weight.shape, dtype=torch.float32) * 2 - 1
                copy_(module.output_weight, signs / m**0.5)

    def init_weights(self):
        # A backbone built by its head leaves its weights to the head's one init pass, so that a
        # seed draws the same weights, in the same order, as round 1's single-module classes.
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        return {"input_features": torch.randn(4, self.config.input_dim)}


class TwoLayerMLPModel(TwoLayerMLPPreTrainedModel):
    """The hidden layer: input_features → σ(W₁ x + b₁) (`last_hidden_state`)."""

    def __init__(self, config: TwoLayerMLPConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        # Made by nn.Linear so that construction draws random numbers as round 1's nn.Linear did.
        linear = nn.Linear(config.input_dim, config.hidden_dim, bias=config.first_layer_bias)
        self.weight = linear.weight
        self.bias = linear.bias
        self.act = make_activation(config.activation)
        self.post_init()

    def forward(self, input_features, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        hidden = self.act(nn.functional.linear(input_features, self.weight, self.bias))
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=(input_features, hidden) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class TwoLayerMLPForClassification(TwoLayerMLPPreTrainedModel):
    """The whole network: `TwoLayerMLPModel` + the output layer W₂ (a classifier, or a scalar
    regressor with problem_type="regression"). Loaded by AutoModelForSequenceClassification (the
    transformers Auto class of vector → logits heads; no pipeline fits vector inputs)."""

    def __init__(self, config: TwoLayerMLPConfig):
        super().__init__(config)
        self.hidden = TwoLayerMLPModel(config, init_by_head=True)
        if config.fixed_second_layer:
            # A buffer, not a parameter: the optimizer never sees it, but it is saved with the weights.
            self.register_buffer("output_weight", torch.empty(config.num_labels, config.hidden_dim))
            self.output = None
        else:
            self.output = nn.Linear(config.hidden_dim, config.num_labels, bias=config.second_layer_bias)
        self.post_init()
        self.hidden._init_by_head = False

    def forward(self, input_features, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.hidden(input_features, output_hidden_states=output_hidden_states, return_dict=True)
        hidden = base.last_hidden_state
        logits = hidden @ self.output_weight.t() if self.output is None else self.output(hidden)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = TwoLayerMLPOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
