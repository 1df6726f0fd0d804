"""The recurrent sequence classifier: a backbone `RNNClassifierModel` (AutoModel) and
`RNNClassifierForSequenceClassification` (AutoModelForSequenceClassification).

Inputs: ``input_features`` (batch, steps, input_size) and optionally ``attention_mask``
(batch, steps), 1 on real steps and 0 on padding: a padded batch gives the outputs of the
unpadded sequences (recurrent_cells.py).
"""
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from .configuration_rnn_classifier import RNNClassifierConfig
from .recurrent_cells import StackedRNN, check_sequence_input, dummy_sequence_inputs, init_weights, masked_mean
from .zoo_common import classification_loss, init, return_tuple


class RNNClassifierPreTrainedModel(PreTrainedModel):
    config_class = RNNClassifierConfig
    base_model_prefix = "rnn"
    main_input_name = "input_features"
    _no_split_modules = ["RecurrentLayer"]

    def _init_weights(self, module):
        init_weights(module, init)  # PyTorch's defaults

    @property
    def dummy_inputs(self):
        return dummy_sequence_inputs(self.config.input_size)


class RNNClassifierModel(RNNClassifierPreTrainedModel):
    """The recurrent stack: input_features → every layer's outputs; `pooler_output` is what the
    classifier reads (config.pooling). hidden_states = (input, each layer's outputs)."""

    def __init__(self, config: RNNClassifierConfig):
        super().__init__(config)
        self.stack = StackedRNN(config.cell, config.input_size, config.hidden_size, config.num_layers,
                                config.bidirectional, config.dropout)
        self.post_init()

    def forward(self, input_features, attention_mask=None, output_hidden_states=None, return_dict=None, **kwargs):
        c = self.config
        output_hidden_states = output_hidden_states if output_hidden_states is not None else c.output_hidden_states
        check_sequence_input(input_features, attention_mask, c.input_size, c.max_steps)
        outputs, finals = self.stack(input_features, attention_mask)
        pooled = finals if c.pooling == "last" else masked_mean(outputs[-1], attention_mask)
        out = BaseModelOutputWithPooling(
            last_hidden_state=outputs[-1], pooler_output=pooled,
            hidden_states=(input_features, *outputs) if output_hidden_states else None,
        )
        return out.to_tuple() if return_tuple(c, return_dict) else out


class RNNClassifierForSequenceClassification(RNNClassifierPreTrainedModel):
    """`RNNClassifierModel` → dropout → Linear(D·hidden_size, num_labels)."""

    def __init__(self, config: RNNClassifierConfig):
        super().__init__(config)
        self.rnn = RNNClassifierModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size * (2 if config.bidirectional else 1), config.num_labels)
        self.post_init()

    def forward(self, input_features, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.rnn(input_features, attention_mask, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(base.pooler_output))
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
