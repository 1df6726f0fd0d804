"""Configuration of MgNO (He, Liu, Xu 2023): a neural operator whose linear maps are multigrid V-cycles."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_int

ACTIVATIONS = ("gelu", "relu", "tanh")
PADDING = ("zeros", "circular")


def _steps(field: str, value, num_levels: int) -> list:
    """An int (every level) or a list of num_levels + 1 non-negative ints, finest level first."""
    value = [value] * (num_levels + 1) if isinstance(value, int) and not isinstance(value, bool) else value
    if (isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or len(list(value)) != num_levels + 1
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value)):
        raise ValueError(f"{field} must be a non-negative int or a list of num_levels + 1 = {num_levels + 1} of them, got {value!r}")
    return list(value)


class MgNOConfig(PretrainedConfig):
    r"""MgNO: v₀ = a (the input field), v_k = σ(W_k v_{k−1} + b_k), output u = W_L v_{L−1} + b_L,
    each W_k one multigrid V-cycle with learned convolutions; no lifting or projection layers.

    Args:
        resolution (`int`): grid size n of the n × n fields (the model is convolutional, so it
            runs at other sizes too; `resolution` fixes the dummy input and is checked against
            the depth): n must be divisible by 2**num_levels.
        in_channels, out_channels (`int`): channels of the input field and the output field.
        num_channels (`int`): channels of the hidden fields.
        num_layers (`int`): number of V-cycle operators W_k (at least 1).
        num_levels (`int`): coarsenings per V-cycle (each halves the grid).
        pre_smoothing, post_smoothing (`int | list[int]`): smoothing steps u ← u + S(f − A u)
            per level on the way down / up (an int for every level, or num_levels + 1 values).
        activation (`str`): σ, one of `ACTIVATIONS`.
        padding_mode (`str`): "zeros" (zero Dirichlet boundary, Darcy) or "circular" (periodic).
    """

    model_type = "mgno"

    def __init__(
        self,
        resolution: int = 64,
        in_channels: int = 1,
        out_channels: int = 1,
        num_channels: int = 32,
        num_layers: int = 4,
        num_levels: int = 4,
        pre_smoothing=1,
        post_smoothing=0,
        activation: str = "gelu",
        padding_mode: str = "zeros",
        **kwargs,
    ):
        kwargs.setdefault("problem_type", "regression")
        kwargs = label_kwargs(kwargs.pop("num_labels", 1), kwargs, default=1)
        self.resolution = positive_int("resolution", resolution)
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.num_channels = positive_int("num_channels", num_channels)
        self.num_layers = positive_int("num_layers", num_layers)
        self.num_levels = positive_int("num_levels", num_levels)
        if resolution % 2**num_levels:
            raise ValueError(f"resolution={resolution} cannot be halved num_levels={num_levels} times "
                             f"(it must be divisible by 2**{num_levels} = {2**num_levels})")
        self.pre_smoothing = _steps("pre_smoothing", pre_smoothing, num_levels)
        self.post_smoothing = _steps("post_smoothing", post_smoothing, num_levels)
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.padding_mode = one_of("padding_mode", padding_mode, PADDING)
        super().__init__(**kwargs)
