"""Configuration of the diagonal linear network β = u⊙u − v⊙v (Woodworth et al. 2020; Wu & Su 2023)."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, positive_float, positive_int


class DiagonalLinearConfig(PretrainedConfig):
    r"""A diagonal linear network f(x) = ⟨u⊙u − v⊙v, x⟩ on vector inputs, one (u, v) pair per output.

    Args:
        input_dim (`int`): dimension of the input vectors (`input_features`).
        num_labels (`int`): number of outputs. The network of the theory papers is the scalar
            regressor: `num_labels=1` with `problem_type="regression"` (mean squared error on
            float targets); num_labels ≥ 2 is a linear classifier with cross-entropy.
        init_scale (`float`): α, the initialisation u = v = α·1 (so β = 0 at the start); a small
            α is the "rich" regime whose GD solution approaches the minimum-ℓ₁ interpolator, a
            large α the kernel regime (minimum ℓ₂).
    """

    model_type = "diagonal_linear"

    def __init__(self, input_dim: int = 2, num_labels: int | None = None, init_scale: float = 0.1, **kwargs):
        kwargs = label_kwargs(num_labels, kwargs, default=2)
        self.input_dim = positive_int("input_dim", input_dim)
        self.init_scale = positive_float("init_scale", init_scale)
        super().__init__(**kwargs)
