"""The single-layer transformer: a backbone `OneLayerTransformerModel` (embedding + attention +
feed-forward, what AutoModel returns) and `OneLayerTransformerForSequenceMaps` (+ the per-position
linear readout; logits (batch, n)).

One block, post-norm: h ← LN(h + MHA(h)), h ← LN(h + W₂ relu(W₁ h + b₁) + b₂).
"""
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

from .configuration_one_layer_transformer import OneLayerTransformerConfig
from .zoo_common import classification_loss, init, return_tuple


class SelfAttention(nn.Module):
    """Multi-head softmax self-attention over all positions (no mask), one output projection."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) / (d // self.num_heads) ** 0.5, dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    def __init__(self, config: OneLayerTransformerConfig):
        super().__init__()
        self.norm_type = config.norm
        self.attention = SelfAttention(config.hidden_size, config.num_heads)
        self.ffn = nn.Sequential(nn.Linear(config.hidden_size, config.ffn_size), nn.ReLU(),
                                 nn.Linear(config.ffn_size, config.hidden_size))
        norm = (lambda: nn.LayerNorm(config.hidden_size)) if config.norm != "none" else nn.Identity
        self.norm1, self.norm2 = norm(), norm()

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(after attention, after feed-forward)."""
        if self.norm_type == "pre":
            a = h + self.attention(self.norm1(h))
            return a, a + self.ffn(self.norm2(a))
        a = self.norm1(h + self.attention(h))
        return a, self.norm2(a + self.ffn(a))


class OneLayerTransformerPreTrainedModel(PreTrainedModel):
    config_class = OneLayerTransformerConfig
    base_model_prefix = "transformer"
    main_input_name = "input_features"
    _no_split_modules = ["TransformerBlock"]

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):  # PyTorch's default init
            init.kaiming_uniform_(module.weight, a=5**0.5)
            bound = 1 / module.in_features**0.5
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, OneLayerTransformerModel) and module.position is not None:
            init.normal_(module.position, mean=0.0, std=self.config.initializer_range)

    def init_weights(self):
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        return {"input_features": torch.rand(4, self.config.num_labels) * 2 - 1}


class OneLayerTransformerModel(OneLayerTransformerPreTrainedModel):
    """input_features (batch, n) → `last_hidden_state` (batch, n, hidden_size).
    hidden_states = (input, embeddings, then per block: after attention, after feed-forward)."""

    def __init__(self, config: OneLayerTransformerConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        self.embed = nn.Linear(1, config.hidden_size)
        self.position = nn.Parameter(torch.zeros(config.num_labels, config.hidden_size)) if config.positional == "learned" else None
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.num_layers))
        self.post_init()

    def forward(self, input_features, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        if input_features.dim() != 2 or input_features.shape[1] != self.config.num_labels:
            raise ValueError(f"input_features must be (batch, {self.config.num_labels}) sequences "
                             f"(config.num_labels is the length), got shape {tuple(input_features.shape)}")
        h = self.embed(input_features.unsqueeze(-1).to(self.embed.weight.dtype))
        if self.position is not None:
            h = h + self.position
        states = [input_features, h]
        for block in self.blocks:
            a, h = block(h)
            states += [a, h]
        out = BaseModelOutput(last_hidden_state=h, hidden_states=tuple(states) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class OneLayerTransformerForSequenceMaps(OneLayerTransformerPreTrainedModel):
    """`OneLayerTransformerModel` + a linear readout per position: logits (batch, n)."""

    def __init__(self, config: OneLayerTransformerConfig):
        super().__init__(config)
        self.transformer = OneLayerTransformerModel(config, init_by_head=True)
        self.readout = nn.Linear(config.hidden_size, 1)
        self.post_init()
        self.transformer._init_by_head = False

    def forward(self, input_features, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.transformer(input_features, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.readout(base.last_hidden_state).squeeze(-1)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
