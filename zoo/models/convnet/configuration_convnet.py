"""Configuration of the small CNN image classifier."""
from transformers import PretrainedConfig


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
        num_labels (`int`): number of classes.
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
        num_labels: int | None = None,
        **kwargs,
    ):
        if num_labels is None:  # a saved config carries id2label instead of num_labels
            num_labels = len(kwargs["id2label"]) if kwargs.get("id2label") else 10
        for field, value in (
            ("image_size", image_size), ("num_channels", num_channels), ("kernel_size", kernel_size),
            ("hidden_size", hidden_size), ("num_labels", num_labels),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        channels = list(channels)
        if not channels or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive integers, got {channels!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if image_size % 2 ** len(channels):
            raise ValueError(f"image_size ({image_size}) must be divisible by 2**len(channels) = {2 ** len(channels)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.image_size = image_size
        self.num_channels = num_channels
        self.channels = channels
        self.kernel_size = kernel_size
        self.batch_norm = bool(batch_norm)
        self.hidden_size = hidden_size
        self.dropout = float(dropout)
        kwargs.setdefault("problem_type", "single_label_classification")
        super().__init__(num_labels=num_labels, **kwargs)
