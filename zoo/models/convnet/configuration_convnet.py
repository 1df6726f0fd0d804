"""Configuration of the small CNN image classifier."""
from transformers import PretrainedConfig

from .quadratic_neurons import NEURON_KINDS, QUADRATIC_INITS
from .zoo_common import fraction, label_kwargs, one_of, positive_int, positive_int_list


class ConvNetConfig(PretrainedConfig):
    r"""A small CNN: [Conv3×3 → (BatchNorm) → ReLU → MaxPool2] × n → flatten → Linear → ReLU → Linear.

    Args:
        image_size (`int`): height and width of the (square) input images; must be divisible by
            2 ** len(channels).
        num_channels (`int`): channels of the input images.
        channels (`list[int]`): output channels of each convolutional block.
        kernel_size (`int`): odd convolution kernel size (padding keeps the spatial size).
        batch_norm (`bool`): whether each block has a BatchNorm after the convolution.
        hidden_size (`int`): width of the fully connected layer before the classifier.
        dropout (`float`): dropout before the classifier.
        neuron (`str`): "linear" (conventional convolutions) or "quadratic": every convolution and
            the fully connected layer compute (W_r x + b_r) * (W_g x + b_g) + W_b (x * x) + c
            (Fan et al.), each term a convolution (a linear map) of the same shape; the classifier
            stays linear. A quadratic layer has three times the weights of the linear one.
        quadratic_init (`str`): initialisation of the quadratic terms: "relinear" (W_g = 0, b_g = 1,
            W_b = 0, c = 0: the net starts as the linear net of the same seed) or "random" (each
            term drawn like the linear weights: plain training). Ignored for linear neurons.
        num_labels (`int`): number of classes (at least 2; a regressor sets problem_type="regression").
    """

    model_type = "convnet"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        channels: list[int] = (32, 64),
        kernel_size: int = 3,
        batch_norm: bool = False,
        hidden_size: int = 128,
        dropout: float = 0.0,
        neuron: str = "linear",
        quadratic_init: str = "relinear",
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        for field, value in (("image_size", image_size), ("num_channels", num_channels),
                             ("kernel_size", kernel_size), ("hidden_size", hidden_size)):
            positive_int(field, value)
        channels = positive_int_list("channels", channels)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if image_size % 2 ** len(channels):
            raise ValueError(f"image_size ({image_size}) must be divisible by 2**len(channels) = {2 ** len(channels)}")
        self.image_size = image_size
        self.num_channels = num_channels
        self.channels = channels
        self.kernel_size = kernel_size
        self.batch_norm = bool(batch_norm)
        self.hidden_size = hidden_size
        self.dropout = fraction("dropout", dropout)
        self.neuron = one_of("neuron", neuron, NEURON_KINDS)
        self.quadratic_init = one_of("quadratic_init", quadratic_init, QUADRATIC_INITS)
        super().__init__(**kwargs)
