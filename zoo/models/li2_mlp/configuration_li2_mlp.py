"""Configuration of the Li₂ grokking network (Tian 2025): group arithmetic with one hidden layer."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_float, positive_int

ACTIVATIONS = ("quadratic", "relu", "tanh", "gelu", "silu", "sigmoid", "identity")
INITIALIZERS = ("uniform", "normal")


class Li2MLPConfig(PretrainedConfig):
    r"""The network of the Li₂ grokking paper: f(a, b) = V σ(W [e_a ; e_b]).

    The input is the concatenation of one one-hot vector per operand (`input_features`, length
    `num_operands · group_order`), the first layer W (hidden_dim × num_operands·group_order) has
    no bias, σ is x² by default, and the output layer V (num_labels × hidden_dim) has no bias.
    Hidden unit k's first-layer weights split into one vector per operand, W[k] = [u_k ; v_k]:
    `Li2MLPModel.operand_weights()` returns them as (hidden_dim, num_operands, group_order), the
    array whose Fourier spectrum shows the features the paper predicts.

    Args:
        group_order (`int`): |G|, the number of group elements (M for Z_M).
        hidden_dim (`int`): number of hidden units K (the paper's reference uses 512).
        num_operands (`int`): operands per example (2 for a ∘ b).
        num_labels (`int`): outputs; default `group_order` (one logit per group element).
        activation (`str`): σ, one of `ACTIVATIONS`; "quadratic" is σ(x) = x², the paper's default.
        initializer (`str`): "uniform" draws both layers as torch's nn.Linear default,
            U(−1/√fan_in, 1/√fan_in), as the reference code does; "normal" draws N(0, initializer_range²).
        initializer_range (`float`): standard deviation for initializer="normal".
    """

    model_type = "li2_mlp"

    def __init__(
        self,
        group_order: int = 23,
        hidden_dim: int = 512,
        num_operands: int = 2,
        num_labels: int | None = None,
        activation: str = "quadratic",
        initializer: str = "uniform",
        initializer_range: float = 0.02,
        **kwargs,
    ):
        self.group_order = positive_int("group_order", group_order)
        kwargs = label_kwargs(num_labels, kwargs, default=group_order)
        self.hidden_dim = positive_int("hidden_dim", hidden_dim)
        self.num_operands = positive_int("num_operands", num_operands)
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.initializer = one_of("initializer", initializer, INITIALIZERS)
        self.initializer_range = positive_float("initializer_range", initializer_range)
        super().__init__(**kwargs)

    @property
    def input_dim(self) -> int:
        return self.num_operands * self.group_order
