"""Configuration of the residual MLP family: Hourglass (wide-narrow-wide) and conventional (narrow-wide-narrow) blocks."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_int

BLOCK_SHAPES = ("hourglass", "conventional")
LIFTS = ("fixed", "learned")
ACTIVATIONS = ("relu", "gelu")


class HourglassMLPConfig(PretrainedConfig):
    r"""A residual MLP on flattened images ("Rethinking the shape convention of an MLP", 2025):

        z = P x                                    the lift of the input to the residual stream
        z ← z + W_up σ(W_down z)   × depth         residual blocks, stream_size → hidden_size → stream_size
        y = W_out z + b_out                        num_labels outputs (classes, or a regression target
                                                   such as a denoised image: problem_type="regression")

    block_shape "hourglass": wide-narrow-wide blocks, the skip connections on a wide stream and
    the computation through a narrow bottleneck (hidden_size < stream_size, enforced); the lift P
    is by default fixed at its random initialisation (a saved buffer, never trained).
    block_shape "conventional": the narrow-wide-narrow residual MLP (hidden_size > stream_size,
    enforced), by default with a learned lift (an input projection).

    Args:
        image_size (`int`), num_channels (`int`): the input images (flattened to C·H·W features).
        block_shape (`str`): "hourglass" or "conventional".
        stream_size (`int`): width of the residual stream (the skip connections).
        hidden_size (`int`): width inside each block (the bottleneck of an hourglass block, the
            expansion of a conventional one).
        depth (`int`): number of residual blocks.
        lift (`str`): "fixed" (P ~ N(0, 1/(C·H·W)) drawn at init and kept as a buffer) or "learned"
            (a trained linear map without bias); default "fixed" for hourglass, "learned" for conventional.
        activation (`str`): σ, one of `ACTIVATIONS`.
        num_labels (`int`): number of outputs (the image's C·H·W pixels for denoising).
    """

    model_type = "hourglass_mlp"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        block_shape: str = "hourglass",
        stream_size: int = 1024,
        hidden_size: int = 128,
        depth: int = 4,
        lift: str | None = None,
        activation: str = "relu",
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        for field, value in (("image_size", image_size), ("num_channels", num_channels), ("stream_size", stream_size),
                             ("hidden_size", hidden_size), ("depth", depth)):
            positive_int(field, value)
        self.block_shape = one_of("block_shape", block_shape, BLOCK_SHAPES)
        if block_shape == "hourglass" and hidden_size >= stream_size:
            raise ValueError(f"hidden_size ({hidden_size}) must be smaller than stream_size ({stream_size}) for "
                             "block_shape hourglass (a narrow bottleneck between wide skips)")
        if block_shape == "conventional" and hidden_size <= stream_size:
            raise ValueError(f"hidden_size ({hidden_size}) must be larger than stream_size ({stream_size}) for "
                             "block_shape conventional (a wide hidden layer between narrow skips)")
        lift = lift if lift is not None else ("fixed" if block_shape == "hourglass" else "learned")
        self.lift = one_of("lift", lift, LIFTS)
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.image_size = image_size
        self.num_channels = num_channels
        self.stream_size = stream_size
        self.hidden_size = hidden_size
        self.depth = depth
        super().__init__(**kwargs)
