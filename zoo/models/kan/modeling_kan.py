"""Kolmogorov–Arnold networks: a backbone `KANModel` (AutoModel) and `KANForImageClassification`.

One layer class, `KANLayer`, with three bases (config.basis):

- ``bspline``: ``y = W_b·silu(x) + W_s·B(x)`` with B the order-k B-spline bases on a uniform grid.
  On a uniform grid only k + 1 bases are non-zero at any x, and they are the k + 1 pieces of
  the cardinal B-spline evaluated at the local coordinate u = frac((x − t_0)/h): fixed
  polynomials of u (`cardinal_bspline_pieces`). `local_bspline_bases` evaluates just those,
  in closed form, and places them by index (a scatter) — no recursion over all G + 2k knot
  intervals. `cox_de_boor_bases` is the full-basis Cox–de Boor recursion, kept as the
  reference (config.bspline_impl="cox_de_boor"; tests check both agree).
- ``relu``: ReLU-KAN's bases ``(r·ReLU(x − a_i)·ReLU(b_i − x))²``, one fused broadcast.
- ``af``: AF-KAN: bases from an activation and a function combination, reduced to one value per
  input by attention (or a shared linear map), normalised, then one linear map.
"""
from fractions import Fraction
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutputWithNoAttention

from .configuration_kan import KANConfig
from .zoo_common import classification_loss, init, return_tuple

ACTIVATION_FUNCTIONS = {
    "relu": F.relu, "silu": F.silu, "gelu": F.gelu, "elu": F.elu, "selu": F.selu,
    "softplus": F.softplus, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "leaky_relu": F.leaky_relu,
}


@lru_cache(maxsize=None)
def cardinal_bspline_pieces(order: int) -> tuple[tuple[float, ...], ...]:
    """Coefficients c[m][p] with N_k(u + m) = Σ_p c[m][p]·u^p on u ∈ [0, 1), m = 0..k.

    N_k is the cardinal B-spline of order k (support [0, k + 1)). For x in knot interval i of a
    uniform grid with local coordinate u, basis B_{i−m}(x) = N_k(u + m). Computed exactly (in
    fractions) by the recursion N_d(t) = t/d·N_{d−1}(t) + (d + 1 − t)/d·N_{d−1}(t − 1).
    """
    pieces = [[Fraction(1)]]  # N_0(u) = 1 on [0, 1)
    for d in range(1, order + 1):
        new = []
        for m in range(d + 1):
            poly = [Fraction(0)] * (d + 1)
            if m < d:  # (u + m)/d · N_{d−1}(u + m)
                for p, c in enumerate(pieces[m]):
                    poly[p] += c * m / d
                    poly[p + 1] += c / d
            if m > 0:  # (d + 1 − u − m)/d · N_{d−1}(u + m − 1)
                for p, c in enumerate(pieces[m - 1]):
                    poly[p] += c * (d + 1 - m) / d
                    poly[p + 1] -= c / d
            new.append(poly)
        pieces = new
    return tuple(tuple(float(c) for c in poly) for poly in pieces)


_PIECES: dict = {}


def _pieces_tensor(order: int, like: torch.Tensor) -> torch.Tensor:
    key = (order, like.dtype, like.device)
    if key not in _PIECES:
        _PIECES[key] = torch.tensor(cardinal_bspline_pieces(order), dtype=like.dtype, device=like.device)
    return _PIECES[key]  # (piece m, power p)


# Basis values are laid out bases-first, (G + k, *x.shape): every op then writes contiguous rows,
# and the layer contracts them with one batched matmul against weights (G + k, in, out).

def local_bspline_bases(x: torch.Tensor, low: float, high: float, grid_size: int, order: int) -> torch.Tensor:
    """The G + k B-spline bases of order k at every x: (..., n) → (G + k, ..., n); the fast path.

    Knots t_j = low + (j − k)·h, j = 0..G + 2k, h = (high − low)/G; basis B_j lives on
    [t_j, t_{j+k+1}). In knot interval i (local coordinate u) only B_{i−k}..B_i are non-zero,
    B_{i−m} = N_k(u + m): k + 1 fixed polynomials of u, scattered to rows j = i − m. Rows that
    fall off the basis range (near the grid ends) land in padding rows that are cut off; an x
    outside all knots is sent wholly into the padding.
    """
    h = (high - low) / grid_size
    intervals = grid_size + 2 * order
    s = x * (1.0 / h) + (order - low / h)  # position in knot units: knot j at s = j
    i = torch.floor(s)
    u = s - i
    inside = (s >= 0) & (s < intervals)
    row = torch.where(inside, i, torch.full_like(i, intervals)).to(torch.long)  # + k − m below
    powers = [torch.ones_like(u)]
    for _ in range(order):
        powers.append(powers[-1] * u)
    values = (_pieces_tensor(order, x) @ torch.stack(powers).view(order + 1, -1)).view(order + 1, *x.shape)
    offsets = torch.arange(order, -1, -1, device=x.device).view(-1, *([1] * x.dim()))  # k − m
    padded = x.new_zeros(grid_size + 3 * order + 1, *x.shape).scatter(0, row + offsets, values)
    return padded[order: grid_size + 2 * order]


