"""MgNO (He, Liu, Xu 2023): `MgNOModel` (the hidden V-cycle layers, what AutoModel returns) and
`MgNOForOperatorLearning` (+ the output V-cycle layer; logits = the predicted field).

One linear operator W: f (c_in channels) ↦ u (c_out channels) is one V-cycle. On level ℓ
(grid n/2^ℓ) it starts from u_ℓ = 0, smooths u_ℓ ← u_ℓ + S_ℓ(f_ℓ − A_ℓ u_ℓ) (A_ℓ: c_out → c_in
and S_ℓ: c_in → c_out are 3 × 3 convolutions), restricts the residual f_{ℓ+1} = R_ℓ(f_ℓ − A_ℓ u_ℓ)
(a stride-2 4 × 4 convolution) and recurses; on the way back it adds the prolonged coarse
correction u_ℓ ← u_ℓ + P_ℓ u_{ℓ+1} (a stride-2 4 × 4 transposed convolution) and smooths again.
Zero padding imposes the zero Dirichlet boundary; circular padding a periodic one.

The layers are v_0 = (a − input_mean) / input_std, v_k = σ(W_k v_{k−1} + b_k) for k < L, and the
output u = output_scale · (W_L v_{L−1} + b_L): no lifting or projection layers. The loss is the
relative L2 error ‖u − u*‖ / ‖u*‖ per example, averaged over the batch.
"""
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ModelOutput

from .configuration_mgno import MgNOConfig, smoothing_steps
from .zoo_common import init, return_tuple

class VCycle(nn.Module):
    """One multigrid V-cycle as a linear operator between fields of c_in and c_out channels."""

    def __init__(self, c_in: int, c_out: int, pre_smoothing: list[int], post_smoothing: list[int],
                 padding_mode: str = "zeros"):
        super().__init__()
        levels = len(pre_smoothing)
        self.pre, self.post, self.padding_mode = list(pre_smoothing), list(post_smoothing), padding_mode

        def conv(a, b, k, stride=1):
            return nn.Conv2d(a, b, k, stride=stride, padding=1, bias=False, padding_mode=padding_mode)

        # A on the coarsest grid only acts from its second smoothing step on (nothing is restricted from it)
        self.A = nn.ModuleList(conv(c_out, c_in, 3) for _ in range(levels if self.pre[-1] > 1 else levels - 1))
        self.S = nn.ModuleList(conv(c_in, c_out, 3) for _ in range(levels))
        self.R = nn.ModuleList(conv(c_in, c_in, 4, stride=2) for _ in range(levels - 1))
        self.P = nn.ModuleList(nn.ConvTranspose2d(c_out, c_out, 4, stride=2, padding=1, bias=False) for _ in range(levels - 1))

    def prolong(self, level: int, u: torch.Tensor) -> torch.Tensor:
        if self.padding_mode == "circular":  # wrap one coarse cell each side, then crop the fine grid
            n = u.shape[-1]
            return self.P[level](F.pad(u, (1, 1, 1, 1), mode="circular"))[..., 2:2 + 2 * n, 2:2 + 2 * n]
        return self.P[level](u)

    def forward(self, f: torch.Tensor, level: int = 0) -> torch.Tensor:
        u = None
        for _ in range(self.pre[level]):
            u = self.S[level](f) if u is None else u + self.S[level](f - self.A[level](u))
        if u is None:
            u = f.new_zeros(f.shape[0], self.S[level].out_channels, *f.shape[2:])
        if level + 1 < len(self.pre):
            coarse = self.forward(self.R[level](f - self.A[level](u)), level + 1)
            u = u + self.prolong(level, coarse)
            for _ in range(self.post[level]):
                u = u + self.S[level](f - self.A[level](u))
        return u


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def relative_l2_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over examples of ‖prediction − target‖₂ / ‖target‖₂ (each example's whole field)."""
    if not target.is_floating_point():
        raise ValueError("MgNO regresses a field: labels must be a floating-point field, not integer class ids")
    if target.shape != prediction.shape:
        raise ValueError(f"labels must have the output field's shape {tuple(prediction.shape)}, got {tuple(target.shape)}")
    target = target.to(prediction.dtype)
    error = (prediction - target).flatten(1).norm(dim=1)
    return (error / target.flatten(1).norm(dim=1).clamp_min(torch.finfo(prediction.dtype).tiny)).mean()


class MgNOPreTrainedModel(PreTrainedModel):
    config_class = MgNOConfig
    base_model_prefix = "mgno"
    main_input_name = "pixel_values"
    _no_split_modules = ["VCycle"]

    def _init_weights(self, module):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):  # PyTorch's default init
            init.kaiming_uniform_(module.weight, a=5**0.5)
        elif isinstance(module, MgNOModel):
            for bias in module.biases:
                init.zeros_(bias)
        elif isinstance(module, MgNOForOperatorLearning):
            init.zeros_(module.output_bias)

    def init_weights(self):
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        n = self.config.resolution
        return {"pixel_values": torch.rand(2, self.config.in_channels, n, n)}

    def check_input(self, pixel_values: torch.Tensor) -> None:
        multiple = 2 ** self.config.num_levels
        if (pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.in_channels
                or pixel_values.shape[-1] % multiple or pixel_values.shape[-2] % multiple):
            raise ValueError(f"pixel_values must be (batch, in_channels={self.config.in_channels}, n, m) with n and m "
                             f"divisible by 2**num_levels = {multiple}, got shape {tuple(pixel_values.shape)}")


