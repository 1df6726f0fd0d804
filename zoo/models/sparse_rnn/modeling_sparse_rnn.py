"""The sparse RNN: `SparseRNNModel` (AutoModel), one recurrent layer masked by a random graph,
and `SparseRNNForSequenceClassification` (AutoModelForSequenceClassification).

The graph is drawn from the config (graphs.py) when the model is built and kept as the
persistent buffer ``recurrent_mask`` (hidden, hidden): saved with the weights, so loading a
checkpoint restores the connectivity it was trained with, whatever the generator does later.
"""
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from .configuration_sparse_rnn import SparseRNNConfig
from .graphs import generate
from .recurrent_cells import RecurrentLayer, check_sequence_input, dummy_sequence_inputs, init_weights, masked_mean
from .zoo_common import classification_loss, init, return_tuple


def graph_mask(config: SparseRNNConfig) -> torch.Tensor:
    """The (hidden, hidden) 0/1 mask of the config's graph (symmetric; the diagonal per self_loops)."""
    n = config.hidden_size
    mask = torch.zeros(n, n)
    for i, j in generate(config.graph, n, config.graph_seed, k=config.graph_k, p=config.graph_p, m=config.graph_m):
        mask[i, j] = mask[j, i] = 1.0
    if config.self_loops:
        mask.fill_diagonal_(1.0)
    return mask


class SparseRNNPreTrainedModel(PreTrainedModel):
    config_class = SparseRNNConfig
    base_model_prefix = "rnn"
    main_input_name = "input_features"
    _no_split_modules = ["RecurrentLayer"]

    def _init_weights(self, module):
        init_weights(module, init)  # PyTorch's defaults; the graph buffer is drawn in __init__ (and loaded from checkpoints)

    @property
    def dummy_inputs(self):
        return dummy_sequence_inputs(self.config.input_size)


class SparseRNNModel(SparseRNNPreTrainedModel):
    """input_features → the recurrent layer's outputs; hidden_states = (input, outputs)."""

    def __init__(self, config: SparseRNNConfig):
        super().__init__(config)
        self.layer = RecurrentLayer(config.cell, config.input_size, config.hidden_size)
        self.register_buffer("recurrent_mask", graph_mask(config), persistent=True)
        self.post_init()

    def edges(self) -> list:
        """The graph's undirected edges (i < j) as stored in the buffer."""
        upper = torch.triu(self.recurrent_mask, diagonal=1).nonzero().tolist()
        return [tuple(e) for e in upper]

    def forward(self, input_features, attention_mask=None, output_hidden_states=None, return_dict=None, **kwargs):
        c = self.config
        output_hidden_states = output_hidden_states if output_hidden_states is not None else c.output_hidden_states
        check_sequence_input(input_features, attention_mask, c.input_size, c.max_steps)
        outputs, final = self.layer(input_features, attention_mask, recurrent_mask=self.recurrent_mask)
        pooled = final if c.pooling == "last" else masked_mean(outputs, attention_mask)
        out = BaseModelOutputWithPooling(last_hidden_state=outputs, pooler_output=pooled,
                                         hidden_states=(input_features, outputs) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(c, return_dict) else out


class SparseRNNForSequenceClassification(SparseRNNPreTrainedModel):
    """`SparseRNNModel` → Linear(hidden_size, num_labels)."""

    def __init__(self, config: SparseRNNConfig):
        super().__init__(config)
        self.rnn = SparseRNNModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_features, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.rnn(input_features, attention_mask, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(base.pooler_output)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
