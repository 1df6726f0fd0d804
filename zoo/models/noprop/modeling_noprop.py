"""NoProp-DT: `NoPropModel` (the denoising chain; AutoModel) and `NoPropForImageClassification`.

`NoPropForImageClassification.local_losses` gives one loss per block and one for the head, each
a function of that module's parameters only (the noised embeddings are sampled from the fixed
schedule and the fixed class embeddings, never from another block): the NoProp trainer
back-propagates each one into its own module, one at a time. `forward(..., labels)` instead runs
the whole chain and returns the cross-entropy of the final prediction, so the default SGD loop
trains the same blocks end to end by back-propagation (the paper's backprop baseline).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutputWithNoAttention

from .configuration_noprop import NoPropConfig
from .zoo_common import classification_loss, copy_, init, return_tuple


def cosine_alpha_bar(num_blocks: int, offset: float) -> list[float]:
    """ᾱ_t, t = 0..T: cos²(π/2·(1 − t/T + s)/(1 + s)); ᾱ_0 = 0 (noise), ᾱ_T ≈ 1 (the label)."""
    return [math.cos(math.pi / 2 * min(1.0, (1 - t / num_blocks + offset) / (1 + offset))) ** 2
            for t in range(num_blocks + 1)]


def posterior_coefficients(alpha_bar: list[float]) -> list[tuple[float, float]]:
    """(a_t, b_t), t = 1..T: the mean of q(z_t | z_{t−1}, u) = a_t·u + b_t·z_{t−1} (DDPM's posterior,
    read with ᾱ rising along the chain)."""
    out = []
    for t in range(1, len(alpha_bar)):
        prev, cur = alpha_bar[t - 1], alpha_bar[t]
        ratio = prev / cur
        a = math.sqrt(cur) * (1 - ratio) / (1 - prev)
        b = math.sqrt(ratio) * (1 - cur) / (1 - prev)
        out.append((a, b))
    return out


def snr(alpha_bar: float) -> float:
    return alpha_bar / (1 - alpha_bar)


class DenoisingBlock(nn.Module):
    """û = softmax(MLP([embed(x), embed(z)])) · E: a convex combination of the class embeddings."""

    def __init__(self, config: NoPropConfig):
        super().__init__()
        pixels = config.num_channels * config.image_size**2
        self.image = nn.Linear(pixels, config.hidden_size)
        self.label = nn.Linear(config.num_labels, config.hidden_size)
        self.hidden = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, x: torch.Tensor, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = torch.cat([F.relu(self.image(x)), F.relu(self.label(z))], -1)
        return torch.softmax(self.out(F.relu(self.hidden(h))), -1) @ embedding


class NoPropPreTrainedModel(PreTrainedModel):
    config_class = NoPropConfig
    base_model_prefix = "noprop"
    main_input_name = "pixel_values"
    _no_split_modules = ["DenoisingBlock"]

    def _init_weights(self, module):
        if module is getattr(self, "classifier", None):
            # the embeddings are one-hot: the head starts as the identity (argmax z_T), so the
            # chain's soft z_T is read the way the near-one-hot z_T ~ q(z_T | y) it trains on is
            copy_(module.weight, torch.eye(module.out_features, module.in_features))
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=5**0.5)
            bound = 1 / module.in_features**0.5
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, NoPropModel):
            copy_(module.embedding, torch.eye(module.config.num_labels))

    def init_weights(self):
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}


class NoPropModel(NoPropPreTrainedModel):
    """The T denoising blocks and the schedule: pixels → z_T (hidden_states: the flattened
    input, then z_1 … z_T)."""

    def __init__(self, config: NoPropConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        self.blocks = nn.ModuleList(DenoisingBlock(config) for _ in range(config.num_blocks))
        # the fixed class embeddings u_y (one-hot rows), saved with the model
        self.register_buffer("embedding", torch.eye(config.num_labels), persistent=True)
        self.alpha_bar = cosine_alpha_bar(config.num_blocks, config.schedule_offset)
        self.coefficients = posterior_coefficients(self.alpha_bar)
        self.post_init()

    def noised(self, labels: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z_t ~ q(z_t | y) = N(√ᾱ_t·u_y, (1 − ᾱ_t)·I) (noise from `generator`, else the global RNG)."""
        u = self.embedding[labels]
        noise = torch.randn(u.shape, generator=generator, dtype=u.dtype, device=u.device)
        return math.sqrt(self.alpha_bar[t]) * u + math.sqrt(1 - self.alpha_bar[t]) * noise

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        x = pixel_values.flatten(1)
        z = x.new_zeros(x.shape[0], self.config.num_labels)  # the mean of z_0 ~ N(0, I)
        states = [x]
        for block, (a, b) in zip(self.blocks, self.coefficients):
            z = a * block(x, z, self.embedding) + b * z
            states.append(z)
        out = BaseModelOutput(last_hidden_state=z, hidden_states=tuple(states) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class NoPropForImageClassification(NoPropPreTrainedModel):
    """`NoPropModel` + a linear head p(y | z_T)."""

    def __init__(self, config: NoPropConfig):
        super().__init__(config)
        self.noprop = NoPropModel(config, init_by_head=True)
        self.classifier = nn.Linear(config.num_labels, config.num_labels)
        self.post_init()
        self.noprop._init_by_head = False

    def local_loss(self, pixel_values: torch.Tensor, labels: torch.Tensor, index: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """The loss of module `index` of `local_modules()` (block index + 1, or the head at index T).

        Block t: η·T/2·(SNR_t − SNR_{t−1})·E‖û_t(x, z_{t−1}) − u_y‖² with z_{t−1} ~ q(z_{t−1} | y);
        head: cross-entropy of p(y | z_T), z_T ~ q(z_T | y). (The paper's KL term on z_0 is
        constant: the embeddings are fixed.) It depends on that module's parameters only.
        """
        backbone, T = self.noprop, self.config.num_blocks
        if not 0 <= index <= T:
            raise IndexError(f"module index {index} out of range 0..{T}")
        if index == T:
            return F.cross_entropy(self.classifier(backbone.noised(labels, T, generator)), labels)
        t, alpha_bar = index + 1, backbone.alpha_bar
        z_prev = backbone.noised(labels, t - 1, generator)
        weight = self.config.eta * T / 2 * (snr(alpha_bar[t]) - (snr(alpha_bar[t - 1]) if t > 1 else 0.0))
        u_hat = backbone.blocks[index](pixel_values.flatten(1), z_prev, backbone.embedding)
        return weight * (u_hat - backbone.embedding[labels]).square().sum(-1).mean()

    def local_losses(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        """[loss of block 1, …, loss of block T, loss of the head]: NoProp-DT's objective, split."""
        return [self.local_loss(pixel_values, labels, i) for i in range(self.config.num_blocks + 1)]

    def local_modules(self) -> list[nn.Module]:
        """The modules the losses of `local_losses` train, in the same order."""
        return [*self.noprop.blocks, self.classifier]

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.noprop(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(base.last_hidden_state)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
