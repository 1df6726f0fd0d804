"""Configuration of TS-LSTM (Ma et al. 2017): LSTMs over temporal segments, fused."""
from transformers import PretrainedConfig

from .zoo_common import fraction, label_kwargs, one_of, positive_int


class TSLSTMConfig(PretrainedConfig):
    r"""Temporal-segment LSTM: each sequence is cut into `num_segments` windows of (nearly) equal
    length over its real steps; one LSTM (shared weights) reads each window from the zero state;
    the windows' final states are fused and classified. num_segments = 1 is a plain LSTM.

    Args:
        input_size (`int`): features per time step (the paper: per-frame CNN features; here
            sensor channels or image rows).
        hidden_size (`int`): LSTM units.
        num_segments (`int`): windows a sequence is cut into.
        cell (`str`): "lstm" (the paper's) or "gru".
        fusion (`str`): "mean" of the windows' states (the paper's temporal pooling), or
            "concat" (the classifier sees each window's state at its position).
        dropout (`float`): dropout before the classifier.
        max_steps (`int`): the longest sequence accepted.
        num_labels (`int`): number of classes.
    """

    model_type = "ts_lstm"

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 64,
        num_segments: int = 3,
        cell: str = "lstm",
        fusion: str = "mean",
        dropout: float = 0.0,
        max_steps: int = 1024,
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=2)
        for field, value in (("input_size", input_size), ("hidden_size", hidden_size),
                             ("num_segments", num_segments), ("max_steps", max_steps)):
            positive_int(field, value)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_segments = num_segments
        self.cell = one_of("cell", cell, ("lstm", "gru"))
        self.fusion = one_of("fusion", fusion, ("mean", "concat"))
        self.dropout = fraction("dropout", dropout)
        self.max_steps = max_steps
        super().__init__(**kwargs)
