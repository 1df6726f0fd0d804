"""Configuration of the Kolmogorov–Arnold network (KAN) image classifier."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_int, positive_int_list

BASES = ("bspline", "relu", "af")
BSPLINE_IMPLS = ("fused", "local", "cox_de_boor")
NORMS = ("none", "layer", "batch")
AF_ACTIVATIONS = ("relu", "silu", "gelu", "elu", "selu", "softplus", "sigmoid", "tanh", "leaky_relu")
AF_FUNCTIONS = ("quad1", "quad2", "sum", "prod", "sum_prod", "cubic1", "cubic2")
AF_REDUCTIONS = ("global_attn", "multistep")


class KANConfig(PretrainedConfig):
    r"""A KAN image classifier: flatten → KAN layer × (len(hidden_sizes) + 1), the last one to the classes.

    Every layer maps `in` features to `out` through learnable univariate functions on a uniform
    grid of `grid_size` intervals over `grid_range`, extended by `spline_order` knots each side
    (so `grid_size + spline_order` basis functions per input).

    Args:
        image_size (`int`): height and width of the (square) input images.
        num_channels (`int`): channels of the input images.
        hidden_sizes (`list[int]`): width of each hidden KAN layer, input side first.
        basis (`str`): the layer type, one of `BASES`:
            - ``"bspline"``: the KAN layer of Liu et al. (2024) in efficient-kan's form:
              ``y = W_b·silu(x) + W_s·B(x)``, B the order-`spline_order` B-spline bases;
            - ``"relu"``: ReLU-KAN (Qiu et al. 2024): bases
              ``R_i(x) = (r·ReLU(x − a_i)·ReLU(b_i − x))²`` with ``r = 4/(b_i − a_i)²`` (peak 1),
              then a linear map with bias;
            - ``"af"``: AF-KAN (Ta 2025): the bases of `af_function` over `af_activation`,
              reduced to one value per input (`af_reduction`), normalised (`norm`), then
              ``W·act(·)``: parameters ~ in·out, not in·out·(grid_size + spline_order).
        grid_size (`int`): number of grid intervals (at least 1).
        spline_order (`int`): B-spline order k (degree; 0 = piecewise constant); for relu/af the
            width of each basis is (k + 1) intervals.
        grid_range (`list[float]`): [low, high] of the grid.
        bspline_impl (`str`): ``"fused"`` (the fast layer: every basis in closed form from its
            distance to its centre, a few fused elementwise passes), ``"local"`` (only the k + 1
            non-zero bases of each input, from its local grid coordinate, placed by a scatter) or
            ``"cox_de_boor"`` (the full-basis recursion, kept as the reference); the same outputs.
        norm (`str`): `NORMS`; for bspline/relu applied to each layer's input (ReLU-KAN uses
            "layer"), for af inside the layer after the reduction (AF-KAN's place).
        af_activation (`str`): AF-KAN's activation (`AF_ACTIVATIONS`).
        af_function (`str`): AF-KAN's function combination of ``x1 = act(x − a)``, ``x2 = act(b − x)``
            (`AF_FUNCTIONS`: quad1 = (x1·x2)², quad2 = x1·x2 + x1² + x2², sum, prod, sum_prod,
            cubic1 = (x1 + x2)(x1² + x2²), cubic2 = (x1·x2)³).
        af_function_norm (`bool`): AF-KAN's min-max normalisation of the basis values (per example).
        af_reduction (`str`): AF-KAN's parameter reduction over the bases (`AF_REDUCTIONS`):
            "global_attn" (softmax attention over the inputs) or "multistep" (a shared linear map).
        num_labels (`int`): number of classes.
    """

    model_type = "kan"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        hidden_sizes: list[int] = (64,),
        basis: str = "bspline",
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: list[float] = (-1.0, 1.0),
        bspline_impl: str = "fused",
        norm: str = "none",
        af_activation: str = "silu",
        af_function: str = "quad1",
        af_function_norm: bool = True,
        af_reduction: str = "global_attn",
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        self.image_size = positive_int("image_size", image_size)
        self.num_channels = positive_int("num_channels", num_channels)
        self.hidden_sizes = positive_int_list("hidden_sizes", hidden_sizes)
        self.basis = one_of("basis", basis, BASES)
        self.grid_size = positive_int("grid_size", grid_size)
        if isinstance(spline_order, bool) or not isinstance(spline_order, int) or spline_order < 0:
            raise ValueError(f"spline_order must be an integer >= 0, got {spline_order!r}")
        self.spline_order = spline_order
        try:
            low, high = (float(v) for v in grid_range)
        except (TypeError, ValueError):
            raise ValueError(f"grid_range must be [low, high], got {grid_range!r}") from None
        if not low < high:
            raise ValueError(f"grid_range must have low < high, got {grid_range!r}")
        self.grid_range = [low, high]
        self.bspline_impl = one_of("bspline_impl", bspline_impl, BSPLINE_IMPLS)
        self.norm = one_of("norm", norm, NORMS)
        self.af_activation = one_of("af_activation", af_activation, AF_ACTIVATIONS)
        self.af_function = one_of("af_function", af_function, AF_FUNCTIONS)
        if not isinstance(af_function_norm, bool):
            raise ValueError(f"af_function_norm must be true or false, got {af_function_norm!r}")
        self.af_function_norm = af_function_norm
        self.af_reduction = one_of("af_reduction", af_reduction, AF_REDUCTIONS)
        super().__init__(**kwargs)
