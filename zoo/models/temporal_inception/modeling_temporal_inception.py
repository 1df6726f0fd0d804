"""Temporal-Inception: `TemporalInceptionModel` (AutoModel) and
`TemporalInceptionForSequenceClassification` (AutoModelForSequenceClassification)."""
import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from .configuration_temporal_inception import TemporalInceptionConfig
from .zoo_common import classification_loss, init, return_tuple


class InceptionBlock(nn.Module):
    """Parallel Conv1d(k) branches and a max-pool(3) → Conv1d(1) branch, ReLU, concatenated."""

    def __init__(self, in_channels: int, channels: int, kernel_sizes):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(in_channels, channels, k, padding=k // 2) for k in kernel_sizes)
        self.pool_proj = nn.Conv1d(in_channels, channels, 1)

    def forward(self, x, keep):
        """x (batch, channels, steps), keep (batch, 1, steps) bool → (batch, branches·channels, steps)."""
        x = x.masked_fill(~keep, 0.0)
        pooled = F.max_pool1d(x.masked_fill(~keep, float("-inf")), 3, stride=1, padding=1).masked_fill(~keep, 0.0)
        branches = [conv(x) for conv in self.convs] + [self.pool_proj(pooled)]
        return torch.relu(torch.cat(branches, 1)).masked_fill(~keep, 0.0)


class TemporalInceptionPreTrainedModel(PreTrainedModel):
    config_class = TemporalInceptionConfig
    base_model_prefix = "inception"
    main_input_name = "input_features"
    _no_split_modules = ["InceptionBlock"]

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Conv1d)):  # PyTorch's defaults
            init.kaiming_uniform_(module.weight, a=5**0.5)
            fan_in = module.weight[0].numel()
            init.uniform_(module.bias, -(fan_in**-0.5), fan_in**-0.5)

    @property
    def dummy_inputs(self):
        mask = torch.ones(3, 6, dtype=torch.long)
        mask[1, 4:] = 0
        return {"input_features": torch.randn(3, 6, self.config.input_size), "attention_mask": mask}


class TemporalInceptionModel(TemporalInceptionPreTrainedModel):
    """input_features (batch, steps, features) → each block's (batch, steps, channels) output;
    `pooler_output` the last one's mean over the real steps."""

    def __init__(self, config: TemporalInceptionConfig):
        super().__init__(config)
        width = config.channels * (len(config.kernel_sizes) + 1)
        self.blocks = nn.ModuleList(
            InceptionBlock(config.input_size if i == 0 else width, config.channels, config.kernel_sizes)
            for i in range(config.num_blocks)
        )
        self.post_init()

    def forward(self, input_features, attention_mask=None, output_hidden_states=None, return_dict=None, **kwargs):
        c = self.config
        output_hidden_states = output_hidden_states if output_hidden_states is not None else c.output_hidden_states
        if input_features.dim() != 3 or input_features.shape[-1] != c.input_size:
            raise ValueError(f"input_features must be (batch, steps, {c.input_size}), got shape {tuple(input_features.shape)}")
        if input_features.shape[1] > c.max_steps:
            raise ValueError(f"a sequence of {input_features.shape[1]} steps is longer than the config's max_steps={c.max_steps}")
        if attention_mask is None:
            attention_mask = torch.ones(input_features.shape[:2], dtype=torch.long, device=input_features.device)
        keep = attention_mask.bool()[:, None, :]
        x, outputs = input_features.transpose(1, 2), []
        for block in self.blocks:
            x = block(x, keep)
            outputs.append(x.transpose(1, 2))
        weights = keep.to(x.dtype)
        pooled = (x * weights).sum(2) / weights.sum(2).clamp(min=1)
        out = BaseModelOutputWithPooling(last_hidden_state=outputs[-1], pooler_output=pooled,
                                         hidden_states=(input_features, *outputs) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(c, return_dict) else out


class TemporalInceptionForSequenceClassification(TemporalInceptionPreTrainedModel):
    """`TemporalInceptionModel` → dropout → Linear."""

    def __init__(self, config: TemporalInceptionConfig):
        super().__init__(config)
        self.inception = TemporalInceptionModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.channels * (len(config.kernel_sizes) + 1), config.num_labels)
        self.post_init()

    def forward(self, input_features, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.inception(input_features, attention_mask, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(base.pooler_output))
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