def vcycle(config: MgNOConfig, c_in: int, c_out: int) -> VCycle:
    pre = smoothing_steps("pre_smoothing", config.pre_smoothing, config.num_levels)
    post = smoothing_steps("post_smoothing", config.post_smoothing, config.num_levels)
    return VCycle(c_in, c_out, pre, post, config.padding_mode)


class MgNOModel(MgNOPreTrainedModel):
    """pixel_values a (batch, in_channels, n, n) → last_hidden_state v_{L−1} (batch, num_channels, n, n).
    hidden_states = (a, v_1, ..., v_{L−1}). Runs at any n divisible by 2**num_levels."""

    def __init__(self, config: MgNOConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        widths = [config.in_channels] + [config.num_channels] * (config.num_layers - 1)
        self.cycles = nn.ModuleList(vcycle(config, a, b) for a, b in zip(widths, widths[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(1, w, 1, 1)) for w in widths[1:])
        self.act = ACTIVATIONS[config.activation]()
        self.post_init()

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        self.check_input(pixel_values)
        v = (pixel_values - self.config.input_mean) / self.config.input_std
        states = [pixel_values]
        for cycle, bias in zip(self.cycles, self.biases):
            v = self.act(cycle(v) + bias)
            states.append(v)
        out = BaseModelOutput(last_hidden_state=v, hidden_states=tuple(states) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


@dataclass
class OperatorOutput(ModelOutput):
    """loss (relative L2, when labels are given), logits (the predicted field), hidden_states."""

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    hidden_states: Optional[tuple] = None


class MgNOForOperatorLearning(MgNOPreTrainedModel):
    """`MgNOModel` + the output V-cycle W_L: logits u (batch, out_channels, n, n)."""

    def __init__(self, config: MgNOConfig):
        super().__init__(config)
        self.mgno = MgNOModel(config, init_by_head=True)
        self.cycle = vcycle(config, config.num_channels, config.out_channels)
        self.output_bias = nn.Parameter(torch.zeros(1, config.out_channels, 1, 1))
        self.post_init()
        self.mgno._init_by_head = False

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.mgno(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = (self.cycle(base.last_hidden_state) + self.output_bias) * self.config.output_scale
        loss = relative_l2_loss(logits, labels) if labels is not None else None
        out = OperatorOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


@torch.no_grad()
def classical_vcycle(levels: int, omega: float = 0.8, sweeps: int = 2, coarse_sweeps: int = 20) -> VCycle:
    """A one-channel VCycle with a classical multigrid's kernels on `levels` + 1 grids: A the
    five-point Laplacian (times h²), S damped Jacobi (ω / 4), P bilinear cell-centred
    prolongation and R = Pᵀ (stride 2); `sweeps` pre- and post-smoothing steps per level,
    `coarse_sweeps` on the coarsest. The reference the learned kernels generalise."""
    cycle = VCycle(1, 1, [sweeps] * levels + [coarse_sweeps], [sweeps] * levels + [0])
    laplacian = torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    bilinear = torch.outer(*[torch.tensor([1.0, 3, 3, 1]) / 4] * 2)
    for A, S in zip(cycle.A, cycle.S):
        A.weight.copy_(laplacian[None, None])
        S.weight.zero_()
        S.weight[0, 0, 1, 1] = omega / 4
    for R, P in zip(cycle.R, cycle.P):
        R.weight.copy_(bilinear[None, None])
        P.weight.copy_(bilinear[None, None])
    return cycle
