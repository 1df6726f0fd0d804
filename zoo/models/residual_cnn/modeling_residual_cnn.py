"""The residual CNN: a backbone `ResidualCNNModel` (AutoModel) and `ResidualCNNForImageClassification`.

The residual branches are the same modules in both layouts (``branches.0.conv`` ...), so the
layout is a choice of forward pass, not of parameters. The parallel layout runs all branches as
one wide convolution (their weights stacked along the output channels) and sums the branch
outputs: the "single broad layer" of Bermeitinger et al.
"""
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_residual_cnn import ResidualCNNConfig
from .zoo_common import classification_loss, init, return_tuple


class ResidualBranch(nn.Module):
    """F(z) = ReLU(Conv z), filters → filters, size-preserving. `act` outputs the branch's units."""

    def __init__(self, filters: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(filters, filters, kernel_size, padding=kernel_size // 2)
        self.act = nn.ReLU()

    def forward(self, z):
        return self.act(self.conv(z))


class ResidualCNNPreTrainedModel(PreTrainedModel):
    config_class = ResidualCNNConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    _no_split_modules = ["ResidualBranch"]

    def _init_weights(self, module):
        # PyTorch's default init for conv and linear layers.
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            fan_in = module.weight[0].numel()
            init.uniform_(module.bias, -(fan_in**-0.5), fan_in**-0.5)

    def init_weights(self):
        # A backbone built by its head leaves its weights to the head's one init pass.
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}


class ResidualCNNModel(ResidualCNNPreTrainedModel):
    """Stem and residual stage: pixels → the residual stream's final map (no classifier).

    `last_hidden_state` is the (batch, filters, side, side) map, `pooler_output` its flattening
    (what the head reads). hidden_states = (pixels, the stem's output, the stream after
    each branch) in the sequential layout, (pixels, the stem's output, the stream after the
    summed branches) in the parallel one.
    """

    def __init__(self, config: ResidualCNNConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        k = config.kernel_size
        self.stem = nn.Conv2d(config.num_channels, config.filters, k, stride=config.stem_stride, padding=k // 2)
        self.stem_act = nn.ReLU()
        self.branches = nn.ModuleList(ResidualBranch(config.filters, k) for _ in range(config.depth))
        self.post_init()

    def parallel_branches(self, z):
        """Σ_i F_i(z), all branches as one convolution of depth × filters output channels."""
        weight = torch.cat([b.conv.weight for b in self.branches])
        bias = torch.cat([b.conv.bias for b in self.branches])
        out = F.relu(F.conv2d(z, weight, bias, padding=self.config.kernel_size // 2))
        return out.unflatten(1, (self.config.depth, self.config.filters)).sum(1)

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        z = self.stem_act(self.stem(pixel_values))
        hidden_states = [pixel_values, z]
        if self.config.layout == "parallel":
            z = z + self.parallel_branches(z)
            hidden_states.append(z)
        else:
            for branch in self.branches:
                z = z + branch(z)
                hidden_states.append(z)
        out = BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=z, pooler_output=z.flatten(1),
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
        )
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class ResidualCNNForImageClassification(ResidualCNNPreTrainedModel):
    """`ResidualCNNModel` + flatten → Linear classifier."""

    def __init__(self, config: ResidualCNNConfig):
        super().__init__(config)
        self.backbone = ResidualCNNModel(config, init_by_head=True)
        side = (config.image_size - 1) // config.stem_stride + 1  # odd kernel, padding k // 2
        self.classifier = nn.Linear(config.filters * side * side, config.num_labels)
        self.post_init()
        self.backbone._init_by_head = False

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.backbone(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(base.pooler_output)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
