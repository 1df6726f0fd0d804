"""Configuration of Temporal-Inception (Ma et al. 2017): multi-kernel 1-D temporal convolutions."""
from transformers import PretrainedConfig

from .zoo_common import fraction, label_kwargs, positive_int, positive_int_list


class TemporalInceptionConfig(PretrainedConfig):
    r"""Inception-style temporal ConvNet over the per-step feature matrix (steps × features):
    `num_blocks` blocks, each of parallel branches — a Conv1d for each of `kernel_sizes` and a
    max-pool(3) → Conv1d(1) branch, `channels` outputs each, ReLU — concatenated; then the mean
    over the real steps and a linear classifier. Padded steps are masked (zeros for the
    convolutions, −inf for the max-pool), so a padded batch gives the unpadded outputs.

    Args:
        input_size (`int`): features per time step.
        channels (`int`): output channels of each branch.
        kernel_sizes (`list[int]`): odd temporal kernel sizes of the convolution branches.
        num_blocks (`int`): stacked inception blocks.
        dropout (`float`): dropout before the classifier.
        max_steps (`int`): the longest sequence accepted.
        num_labels (`int`): number of classes.
    """

    model_type = "temporal_inception"

    def __init__(
        self,
        input_size: int = 1,
        channels: int = 32,
        kernel_sizes: list[int] = (1, 3, 5),
        num_blocks: int = 2,
        dropout: float = 0.0,
        max_steps: int = 1024,
        num_labels: int | None = None,
        **kwargs,
    ):
        kwargs = label_kwargs(num_labels, kwargs, default=2)
        for field, value in (("input_size", input_size), ("channels", channels), ("num_blocks", num_blocks),
                             ("max_steps", max_steps)):
            positive_int(field, value)
        kernel_sizes = positive_int_list("kernel_sizes", kernel_sizes)
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd (same-length convolutions), got {kernel_sizes}")
        self.input_size = input_size
        self.channels = channels
        self.kernel_sizes = kernel_sizes
        self.num_blocks = num_blocks
        self.dropout = fraction("dropout", dropout)
        self.max_steps = max_steps
        super().__init__(**kwargs)
