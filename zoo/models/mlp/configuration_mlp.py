"""Configuration of the deep MLP image classifier."""
from transformers import PretrainedConfig

from .zoo_common import fraction, label_kwargs, one_of, positive_int, positive_int_list

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid", "leaky_relu")


class MLPConfig(PretrainedConfig):
    r"""A deep fully connected image classifier: flatten → [Linear → act → dropout] × n → Linear.

    Args:
        image_size (`int`): height and width of the (square) input images.
        num_channels (`int`): channels of the input images.
        hidden_sizes (`list[int]`): width of each hidden layer, input side first.
        activation (`str`): hidden nonlinearity, one of `ACTIVATIONS`.
        dropout (`float`): dropout probability after each hidden activation (0 disables it).
        num_labels (`int`): number of classes (at least 2; a regressor sets problem_type="regression").
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
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        self.image_size = positive_int("image_size", image_size)
        self.num_channels = positive_int("num_channels", num_channels)
        self.hidden_sizes = positive_int_list("hidden_sizes", hidden_sizes)
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.dropout = fraction("dropout", dropout)
        super().__init__(**kwargs)
