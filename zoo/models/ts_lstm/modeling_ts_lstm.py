"""TS-LSTM: `TSLSTMModel` (AutoModel) and `TSLSTMForSequenceClassification`.

The windows run as one batch: the sequence is repeated once per window with a mask that keeps
only that window's steps, so the shared LSTM starts each window from the zero state (masked
steps carry the state unchanged, recurrent_cells.py) and ends it at the window's last step.
"""
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from .configuration_ts_lstm import TSLSTMConfig
from .recurrent_cells import RecurrentLayer, check_sequence_input, dummy_sequence_inputs, init_weights
from .zoo_common import classification_loss, init, return_tuple


def segment_masks(lengths: torch.Tensor, steps: int, segments: int) -> torch.Tensor:
    """(segments, batch, steps) 0/1: window s of a sequence of length L holds the steps
    floor(s·L/S) <= t < floor((s+1)·L/S) (a window is empty when L < S)."""
    t = torch.arange(steps, device=lengths.device)
    s = torch.arange(segments, device=lengths.device)[:, None, None]
    start = torch.div(s * lengths[None, :, None], segments, rounding_mode="floor")
    end = torch.div((s + 1) * lengths[None, :, None], segments, rounding_mode="floor")
    return ((t >= start) & (t < end)).long()


class TSLSTMPreTrainedModel(PreTrainedModel):
    config_class = TSLSTMConfig
    base_model_prefix = "ts_lstm"
    main_input_name = "input_features"
    _no_split_modules = ["RecurrentLayer"]

    def _init_weights(self, module):
        init_weights(module, init)  # PyTorch's defaults

    @property
    def dummy_inputs(self):
        return dummy_sequence_inputs(self.config.input_size)


class TSLSTMModel(TSLSTMPreTrainedModel):
    """input_features → each window's final state; `last_hidden_state` (batch, segments, hidden),
    `pooler_output` their fusion. hidden_states = (input, the window states)."""

    def __init__(self, config: TSLSTMConfig):
        super().__init__(config)
        self.layer = RecurrentLayer(config.cell, config.input_size, config.hidden_size)
        self.post_init()

    def forward(self, input_features, attention_mask=None, output_hidden_states=None, return_dict=None, **kwargs):
        c = self.config
        output_hidden_states = output_hidden_states if output_hidden_states is not None else c.output_hidden_states
        check_sequence_input(input_features, attention_mask, c.input_size, c.max_steps)
        batch, steps, _ = input_features.shape
        lengths = attention_mask.long().sum(1) if attention_mask is not None else input_features.new_full((batch,), steps).long()
        windows = segment_masks(lengths, steps, c.num_segments)  # (S, B, T)
        repeated = input_features.unsqueeze(0).expand(c.num_segments, -1, -1, -1).reshape(-1, steps, c.input_size)
        _, finals = self.layer(repeated, windows.reshape(-1, steps))
        states = finals.view(c.num_segments, batch, -1).transpose(0, 1)  # (B, S, H)
        if c.fusion == "mean":  # over the windows that hold a step
            present = (windows.sum(2) > 0).T.to(states.dtype)[..., None]  # (B, S, 1)
            pooled = (states * present).sum(1) / present.sum(1).clamp(min=1)
        else:
            pooled = states.flatten(1)
        out = BaseModelOutputWithPooling(last_hidden_state=states, pooler_output=pooled,
                                         hidden_states=(input_features, states) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(c, return_dict) else out


class TSLSTMForSequenceClassification(TSLSTMPreTrainedModel):
    """`TSLSTMModel` → dropout → Linear."""

    def __init__(self, config: TSLSTMConfig):
        super().__init__(config)
        self.ts_lstm = TSLSTMModel(config)
        self.dropout = nn.Dropout(config.dropout)
        width = config.hidden_size * (config.num_segments if config.fusion == "concat" else 1)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(self, input_features, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.ts_lstm(input_features, attention_mask, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(base.pooler_output))
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
