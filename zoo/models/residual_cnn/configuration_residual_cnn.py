"""Configuration of the residual CNN with a sequential or parallel layout of its residual branches."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_int

LAYOUTS = ("sequential", "parallel")


class ResidualCNNConfig(PretrainedConfig):
    r"""A residual CNN (Bermeitinger, Hrycej, Handschuh 2023, "Make Deep Networks Shallow Again"):

        stem: Conv k×k (num_channels → filters), stride `stem_stride` → ReLU
        residual stage of `depth` branches F_i(z) = ReLU(Conv_i z), each Conv_i k×k, filters → filters:
            layout "sequential": z ← z + F_i(z) for i = 1..depth      (the deep net Π(I + F_i))
            layout "parallel":   z ← z + Σ_i F_i(z)                    (one wide layer I + Σ F_i)
        flatten → Linear classifier

    The two layouts have the same parameters under the same names, so a checkpoint of one loads
    into the other (that is how the truncation of the expansion is measured); with depth 1 they
    are the same function.

    Args:
        image_size (`int`): height and width of the (square) input images.
        num_channels (`int`): channels of the input images.
        filters (`int`): channels of the residual stream (every branch's input and output).
        depth (`int`): number of residual branches F_i.
        kernel_size (`int`): odd kernel size of the stem and of every branch (padding keeps the size).
        stem_stride (`int`): stride of the stem convolution (2 halves the side, and the cost).
        layout (`str`): "sequential" or "parallel" (see above).
        num_labels (`int`): number of classes.
    """

    model_type = "residual_cnn"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        filters: int = 16,
        depth: int = 4,
        kernel_size: int = 3,
        stem_stride: int = 1,
        layout: str = "sequential",
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        for field, value in (("image_size", image_size), ("num_channels", num_channels), ("filters", filters),
                             ("depth", depth), ("kernel_size", kernel_size), ("stem_stride", stem_stride)):
            positive_int(field, value)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.image_size = image_size
        self.num_channels = num_channels
        self.filters = filters
        self.depth = depth
        self.kernel_size = kernel_size
        self.stem_stride = stem_stride
        self.layout = one_of("layout", layout, LAYOUTS)
        super().__init__(**kwargs)