def cox_de_boor_bases(x: torch.Tensor, low: float, high: float, grid_size: int, order: int) -> torch.Tensor:
    """The same bases by the full Cox–de Boor recursion over all G + 2k knot intervals (reference)."""
    h = (high - low) / grid_size
    knots = (low + h * torch.arange(-order, grid_size + order + 1, dtype=x.dtype, device=x.device)).view(-1, *([1] * x.dim()))
    x = x.unsqueeze(0)
    bases = ((x >= knots[:-1]) & (x < knots[1:])).to(x.dtype)
    for d in range(1, order + 1):
        left = (x - knots[: -(d + 1)]) / (knots[d:-1] - knots[: -(d + 1)]) * bases[:-1]
        right = (knots[d + 1:] - x) / (knots[d + 1:] - knots[1:-d]) * bases[1:]
        bases = left + right
    return bases


def bump_grid(low: float, high: float, grid_size: int, order: int, like: torch.Tensor):
    """ReLU-KAN / AF-KAN intervals [a_i, b_i): a_i = t_i, b_i = t_{i+k+1}, i = 0..G + k − 1
    (shaped to broadcast against (1, *like.shape))."""
    h = (high - low) / grid_size
    a = (low + h * torch.arange(-order, grid_size, dtype=like.dtype, device=like.device)).view(-1, *([1] * like.dim()))
    return a, a + (order + 1) * h


def relu_kan_bases(x: torch.Tensor, low: float, high: float, grid_size: int, order: int) -> torch.Tensor:
    """ReLU-KAN: R_i(x) = (r·ReLU(x − a_i)·ReLU(b_i − x))², r = 4/(b − a)² so that max R_i = 1;
    (..., n) → (G + k, ..., n).

    Fused: with centre c_i and half-width w = (b − a)/2, (x − a)(b − x) = w² − (x − c)² and
    r·w² = 1, so R_i = ReLU(1 − ((x − c_i)/w)²)²: the scaling is done once on x, then four
    elementwise ops on the (G + k)-fold tensor (against seven for the literal product).
    """
    a, b = bump_grid(low, high, grid_size, order, x)
    half = (order + 1) * (high - low) / grid_size / 2
    return F.relu(1 - (x.unsqueeze(0) * (1 / half) - (a + half) / half).square()).square()


def af_kan_bases(x: torch.Tensor, low: float, high: float, grid_size: int, order: int, activation: str,
                 function: str, normalise: bool) -> torch.Tensor:
    """AF-KAN's basis values (G + k, batch, n): a function combination of x1 = act(x − a_i),
    x2 = act(b_i − x).

    With `normalise`, min-max scaled to [0, 1] over each example's (bases × inputs) (AF-KAN
    scales over the whole batch tensor; per example keeps predictions independent of the batch).
    """
    a, b = bump_grid(low, high, grid_size, order, x)
    act = ACTIVATION_FUNCTIONS[activation]
    x = x.unsqueeze(0)
    x1, x2 = act(x - a), act(b - x)
    if function == "quad1":
        values = (x1 * x2).square()
    elif function == "quad2":
        values = x1 * x2 + x1.square() + x2.square()
    elif function == "sum":
        values = x1 + x2
    elif function == "prod":
        values = x1 * x2
    elif function == "sum_prod":
        values = x1 + x2 + x1 * x2
    elif function == "cubic1":
        values = (x1 + x2) * (x1.square() + x2.square())
    else:  # cubic2
        values = (x1 * x2) ** 3
    if normalise:
        lo = values.amin(dim=(0, -1), keepdim=True)
        hi = values.amax(dim=(0, -1), keepdim=True)
        values = (values - lo) / (hi - lo).clamp_min(1e-12)
    return values


def make_norm(kind: str, features: int) -> nn.Module:
    return {"none": nn.Identity, "layer": nn.LayerNorm, "batch": nn.BatchNorm1d}[kind](*(() if kind == "none" else (features,)))


