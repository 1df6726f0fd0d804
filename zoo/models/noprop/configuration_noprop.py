"""Configuration of the NoProp-DT image classifier."""
from transformers import PretrainedConfig

from .zoo_common import label_kwargs, positive_float, positive_int


class NoPropConfig(PretrainedConfig):
    r"""NoProp-DT (Li, Teh & Pascanu 2025): T blocks, each denoising a noised label embedding given the image.

    Block t (1..T) takes the image x and z_{t−1} and predicts the clean class embedding
    û_t = softmax(logits_t(x, z_{t−1})) · E (E: the fixed one-hot class embeddings). Training is
    local: block t learns from z_{t−1} ~ q(z_{t−1} | y) = N(√ᾱ_{t−1}·u_y, (1 − ᾱ_{t−1})·I) alone,
    its loss ``η·T/2·(SNR_t − SNR_{t−1})·‖û_t − u_y‖²`` reaching no other block
    (zoo.training.noprop). Inference runs the chain z_0 = 0 → z_1 → … → z_T with the
    diffusion posterior mean z_t = a_t·û_t + b_t·z_{t−1}, then a linear head on z_T.
    ᾱ follows the cosine schedule, rising from ᾱ_0 = 0 (pure noise) to ᾱ_T ≈ 1.

    Args:
        image_size (`int`), num_channels (`int`): the (square) input images.
        num_blocks (`int`): T, the number of denoising blocks (at least 1).
        hidden_size (`int`): width of each block's image and label branches.
        eta (`float`): η, the weight of the denoising losses.
        schedule_offset (`float`): s of the cosine schedule ᾱ(τ) = cos²(π/2·(1 − τ + s)/(1 + s)).
        num_labels (`int`): number of classes (= the embedding dimension).
    """

    model_type = "noprop"

    def __init__(
        self,
        image_size: int = 28,
        num_channels: int = 1,
        num_blocks: int = 10,
        hidden_size: int = 256,
        eta: float = 0.1,
        schedule_offset: float = 0.008,
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=10)
        self.image_size = positive_int("image_size", image_size)
        self.num_channels = positive_int("num_channels", num_channels)
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks (T) must be an integer >= 1, got {num_blocks!r}")
        self.num_blocks = num_blocks
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.eta = positive_float("eta", eta)
        self.schedule_offset = positive_float("schedule_offset", schedule_offset)
        super().__init__(**kwargs)
