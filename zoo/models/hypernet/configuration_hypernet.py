"""Configuration of the hypernetwork image classifier (standard or magnitude-invariant)."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_int, positive_int_list

PARAMETRIZATIONS = ("standard", "mip")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "gelu")
NORMS = ("none", "layernorm")
INITS = ("pytorch", "fan_out")


class HyperNetConfig(PretrainedConfig):
    r"""A hypernetwork h that maps a conditioning value γ ∈ [0, 1] to the weights θ(γ) of a target
    MLP classifier (flatten → Linear → act → Linear), which then classifies the images.

    Args:
        image_size (`int`), num_channels (`int`): the (square) input images.
        target_hidden_size (`int`): width of the target MLP's hidden layer.
        hyper_hidden_sizes (`list[int]`): widths of the hypernetwork's hidden layers.
        parametrization (`str`): ``"standard"``: h takes γ and outputs θ = h(γ);
            ``"mip"`` (Ortiz, Guttag & Dalca 2023): h takes the constant-norm encoding
            [cos(πγ/2), sin(πγ/2)] and θ = θ₀ + Δθ(γ), θ₀ a learned weight independent of γ.
        activation (`str`): the nonlinearity of both networks (`ACTIVATIONS`).
        hyper_norm (`str`): ``"none"`` or ``"layernorm"`` (a LayerNorm after each of the
            hypernetwork's hidden linear layers, before its activation; the paper's normalisation
            ablation. BatchNorm does not apply: one γ per batch means a batch of one input).
        hyper_init (`str`): the hypernetwork's initialisation. ``"pytorch"``: nn.Linear's default
            (uniform ±1/√fan_in, biases too). ``"fan_out"``: the reference library's (hyperlight):
            Kaiming-normal in fan-out mode for every layer, zero biases, and the output layer
            initialised per target tensor (fan-out = that tensor's size; rows predicting a target
            bias zero), so the predicted weights start at the target's scale instead of far above it.
        default_gamma (`float`): γ used when forward gets none (in [0, 1]).
        num_labels (`int`): number of classes.
    """

    model_type = "hypernet"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        target_hidden_size: int = 32,
        hyper_hidden_sizes: list[int] = (16, 64),
        parametrization: str = "mip",
        activation: str = "relu",
        hyper_norm: str = "none",
        hyper_init: str = "pytorch",
        default_gamma: float = 0.5,
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        self.image_size = positive_int("image_size", image_size)
        self.num_channels = positive_int("num_channels", num_channels)
        self.target_hidden_size = positive_int("target_hidden_size", target_hidden_size)
        self.hyper_hidden_sizes = positive_int_list("hyper_hidden_sizes", hyper_hidden_sizes)
        self.parametrization = one_of("parametrization", parametrization, PARAMETRIZATIONS)
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.hyper_norm = one_of("hyper_norm", hyper_norm, NORMS)
        self.hyper_init = one_of("hyper_init", hyper_init, INITS)
        if isinstance(default_gamma, bool) or not isinstance(default_gamma, (int, float)) or not 0 <= default_gamma <= 1:
            raise ValueError(f"default_gamma must be in [0, 1], got {default_gamma!r}")
        self.default_gamma = float(default_gamma)
        super().__init__(**kwargs)
