"""Configuration of the two-layer (one hidden layer) network used by the theory papers."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_float, positive_int

ACTIVATIONS = ("relu", "tanh", "quadratic", "gelu", "sigmoid", "leaky_relu", "identity")


class TwoLayerMLPConfig(PretrainedConfig):
    r"""A one-hidden-layer network f(x) = W₂ σ(W₁ x + b₁) + b₂ on vector inputs.

    Args:
        input_dim (`int`): dimension of the input vectors (`input_features`).
        hidden_dim (`int`): number of hidden units.
        num_labels (`int`): number of outputs: a classifier (cross-entropy) needs 2 or more; a
            scalar regressor says so with `problem_type="regression"` (num_labels=1 alone is an
            error, never a silent switch to regression).
        activation (`str`): hidden nonlinearity, one of `ACTIVATIONS`. "quadratic" is σ(x) = x².
        first_layer_bias (`bool`): whether W₁ has a bias.
        second_layer_bias (`bool`): whether W₂ has a bias.
        fixed_second_layer (`bool`): if True, W₂ is not trained: it is drawn once as random signs
            scaled by 1/√hidden_dim and kept as a (saved) buffer, as in the theory papers that
            train only the first layer.
        fixed_second_layer_init (`str`): how the fixed W₂ is drawn: "random_signs" (default: every
            entry ±1/√hidden_dim independently) or "balanced" (two outputs only: units alternate
            a_j = +1/√m, −1/√m and W₂'s rows are (−a/2, a/2), so logit₁ − logit₀ = Σ_j a_j σ(w_j·x),
            exactly the ±1/√m second layer of the XOR theorem of Xu et al. 2023).
        initializer_range (`float`): standard deviation of the normal init of W₁ (and W₂ when it
            is trained); theory papers often need a small init.
    """

    model_type = "two_layer_mlp"

    def __init__(
        self,
        input_dim: int = 2,
        hidden_dim: int = 64,
        num_labels: int | None = None,
        activation: str = "relu",
        first_layer_bias: bool = False,
        second_layer_bias: bool = False,
        fixed_second_layer: bool = False,
        fixed_second_layer_init: str = "random_signs",
        initializer_range: float = 0.1,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=2)
        self.input_dim = positive_int("input_dim", input_dim)
        self.hidden_dim = positive_int("hidden_dim", hidden_dim)
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.first_layer_bias = bool(first_layer_bias)
        self.second_layer_bias = bool(second_layer_bias)
        self.fixed_second_layer = bool(fixed_second_layer)
        self.fixed_second_layer_init = one_of("fixed_second_layer_init", fixed_second_layer_init,
                                              ("random_signs", "balanced"))
        self.initializer_range = positive_float("initializer_range", initializer_range)
        super().__init__(**kwargs)
        if self.fixed_second_layer_init == "balanced" and (not self.fixed_second_layer or self.num_labels != 2):
            raise ValueError("fixed_second_layer_init='balanced' needs fixed_second_layer=True and num_labels=2, got "
                             f"fixed_second_layer={self.fixed_second_layer}, num_labels={self.num_labels}")
