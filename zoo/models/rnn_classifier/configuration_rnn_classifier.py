"""Configuration of the recurrent sequence classifier (Elman tanh / ReLU, GRU, LSTM; bidirectional)."""
from transformers import PretrainedConfig

from .zoo_common import fraction, label_kwargs, one_of, positive_int

CELLS = ("tanh", "relu", "gru", "lstm")
POOLINGS = ("last", "mean")


class RNNClassifierConfig(PretrainedConfig):
    r"""A stack of recurrent layers read by a linear classifier.

    Args:
        input_size (`int`): features per time step (input_features is (batch, steps, input_size)).
        hidden_size (`int`): units per layer and direction.
        num_layers (`int`): stacked recurrent layers.
        cell (`str`): "tanh" or "relu" (Elman cells), "gru" or "lstm".
        bidirectional (`bool`): a second direction reads each sequence in reverse; their states
            are concatenated.
        pooling (`str`): what the classifier reads: "last", the final state of each direction
            (the forward one after the last real step, the backward one after the first), or
            "mean", the mean of the last layer's outputs over the real steps.
        dropout (`float`): dropout between layers and before the classifier.
        max_steps (`int`): the longest sequence accepted; a longer one is an error.
        num_labels (`int`): number of classes.
    """

    model_type = "rnn_classifier"

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        pooling: str = "last",
        dropout: float = 0.0,
        max_steps: int = 1024,
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=2)
        for field, value in (("input_size", input_size), ("hidden_size", hidden_size),
                             ("num_layers", num_layers), ("max_steps", max_steps)):
            positive_int(field, value)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = one_of("cell", cell, CELLS)
        self.bidirectional = bool(bidirectional)
        self.pooling = one_of("pooling", pooling, POOLINGS)
        self.dropout = fraction("dropout", dropout)
        self.max_steps = max_steps
        super().__init__(**kwargs)
