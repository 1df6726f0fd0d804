"""Configuration of FinalMLP (Mao et al. 2023), the two-stream MLP for click-through prediction."""
from transformers import PretrainedConfig

from .zoo_common import fraction, label_kwargs, one_of, positive_float, positive_int, positive_int_list

MODES = ("finalmlp", "dualmlp", "mlp")
GATE_INITS = ("identity", "random")


def _context_fields(field: str, value, num_fields: int) -> list:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{field} must be a list of field indices, got {value!r}")
    value = list(value)
    if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < num_fields for v in value):
        raise ValueError(f"{field} must hold field indices in [0, {num_fields}), got {value!r}")
    return value


class FinalMLPConfig(PretrainedConfig):
    r"""FinalMLP on categorical fields: embeddings → two gated MLP streams → bilinear fusion.

    Args:
        field_vocab_sizes (`list[int]`): number of values of each categorical field; `input_ids`
            holds one 0-based index per field, in this order.
        embedding_dim (`int`): embedding size of every field.
        mode (`str`): "finalmlp" (feature gating + two streams + multi-head bilinear fusion),
            "dualmlp" (two plain MLP streams whose linear outputs are summed, the paper's
            DualMLP baseline) or "mlp" (one MLP + a linear output: the single-stream baseline).
        mlp1_hidden_units, mlp2_hidden_units (`list[int]`): widths of the two streams' hidden
            layers ("mlp" uses stream 1 only).
        dropout (`float`): dropout after each hidden activation of the streams.
        batch_norm (`bool`): batch normalisation before each stream activation.
        fs_hidden_units (`list[int]`): hidden widths of the feature-gating MLPs.
        fs1_context, fs2_context (`list[int]`): the fields (indices) whose embeddings are the
            context of stream 1's / stream 2's gate; empty: a learned context vector.
        gate_init (`str`): "identity" zero-initialises each gate's output layer, so the gate
            g = 2·sigmoid(MLP(context)) is exactly 1 at initialisation; "random" initialises it
            like every other linear layer.
        num_heads (`int`): heads of the bilinear fusion; must divide the last width of both streams.
        num_labels (`int`): 2 for click / no click (logits [0, z]: softmax gives sigmoid(z)); 1
            with problem_type="regression" for a scalar target; more for a multi-class field.
        initializer_range (`float`): std of the embeddings' normal init.
    """

    model_type = "finalmlp"

    def __init__(
        self,
        field_vocab_sizes: list[int] = (943, 1682, 7, 2, 21, 11, 19),
        embedding_dim: int = 10,
        mode: str = "finalmlp",
        mlp1_hidden_units: list[int] = (400, 400, 400),
        mlp2_hidden_units: list[int] = (800,),
        dropout: float = 0.2,
        batch_norm: bool = True,
        fs_hidden_units: list[int] = (800,),
        fs1_context: list[int] = (),
        fs2_context: list[int] = (),
        gate_init: str = "identity",
        num_heads: int = 10,
        initializer_range: float = 1e-4,
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=2)
        self.field_vocab_sizes = positive_int_list("field_vocab_sizes", field_vocab_sizes)
        self.embedding_dim = positive_int("embedding_dim", embedding_dim)
        self.mode = one_of("mode", mode, MODES)
        self.mlp1_hidden_units = positive_int_list("mlp1_hidden_units", mlp1_hidden_units)
        self.mlp2_hidden_units = positive_int_list("mlp2_hidden_units", mlp2_hidden_units)
        self.dropout = fraction("dropout", dropout)
        self.batch_norm = bool(batch_norm)
        self.fs_hidden_units = positive_int_list("fs_hidden_units", fs_hidden_units)
        self.fs1_context = _context_fields("fs1_context", fs1_context, len(self.field_vocab_sizes))
        self.fs2_context = _context_fields("fs2_context", fs2_context, len(self.field_vocab_sizes))
        self.gate_init = one_of("gate_init", gate_init, GATE_INITS)
        self.num_heads = positive_int("num_heads", num_heads)
        if self.mode == "finalmlp":
            for field, units in (("mlp1_hidden_units", self.mlp1_hidden_units), ("mlp2_hidden_units", self.mlp2_hidden_units)):
                if units[-1] % self.num_heads:
                    raise ValueError(f"num_heads={self.num_heads} must divide the last width of {field} ({units[-1]})")
        self.initializer_range = positive_float("initializer_range", initializer_range)
        super().__init__(**kwargs)
