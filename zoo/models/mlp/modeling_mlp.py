"""The deep MLP image classifier: a backbone `MLPModel` (AutoModel) and `MLPForImageClassification`.

Module paths and state-dict keys are those of round 1 (``layers.0.act``, ``classifier.weight``):
analysis tools, docs and published checkpoints name them. So the backbone sits in the head's
``layers`` attribute (the `base_model_prefix`) and holds its blocks as children ``0``, ``1``, ...
"""
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutputWithNoAttention

from .configuration_mlp import MLPConfig
from .quadratic_neurons import QuadraticLinear, init_quadratic_terms, linear_layer
from .zoo_common import classification_loss, init, return_tuple


class MLPBlock(nn.Module):
    """Linear → activation → dropout. The activation module's output is the layer's units.

    With neuron="quadratic" `linear` is a QuadraticLinear (its W_r, b_r keep the names weight, bias).
    """

    def __init__(self, in_features: int, out_features: int, activation: str, dropout: float, neuron: str = "linear"):
        super().__init__()
        self.linear = linear_layer(neuron, in_features, out_features)
        self.act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}[activation]()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.act(self.linear(x)))


class MLPPreTrainedModel(PreTrainedModel):
    config_class = MLPConfig
    base_model_prefix = "layers"
    main_input_name = "pixel_values"
    _no_split_modules = ["MLPBlock"]

    def _init_weights(self, module):
        # PyTorch's default (Kaiming-uniform) init: the usual choice for ReLU MLPs, unlike HF's N(0, 0.02).
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            bound = 1 / module.in_features**0.5
            init.uniform_(module.bias, -bound, bound)
        if isinstance(module, QuadraticLinear):
            init_quadratic_terms(module, self.config.quadratic_init)

    def init_weights(self):
        # A backbone built by its head leaves its weights to the head's one init pass, so that a
        # seed draws the same weights, in the same order, as round 1's single-module classes.
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}


class MLPModel(MLPPreTrainedModel):
    """The hidden layers: flattened pixels → the last hidden layer's units (no classifier).

    Indexable like the round-1 ``nn.ModuleList``: ``model[i]`` is block i.
    """

    def __init__(self, config: MLPConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        widths = [config.num_channels * config.image_size**2, *config.hidden_sizes]
        for i in range(len(config.hidden_sizes)):
            self.add_module(str(i), MLPBlock(widths[i], widths[i + 1], config.activation, config.dropout, config.neuron))
        self.post_init()

    def __len__(self):
        return len(self.config.hidden_sizes)

    def __getitem__(self, index):
        return self._modules[str(range(len(self))[index])]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        hidden = pixel_values.flatten(1)
        hidden_states = [hidden]
        for block in self:
            hidden = block(hidden)
            hidden_states.append(hidden)
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=tuple(hidden_states) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class MLPForImageClassification(MLPPreTrainedModel):
    """`MLPModel` + a linear classifier; hidden_states = (flattened input, each hidden layer)."""

    def __init__(self, config: MLPConfig):
        super().__init__(config)
        self.layers = MLPModel(config, init_by_head=True)
        self.classifier = nn.Linear(config.hidden_sizes[-1], config.num_labels)
        self.post_init()
        self.layers._init_by_head = False

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.layers(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(base.last_hidden_state)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
