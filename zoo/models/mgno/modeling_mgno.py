"""MgNO (He, Liu, Xu 2023): `MgNOModel`, layers of multigrid V-cycles with learned convolutions.

One linear operator W: f (c_in channels) ↦ u (c_out channels) is one V-cycle. On level ℓ
(grid n/2^ℓ) it starts from u_ℓ = 0, smooths u_ℓ ← u_ℓ + S_ℓ(f_ℓ − A_ℓ u_ℓ) (A_ℓ: c_out → c_in
and S_ℓ: c_in → c_out are 3 × 3 convolutions), restricts the residual f_{ℓ+1} = R_ℓ(f_ℓ − A_ℓ u_ℓ)
(a stride-2 4 × 4 convolution) and recurses; on the way back it adds the prolonged coarse
correction u_ℓ ← u_ℓ + P_ℓ u_{ℓ+1} (a stride-2 4 × 4 transposed convolution) and smooths again.
Zero padding imposes the zero Dirichlet boundary; circular padding a periodic one.

Not yet a registered zoo architecture: this folder has no ARCHITECTURE (see its __init__.py).
"""
import torch
from torch import nn
from torch.nn import functional as F

from .configuration_mgno import MgNOConfig


class VCycle(nn.Module):
    """One multigrid V-cycle as a linear operator between fields of c_in and c_out channels."""

    def __init__(self, c_in: int, c_out: int, pre_smoothing: list[int], post_smoothing: list[int],
                 padding_mode: str = "zeros"):
        super().__init__()
        levels = len(pre_smoothing)
        self.pre, self.post, self.padding_mode = list(pre_smoothing), list(post_smoothing), padding_mode

        def conv(a, b, k, stride=1):
            return nn.Conv2d(a, b, k, stride=stride, padding=1, bias=False, padding_mode=padding_mode)

        self.A = nn.ModuleList(conv(c_out, c_in, 3) for _ in range(levels))
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


class MgNOLayers(nn.Module):
    """v_k = σ(W_k v_{k−1} + b_k), the last layer linear; returns every field (input first)."""

    def __init__(self, config: MgNOConfig):
        super().__init__()
        widths = [config.in_channels] + [config.num_channels] * (config.num_layers - 1) + [config.out_channels]
        self.cycles = nn.ModuleList(VCycle(widths[k], widths[k + 1], config.pre_smoothing, config.post_smoothing,
                                           config.padding_mode) for k in range(config.num_layers))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(1, w, 1, 1)) for w in widths[1:])
        self.act = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}[config.activation]()
        self.multiple = 2 ** config.num_levels

    def forward(self, a: torch.Tensor) -> list[torch.Tensor]:
        if a.dim() != 4 or a.shape[-1] % self.multiple or a.shape[-2] % self.multiple:
            raise ValueError(f"the input must be (batch, channels, n, n) with n divisible by 2**num_levels = "
                             f"{self.multiple}, got shape {tuple(a.shape)}")
        fields = [a]
        for k, (cycle, bias) in enumerate(zip(self.cycles, self.biases)):
            v = cycle(fields[-1]) + bias
            fields.append(v if k == len(self.cycles) - 1 else self.act(v))
        return fields
