"""Configuration of the two-layer (one hidden layer) network used by the theory papers."""
from transformers import PretrainedConfig

ACTIVATIONS = ("relu", "tanh", "quadratic", "gelu", "sigmoid", "leaky_relu", "identity")


class TwoLayerMLPConfig(PretrainedConfig):
    r"""A one-hidden-layer network f(x) = W₂ σ(W₁ x + b₁) + b₂ on vector inputs.

    Args:
        input_dim (`int`): dimension of the input vectors (`input_features`).
        hidden_dim (`int`): number of hidden units.
        num_labels (`int`): number of outputs. With `problem_type="regression"` and one output
            the model is a scalar regressor; otherwise a classifier trained with cross-entropy.
        activation (`str`): hidden nonlinearity, one of `ACTIVATIONS`. "quadratic" is σ(x) = x².
        first_layer_bias (`bool`): whether W₁ has a bias.
        second_layer_bias (`bool`): whether W₂ has a bias.
        fixed_second_layer (`bool`): if True, W₂ is not trained: it is drawn once as random signs
            scaled by 1/√hidden_dim and kept as a (saved) buffer, as in the theory papers that
            train only the first layer.
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
        initializer_range: float = 0.1,
        **kwargs,
    ):
        if num_labels is None:  # a saved config carries id2label instead of num_labels
            num_labels = len(kwargs["id2label"]) if kwargs.get("id2label") else 2
        for field, value in (("input_dim", input_dim), ("hidden_dim", hidden_dim), ("num_labels", num_labels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        if not initializer_range > 0:
            raise ValueError(f"initializer_range must be positive, got {initializer_range!r}")
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.activation = activation
        self.first_layer_bias = bool(first_layer_bias)
        self.second_layer_bias = bool(second_layer_bias)
        self.fixed_second_layer = bool(fixed_second_layer)
        self.initializer_range = float(initializer_range)
        if kwargs.get("problem_type") is None:
            kwargs["problem_type"] = "regression" if num_labels == 1 else "single_label_classification"
        super().__init__(num_labels=num_labels, **kwargs)
