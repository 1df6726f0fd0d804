"""Configuration of G2GNet, the MLP image classifier with ensemble-to-ensemble sparse connectivity."""
from transformers import PretrainedConfig

from .zoo_common import fraction, label_kwargs, one_of, positive_int, positive_int_list

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid", "leaky_relu")
LAYOUTS = ("modular", "random")


def connections_per_ensemble(sparsity: float, in_ensembles: int) -> int:
    """How many input ensembles each output ensemble connects to: round((1 - sparsity) * E_in), at least 1."""
    return max(1, min(in_ensembles, round((1.0 - sparsity) * in_ensembles)))


class G2GNetConfig(PretrainedConfig):
    r"""G2GNet: flatten → [G2GLinear → act → dropout] × n → Linear.

    The units of every hidden layer form `num_ensembles` equal ensembles (contiguous groups of
    units). A sparse layer connects each output ensemble to k = round((1 - sparsity) · E_in)
    input ensembles and to nothing else: its weight is block-sparse, one dense block per
    connected ensemble pair, and it is computed as such (a matmul per run of consecutive
    connected blocks, with no copies). Which ensembles connect is a saved buffer
    (``connections``), so a dynamic sparse trainer's rewiring travels with the checkpoint.

    Args:
        image_size (`int`): height and width of the (square) input images.
        num_channels (`int`): channels of the input images.
        hidden_sizes (`list[int]`): width of each hidden layer, input side first.
        num_ensembles (`int` or `list[int]`): ensembles per hidden layer (one number for all, or
            one per hidden layer); each must divide its layer's width.
        input_ensembles (`int` or None): ensembles of the input pixels; None keeps the first
            layer dense (pixels → first hidden layer), else it must divide C·H·W and the first
            layer is sparse too.
        sparsity (`float`): fraction of ensemble pairs left unconnected, in [0, 1); the layer's
            actual sparsity is 1 - k / E_in (see `layer_sparsities`).
        layout (`str`): "modular": output ensemble j connects to the k input ensembles around
            the one at its relative position (a band, wrapping around: local modules whose
            reach grows layer by layer); "random": k input ensembles drawn per output ensemble
            with `connectivity_seed`.
        connectivity_seed (`int`): seed of the "random" layout.
        activation (`str`): hidden nonlinearity, one of `ACTIVATIONS`.
        dropout (`float`): dropout probability after each hidden activation (0 disables it).
        num_labels (`int`): number of classes.
    """

    model_type = "g2gnet"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        hidden_sizes: list[int] = (512, 256),
        num_ensembles=16,
        input_ensembles: int | None = None,
        sparsity: float = 0.75,
        layout: str = "modular",
        connectivity_seed: int = 0,
        activation: str = "relu",
        dropout: float = 0.0,
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        self.image_size = positive_int("image_size", image_size)
        self.num_channels = positive_int("num_channels", num_channels)
        self.hidden_sizes = positive_int_list("hidden_sizes", hidden_sizes)
        if isinstance(num_ensembles, int) and not isinstance(num_ensembles, bool):
            num_ensembles = [num_ensembles] * len(self.hidden_sizes)
        self.num_ensembles = positive_int_list("num_ensembles", num_ensembles)
        if len(self.num_ensembles) != len(self.hidden_sizes):
            raise ValueError(f"num_ensembles must give one number per hidden layer ({len(self.hidden_sizes)}), "
                             f"got {self.num_ensembles}")
        for width, ensembles in zip(self.hidden_sizes, self.num_ensembles):
            if width % ensembles:
                raise ValueError(f"num_ensembles={ensembles} does not divide the hidden width {width} "
                                 f"(hidden_sizes={self.hidden_sizes})")
        in_width = self.num_channels * self.image_size**2
        if input_ensembles is not None:
            positive_int("input_ensembles", input_ensembles)
            if in_width % input_ensembles:
                raise ValueError(f"input_ensembles={input_ensembles} does not divide the input width {in_width} "
                                 f"(num_channels · image_size²)")
        self.input_ensembles = input_ensembles
        self.sparsity = fraction("sparsity", sparsity)
        self.layout = one_of("layout", layout, LAYOUTS)
        if isinstance(connectivity_seed, bool) or not isinstance(connectivity_seed, int) or connectivity_seed < 0:
            raise ValueError(f"connectivity_seed must be a non-negative integer, got {connectivity_seed!r}")
        self.connectivity_seed = connectivity_seed
        self.activation = one_of("activation", activation, ACTIVATIONS)
        self.dropout = fraction("dropout", dropout)
        super().__init__(**kwargs)

    def layer_shapes(self) -> list[tuple[int, int, int | None, int]]:
        """(in_features, out_features, in_ensembles or None for a dense layer, out_ensembles) per hidden layer."""
        widths = [self.num_channels * self.image_size**2, *self.hidden_sizes]
        ins = [self.input_ensembles, *self.num_ensembles[:-1]]
        return [(widths[i], widths[i + 1], ins[i], self.num_ensembles[i]) for i in range(len(self.hidden_sizes))]

    def layer_sparsities(self) -> list[float]:
        """The actual fraction of zero weights of each hidden layer (0 for a dense first layer)."""
        return [0.0 if e_in is None else 1.0 - connections_per_ensemble(self.sparsity, e_in) / e_in
                for _, _, e_in, _ in self.layer_shapes()]
