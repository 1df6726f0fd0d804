"""Configuration of the deep MLP image classifier."""
from transformers import PretrainedConfig

from .quadratic_neurons import NEURON_KINDS, QUADRATIC_INITS
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
        neuron (`str`): "linear" (the conventional W x + b) or "quadratic": every hidden layer's
            neurons are (W_r x + b_r) * (W_g x + b_g) + W_b (x * x) + c (Fan et al.); the classifier
            stays linear. A quadratic layer has three times the weights of the linear one.
        quadratic_init (`str`): initialisation of the quadratic terms: "relinear" (W_g = 0, b_g = 1,
            W_b = 0, c = 0: the net starts as the linear net of the same seed) or "random" (each
            term drawn like the linear weights: plain training). Ignored for linear neurons.
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
        neuron: str = "linear",
        quadratic_init: str = "relinear",
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        self.image_size = positive_int("image_size", image_size)
        self.num_channels = positive_int("num_channels", num_channels)
        self.hidden_sizes = positive_int_list("hidden_sizes", hidden_sizes)
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.dropout = fraction("dropout", dropout)
        self.neuron = one_of("neuron", neuron, NEURON_KINDS)
        self.quadratic_init = one_of("quadratic_init", quadratic_init, QUADRATIC_INITS)
        super().__init__(**kwargs)
