"""Configuration of MgNO (He, Liu, Xu 2023): a neural operator whose linear maps are multigrid V-cycles."""
from transformers import PretrainedConfig

from .zoo_common import one_of, positive_float, positive_int

ACTIVATIONS = ("gelu", "relu", "tanh")
PADDING = ("zeros", "circular")


def smoothing_steps(field: str, value, num_levels: int) -> list:
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
        num_layers (`int`): number of V-cycle operators W_k (at least 2: the backbone's hidden
            layers, then the task model's output layer W_L).
        num_levels (`int`): coarsenings per V-cycle (each halves the grid).
        pre_smoothing, post_smoothing (`int | list[int]`): smoothing steps u ← u + S(f − A u)
            per level on the way down / up (an int for every level, or num_levels + 1 values;
            the coarsest level only pre-smooths, at least once).
        activation (`str`): σ, one of `ACTIVATIONS`.
        padding_mode (`str`): "zeros" (zero Dirichlet boundary, Darcy) or "circular" (periodic).
        input_mean, input_std (`float`): the input field enters as (a − input_mean) / input_std
            (Darcy's a ∈ {3, 12}: 7.5 and 4.5 give ±1), so a published model takes raw fields.
        output_scale (`float`): the last layer's field is multiplied by it (the size of u).

    The output is a field (batch, out_channels, n, n); `num_labels` is out_channels and the
    problem type is always regression (the loss: relative L2 error, mean over examples).
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
        input_mean: float = 0.0,
        input_std: float = 1.0,
        output_scale: float = 1.0,
        **kwargs,
    ):
        problem_type = kwargs.pop("problem_type", None) or "regression"
        if problem_type != "regression":
            raise ValueError(f"problem_type must be 'regression' for MgNO (its output is a field), got {problem_type!r}")
        num_labels = kwargs.pop("num_labels", None)
        if num_labels is not None and num_labels != out_channels:
            raise ValueError(f"num_labels is MgNO's out_channels ({out_channels}); got num_labels={num_labels!r}")
        kwargs.pop("id2label", None), kwargs.pop("label2id", None)  # a field has no class names
        self.resolution = positive_int("resolution", resolution)
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.num_channels = positive_int("num_channels", num_channels)
        self.num_layers = positive_int("num_layers", num_layers)
        if num_layers < 2:
            raise ValueError(f"num_layers must be at least 2 (hidden V-cycle layers, then the output one), got {num_layers}")
        self.num_levels = positive_int("num_levels", num_levels)
        if resolution % 2**num_levels:
            raise ValueError(f"resolution={resolution} cannot be halved num_levels={num_levels} times "
                             f"(it must be divisible by 2**{num_levels} = {2**num_levels})")
        pre = smoothing_steps("pre_smoothing", pre_smoothing, num_levels)
        post = smoothing_steps("post_smoothing", post_smoothing, num_levels)
        if pre[-1] < 1 or any(a + b < 1 for a, b in zip(pre, post)):
            raise ValueError("pre_smoothing must be >= 1 on the coarsest level, and pre_smoothing + post_smoothing >= 1 "
                             f"on every level (a level without smoothing learns nothing); got {pre}, {post}")
        # kept as given (an int stays an int, so config.json matches the recipe); the model expands them
        self.pre_smoothing = list(pre_smoothing) if isinstance(pre_smoothing, (list, tuple)) else pre_smoothing
        self.post_smoothing = list(post_smoothing) if isinstance(post_smoothing, (list, tuple)) else post_smoothing
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.padding_mode = one_of("padding_mode", padding_mode, PADDING)
        if isinstance(input_mean, bool) or not isinstance(input_mean, (int, float)):
            raise ValueError(f"input_mean must be a number, got {input_mean!r}")
        self.input_mean = float(input_mean)
        self.input_std = positive_float("input_std", input_std)
        self.output_scale = positive_float("output_scale", output_scale)
        super().__init__(num_labels=self.out_channels, problem_type="regression", **kwargs)
