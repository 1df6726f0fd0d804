"""Configuration of the single-layer transformer of the universal-approximation theorem (Gumaan 2025)."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, one_of, positive_float, positive_int

POSITIONAL = ("learned", "none")
NORMS = ("post", "pre", "none")


class OneLayerTransformerConfig(PretrainedConfig):
    r"""A sequence-to-sequence map on scalar sequences: x ∈ R^n → y ∈ R^n.

    Each scalar token is embedded linearly (plus a learned position embedding), passes one
    multi-head self-attention layer and one ReLU feed-forward layer, each with a residual
    connection and a LayerNorm, and is read out linearly to one number per position.

    Args:
        num_labels (`int`): the sequence length n: the model outputs one value per position, so
            `logits` is (batch, n). A regressor (the theorem's setting) says
            problem_type="regression"; without it the n outputs are class logits.
        hidden_size (`int`): width d of the token embeddings (the residual stream).
        num_heads (`int`): attention heads; must divide hidden_size.
        ffn_size (`int`): width of the ReLU feed-forward layer (the theorem's growing width).
        num_layers (`int`): attention + feed-forward blocks: 1 is the theorem's transformer; 2
            is the comparison model.
        positional (`str`): "learned" position embeddings, or "none" (the model is then
            permutation-equivariant: permuting the input permutes the output).
        norm (`str`): LayerNorm after each residual sum ("post", as in the original
            transformer), before each sublayer ("pre"), or none.
        initializer_range (`float`): std of the position embeddings' normal init.
    """

    model_type = "one_layer_transformer"

    def __init__(
        self,
        num_labels: int | None = None,
        hidden_size: int = 32,
        num_heads: int = 2,
        ffn_size: int = 128,
        num_layers: int = 1,
        positional: str = "learned",
        norm: str = "post",
        initializer_range: float = 0.02,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=8)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_heads = positive_int("num_heads", num_heads)
        if hidden_size % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide hidden_size={hidden_size}")
        self.ffn_size = positive_int("ffn_size", ffn_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.positional = one_of("positional", positional, POSITIONAL)
        self.norm = one_of("norm", norm, NORMS)
        self.initializer_range = positive_float("initializer_range", initializer_range)
        super().__init__(**kwargs)
