"""The diagonal linear network: β = u⊙u − v⊙v, f(x) = β x (one row of u, v per output).

A linear predictor in a non-convex, two-layer diagonal parameterisation: its gradient-descent
implicit bias moves from minimum ℓ₂ to minimum ℓ₁ as the initialisation α shrinks, and its
Hessian sharpness at an interpolating minimum is a weighted ℓ₁ norm of β (Wu & Su 2023).

As a two-layer linear network: first layer diag(u) and diag(v) (the backbone
`DiagonalLinearModel`, what AutoModel returns: hidden units (u⊙x, v⊙x) per output), second
layer (u, −v) (the head `DiagonalLinearForRegression`, which shares u and v with its backbone).
"""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .configuration_diagonal_linear import DiagonalLinearConfig
from .zoo_common import classification_loss, init, return_tuple


@dataclass
class DiagonalLinearOutput(ModelOutput):
    """`hidden_states` = (input, hidden units (u⊙x, v⊙x) flattened) when requested."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class DiagonalLinearPreTrainedModel(PreTrainedModel):
    config_class = DiagonalLinearConfig
    base_model_prefix = "diagonal"
    main_input_name = "input_features"

    def _init_weights(self, module):
        if isinstance(module, DiagonalLinearModel):
            init.constant_(module.u, self.config.init_scale)
            init.constant_(module.v, self.config.init_scale)

    @property
    def dummy_inputs(self):
        return {"input_features": torch.randn(4, self.config.input_dim)}


class DiagonalLinearModel(DiagonalLinearPreTrainedModel):
    """input_features (N, d) → hidden units (u⊙x, v⊙x) of every output, flattened to (N, 2·L·d)."""

    def __init__(self, config: DiagonalLinearConfig):
        super().__init__(config)
        self.u = nn.Parameter(torch.empty(config.num_labels, config.input_dim))
        self.v = nn.Parameter(torch.empty(config.num_labels, config.input_dim))
        self.post_init()

    def units(self, input_features):
        x = input_features.unsqueeze(1)
        return x * self.u, x * self.v  # (N, L, d) each

    def forward(self, input_features, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        a, b = self.units(input_features)
        hidden = torch.cat([a, b], dim=-1).flatten(1)
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=(input_features, hidden) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class DiagonalLinearForRegression(DiagonalLinearPreTrainedModel):
    """input_features (N, d) → logits (N, L) = x βᵀ with β = u⊙u − v⊙v (L = num_labels)."""

    def __init__(self, config: DiagonalLinearConfig):
        super().__init__(config)
        self.diagonal = DiagonalLinearModel(config)
        self.post_init()

    @property
    def beta(self) -> torch.Tensor:
        """The linear predictor β = u⊙u − v⊙v, shape (num_labels, input_dim)."""
        u, v = self.diagonal.u, self.diagonal.v
        return u * u - v * v

    def forward(self, input_features, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.diagonal(input_features, output_hidden_states=output_hidden_states, return_dict=True)
        logits = input_features @ self.beta.t()  # = Σ_j u_j (u_j x_j) − v_j (v_j x_j), the second layer on the units
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = DiagonalLinearOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
