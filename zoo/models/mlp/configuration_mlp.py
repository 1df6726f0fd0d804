"""Configuration of the deep MLP image classifier."""
from transformers import PretrainedConfig

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid", "leaky_relu")


class MLPConfig(PretrainedConfig):
    r"""A deep fully connected image classifier: flatten → [Linear → act → dropout] × n → Linear.

    Args:
        image_size (`int`): height and width of the (square) input images.
        num_channels (`int`): channels of the input images.
        hidden_sizes (`list[int]`): width of each hidden layer, input side first.
        activation (`str`): hidden nonlinearity, one of `ACTIVATIONS`.
        dropout (`float`): dropout probability after each hidden activation (0 disables it).
        num_labels (`int`): number of classes.
    """

    model_type = "mlp"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        hidden_sizes: list[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        num_labels: int | None = None,
        **kwargs,
    ):
        if num_labels is None:  # a saved config carries id2label instead of num_labels
            num_labels = len(kwargs["id2label"]) if kwargs.get("id2label") else 10
        for field, value in (("image_size", image_size), ("num_channels", num_channels), ("num_labels", num_labels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        hidden_sizes = list(hidden_sizes)
        if not hidden_sizes or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes must be a non-empty list of positive integers, got {hidden_sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.image_size = image_size
        self.num_channels = num_channels
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = float(dropout)
        kwargs.setdefault("problem_type", "single_label_classification")
        super().__init__(num_labels=num_labels, **kwargs)