class KANLayer(nn.Module):
    """One KAN layer in_features → out_features with the config's basis."""

    def __init__(self, in_features: int, out_features: int, config: KANConfig):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.basis, self.impl = config.basis, config.bspline_impl
        self.grid_size, self.order = config.grid_size, config.spline_order
        self.low, self.high = config.grid_range
        self.num_bases = self.grid_size + self.order
        if config.basis == "af":
            self.af = (config.af_activation, config.af_function, config.af_function_norm)
            self.reduction = config.af_reduction
            # a bias would be a no-op under the attention's softmax over the inputs (zero gradient)
            self.reduce = nn.Linear(self.num_bases, 1, bias=config.af_reduction == "multistep")
            self.temperature = nn.Parameter(torch.empty(()))
            self.norm = make_norm(config.norm, in_features)
            self.weight = nn.Parameter(torch.empty(out_features, in_features))
            return
        self.norm = make_norm(config.norm, in_features)
        if config.basis == "bspline":
            self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
            self.spline_weight = nn.Parameter(torch.empty(self.num_bases, in_features, out_features))
        else:  # relu
            self.weight = nn.Parameter(torch.empty(self.num_bases, in_features, out_features))
            self.bias = nn.Parameter(torch.empty(out_features))

    def reset_parameters(self) -> None:
        fan = self.in_features**-0.5
        if self.basis == "bspline":
            init.uniform_(self.base_weight, -fan, fan)
            init.uniform_(self.spline_weight, -fan, fan)  # the bases sum to 1: like one more input per feature
        elif self.basis == "relu":
            bound = (self.in_features * self.num_bases) ** -0.5
            init.uniform_(self.weight, -bound, bound)
            init.uniform_(self.bias, -bound, bound)
        else:
            init.uniform_(self.weight, -fan, fan)
            init.uniform_(self.reduce.weight, -(self.num_bases**-0.5), self.num_bases**-0.5)
            if self.reduce.bias is not None:
                init.zeros_(self.reduce.bias)
            init.constant_(self.temperature, float(self.in_features) ** 0.5)

    def bases(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in) → (G + k, batch, in): the basis values of each input."""
        args = (x, self.low, self.high, self.grid_size, self.order)
        if self.basis == "bspline":
            return (local_bspline_bases if self.impl == "local" else cox_de_boor_bases)(*args)
        if self.basis == "relu":
            return relu_kan_bases(*args)
        return af_kan_bases(*args, *self.af)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.basis == "af":
            phi = self.bases(x)
            score = torch.tensordot(self.reduce.weight[0], phi, dims=1)  # (batch, in)
            if self.reduce.bias is not None:
                score = score + self.reduce.bias
            if self.reduction == "global_attn":
                attention = torch.softmax(score / self.temperature.clamp(min=1.0), dim=-1)
                z = attention * phi.sum(0)
            else:
                z = score
            return F.linear(ACTIVATION_FUNCTIONS[self.af[0]](self.norm(z)), self.weight)
        x = self.norm(x)
        # Σ_j B_j(x) @ W_j: one batched matmul over the G + k bases, summed
        if self.basis == "bspline":
            return torch.bmm(self.bases(x), self.spline_weight).sum(0) + F.linear(F.silu(x), self.base_weight)
        return torch.bmm(self.bases(x), self.weight).sum(0) + self.bias


class KANPreTrainedModel(PreTrainedModel):
    config_class = KANConfig
    base_model_prefix = "kan"
    main_input_name = "pixel_values"
    _no_split_modules = ["KANLayer"]

    def _init_weights(self, module):
        if isinstance(module, KANLayer):
            module.reset_parameters()
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    def init_weights(self):
        if not getattr(self, "_init_by_head", False):
            super().init_weights()

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(4, c.num_channels, c.image_size, c.image_size)}


class KANModel(KANPreTrainedModel):
    """The hidden KAN layers: flattened pixels → the last hidden layer's outputs."""

    def __init__(self, config: KANConfig, init_by_head: bool = False):
        super().__init__(config)
        self._init_by_head = init_by_head
        widths = [config.num_channels * config.image_size**2, *config.hidden_sizes]
        self.layers = nn.ModuleList(KANLayer(widths[i], widths[i + 1], config) for i in range(len(config.hidden_sizes)))
        self.post_init()

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        hidden = pixel_values.flatten(1)
        hidden_states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden)
            hidden_states.append(hidden)
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=tuple(hidden_states) if output_hidden_states else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class KANForImageClassification(KANPreTrainedModel):
    """`KANModel` + a KAN output layer to the classes (a KAN is KAN layers all the way)."""

    def __init__(self, config: KANConfig):
        super().__init__(config)
        self.kan = KANModel(config, init_by_head=True)
        self.classifier = KANLayer(config.hidden_sizes[-1], config.num_labels, config)
        self.post_init()
        self.kan._init_by_head = False

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.kan(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(base.last_hidden_state)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
