"""FinalMLP (Mao et al. 2023): a backbone `FinalMLPModel` (field embeddings → two MLP streams,
what AutoModel returns) and `FinalMLPForClickPrediction` (+ the streams' fusion → click logit).

FinalMLP: stream i sees the embeddings e gated by g_i = 2·sigmoid(MLP_i(context_i)) (feature
selection), and the two stream outputs o₁, o₂ are fused per head h by
z_h = b + w₁ᵀo₁ʰ + w₂ᵀo₂ʰ + o₁ʰᵀ W₃ʰ o₂ʰ, z = Σ_h z_h (multi-head bilinear aggregation).
`mode="dualmlp"` drops the gates and fuses by the sum of two linear outputs (DualMLP);
`mode="mlp"` keeps stream 1 and a linear output (the single-stream MLP).
"""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .configuration_finalmlp import FinalMLPConfig
from .zoo_common import classification_loss, init, return_tuple


@dataclass
class FinalMLPOutput(ModelOutput):
    """`logits`: (batch, num_labels); for two labels [0, z], so softmax(logits)[:, 1] = sigmoid(z).
    `hidden_states` = (input_ids, embeddings (batch, fields·dim), stream 1 output[, stream 2 output])."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class MLPStream(nn.Sequential):
    """[Linear → BatchNorm → ReLU → Dropout] per hidden width (FuxiCTR's MLP_Block order)."""

    def __init__(self, in_features: int, widths: list[int], dropout: float, batch_norm: bool):
        layers = []
        for width in widths:
            layers += [nn.Linear(in_features, width)]
            layers += [nn.BatchNorm1d(width)] if batch_norm else []
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            in_features = width
        super().__init__(*layers)


class FeatureGate(nn.Module):
    """g = 2·sigmoid(MLP(context)), one gate per embedding coordinate; the context is the
    concatenated embeddings of `context_fields`, or a learned vector when there are none."""

    def __init__(self, context_fields: list[int], embedding_dim: int, hidden: list[int], out_features: int):
        super().__init__()
        self.context_fields = list(context_fields)
        self.context_bias = None if self.context_fields else nn.Parameter(torch.zeros(1, embedding_dim))
        in_features = embedding_dim * max(1, len(self.context_fields))
        layers = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(in_features, out_features)
        self.output.is_gate_output = True  # gate_init="identity" zeroes it (_init_weights)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.context_fields:
            context = embeddings[:, self.context_fields].flatten(1)
        else:
            context = self.context_bias.expand(embeddings.shape[0], -1)
        return 2 * torch.sigmoid(self.output(self.hidden(context)))


class BilinearFusion(nn.Module):
    """z = b + w₁ᵀo₁ + w₂ᵀo₂ + Σ_h o₁ʰᵀ W₃ʰ o₂ʰ, the heads being equal slices of o₁ and o₂."""

    def __init__(self, dim1: int, dim2: int, num_heads: int, out_features: int):
        super().__init__()
        self.num_heads = num_heads
        self.linear1 = nn.Linear(dim1, out_features)
        self.linear2 = nn.Linear(dim2, out_features, bias=False)
        self.bilinear = nn.Parameter(torch.empty(num_heads, dim1 // num_heads, dim2 // num_heads, out_features))

    def forward(self, o1: torch.Tensor, o2: torch.Tensor) -> torch.Tensor:
        h1 = o1.reshape(o1.shape[0], self.num_heads, -1)
        h2 = o2.reshape(o2.shape[0], self.num_heads, -1)
        return self.linear1(o1) + self.linear2(o2) + torch.einsum("bhi,hijo,bhj->bo", h1, self.bilinear, h2)


class FinalMLPPreTrainedModel(PreTrainedModel):
    config_class = FinalMLPConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    _no_split_modules = ["MLPStream"]

    def _init_weights(self, module):
        # The reference implementation's init (FuxiCTR): embeddings N(0, 1e-4²), linear layers
        # Xavier-normal with zero bias; the gates' output layers at zero ("identity": g = 1).
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, FeatureGate):
            if module.context_bias is not None:
                init.zeros_(module.context_bias)
        elif getattr(module, "is_gate_output", False) and self.config.gate_init == "identity":
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, BilinearFusion):
            init.xavier_normal_(module.bilinear.view(-1, module.bilinear.shape[-1]))
        elif isinstance(module, nn.Linear):
            init.xavier_normal_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def init_weights(self):
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        sizes = torch.tensor(self.config.field_vocab_sizes)
        return {"input_ids": (torch.rand(4, len(sizes)) * sizes).long()}


class FinalMLPModel(FinalMLPPreTrainedModel):
    """input_ids (batch, fields) → `last_hidden_state`: the stream outputs, concatenated [o₁, o₂]
    (o₁ alone for mode="mlp")."""

    def __init__(self, config: FinalMLPConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        # one table for all fields; field f's rows start at offsets[f] (plain ints: no buffer to load)
        sizes = list(config.field_vocab_sizes)
        self.offsets = [sum(sizes[:f]) for f in range(len(sizes))]
        self.embedding = nn.Embedding(sum(sizes), config.embedding_dim)
        in_features = len(sizes) * config.embedding_dim
        self.stream1 = MLPStream(in_features, config.mlp1_hidden_units, config.dropout, config.batch_norm)
        self.stream2 = None if config.mode == "mlp" else MLPStream(in_features, config.mlp2_hidden_units, config.dropout, config.batch_norm)
        self.gate1 = self.gate2 = None
        if config.mode == "finalmlp":
            self.gate1 = FeatureGate(config.fs1_context, config.embedding_dim, config.fs_hidden_units, in_features)
            self.gate2 = FeatureGate(config.fs2_context, config.embedding_dim, config.fs_hidden_units, in_features)
        self.post_init()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(batch, fields) indices → (batch, fields, embedding_dim); an index out of its field's range is an error."""
        sizes = self.config.field_vocab_sizes
        if input_ids.dim() != 2 or input_ids.shape[1] != len(sizes):
            raise ValueError(f"input_ids must be (batch, {len(sizes)}) field indices, got shape {tuple(input_ids.shape)}")
        input_ids = input_ids.long()
        bad = (input_ids < 0) | (input_ids >= torch.tensor(sizes, device=input_ids.device))
        if bad.any():
            field = int(bad.any(0).nonzero()[0])
            raise ValueError(f"input_ids field {field} holds {int(input_ids[bad[:, field], field][0])}, outside "
                             f"[0, {sizes[field]}) (config.field_vocab_sizes[{field}])")
        return self.embedding(input_ids + torch.tensor(self.offsets, device=input_ids.device))

    def forward(self, input_ids, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        embeddings = self.embed(input_ids)
        flat = embeddings.flatten(1)
        x1 = flat if self.gate1 is None else flat * self.gate1(embeddings)
        outputs = [self.stream1(x1)]
        if self.stream2 is not None:
            x2 = flat if self.gate2 is None else flat * self.gate2(embeddings)
            outputs.append(self.stream2(x2))
        hidden = torch.cat(outputs, dim=1)
        states = (input_ids, flat, *outputs) if output_hidden_states else None
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class FinalMLPForClickPrediction(FinalMLPPreTrainedModel):
    """`FinalMLPModel` + the fusion: bilinear (finalmlp), a linear layer on [o₁, o₂] (dualmlp: the
    sum of the two streams' linear outputs) or on o₁ (mlp)."""

    def __init__(self, config: FinalMLPConfig):
        super().__init__(config)
        self.backbone = FinalMLPModel(config, init_by_head=True)
        out = 1 if config.num_labels <= 2 else config.num_labels
        dim1 = config.mlp1_hidden_units[-1]
        dim2 = config.mlp2_hidden_units[-1]
        if config.mode == "finalmlp":
            self.fusion = BilinearFusion(dim1, dim2, config.num_heads, out)
        else:
            self.fusion = nn.Linear(dim1 + (dim2 if config.mode == "dualmlp" else 0), out)
        self.post_init()
        self.backbone._init_by_head = False

    def forward(self, input_ids, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.backbone(input_ids, output_hidden_states=output_hidden_states, return_dict=True)
        hidden = base.last_hidden_state
        if self.config.mode == "finalmlp":
            dim1 = self.config.mlp1_hidden_units[-1]
            z = self.fusion(hidden[:, :dim1], hidden[:, dim1:])
        else:
            z = self.fusion(hidden)
        logits = torch.cat([torch.zeros_like(z), z], dim=1) if self.config.num_labels == 2 else z
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = FinalMLPOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
