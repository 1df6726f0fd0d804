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
import math
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
    """The G + k B-spline bases of order k at every x: (..., n) → (..., G + k, n), by scatter.

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
    row = torch.where(inside, i, torch.full_like(i, intervals)).unsqueeze(-2)  # + k − m below
    powers = [torch.ones_like(u)]
    for _ in range(order):
        powers.append(powers[-1] * u)
    values = torch.einsum("mp,p...n->...mn", _pieces_tensor(order, x), torch.stack(powers))
    offsets = torch.arange(order, -1, -1, dtype=x.dtype, device=x.device).view(-1, 1)  # k − m
    padded = x.new_zeros(*x.shape[:-1], grid_size + 3 * order + 1, x.shape[-1])
    padded = padded.scatter(-2, (row + offsets).to(torch.long), values)
    return padded[..., order: grid_size + 2 * order, :]


def cox_de_boor_bases(x: torch.Tensor, low: float, high: float, grid_size: int, order: int) -> torch.Tensor:
    """The same bases by the full Cox–de Boor recursion over all G + 2k knot intervals (reference):
    (..., n) → (..., G + k, n)."""
    h = (high - low) / grid_size
    knots = (low + h * torch.arange(-order, grid_size + order + 1, dtype=x.dtype, device=x.device)).view(-1, 1)
    x = x.unsqueeze(-2)
    bases = ((x >= knots[:-1]) & (x < knots[1:])).to(x.dtype)
    for d in range(1, order + 1):
        left = (x - knots[: -(d + 1)]) / (knots[d:-1] - knots[: -(d + 1)]) * bases[..., :-1, :]
        right = (knots[d + 1:] - x) / (knots[d + 1:] - knots[1:-d]) * bases[..., 1:, :]
        bases = left + right
    return bases


# Without autograd, the elementwise passes run in place on row chunks of about this many values
# (~512 KB): a chunk's passes then stay in the core's cache instead of streaming the whole
# (batch, G + k, in) tensor through memory once per pass (1.5× faster here at batch 128, 784 inputs).
CHUNK_VALUES = 1 << 17


def _chunked(fn, x: torch.Tensor, num_bases: int) -> torch.Tensor | None:
    """fn(x) row chunk by row chunk into one (batch, num_bases, n) tensor; None when autograd
    needs the graph (then the caller runs its out-of-place form) or x is not (batch, n)."""
    if (torch.is_grad_enabled() and x.requires_grad) or x.dim() != 2:
        return None
    rows = max(1, CHUNK_VALUES // (num_bases * x.shape[1]))
    if rows >= x.shape[0]:
        return fn(x)
    out = x.new_empty(x.shape[0], num_bases, x.shape[1])
    for start in range(0, x.shape[0], rows):
        out[start:start + rows] = fn(x[start:start + rows])
    return out


def fused_bspline_bases(x: torch.Tensor, low: float, high: float, grid_size: int, order: int) -> torch.Tensor:
    """The same G + k bases, each in closed form: (..., n) → (..., G + k, n); the fast path.

    On a uniform grid every basis is the centred cardinal B-spline M_k at its distance from its
    centre, d = |x − c_j|/h, and M_k(d) = 1/k!·Σ_{l < (k+1)/2} (−1)^l·C(k+1, l)·ReLU((k+1)/2 − l − d)^k
    (truncated powers; the even symmetry of M_k halves the sum): a few fused elementwise passes
    over the (G + k)-fold tensor, no recursion, no integer indices, no scatter. Without autograd
    (the first layer's pixels) the passes run in place.
    """
    inplace = not (torch.is_grad_enabled() and x.requires_grad)
    if inplace and x.dim() == 2 and order > 0:
        return _chunked(lambda rows: _fused_bspline(rows, low, high, grid_size, order, True), x, grid_size + order)
    return _fused_bspline(x, low, high, grid_size, order, inplace)


def _fused_bspline(x: torch.Tensor, low: float, high: float, grid_size: int, order: int, inplace: bool) -> torch.Tensor:
    h = (high - low) / grid_size
    centres = torch.arange(grid_size + order, dtype=x.dtype, device=x.device).view(-1, 1)
    # position in knot units minus the offset of basis 0's centre: basis j is centred at j
    t = x.unsqueeze(-2) * (1.0 / h) + (order - low / h - (order + 1) / 2) - centres
    if order == 0:  # N_0 is the indicator of [t_j, t_{j+1}): t ∈ [−1/2, 1/2)
        return ((t >= -0.5) & (t < 0.5)).to(x.dtype)
    d = t.abs_() if inplace else t.abs()
    out = None
    terms = (order + 2) // 2
    for l in range(terms):
        coef = (-1) ** l * math.comb(order + 1, l) / math.factorial(order)
        shift = (order + 1) / 2 - l
        if inplace and l == terms - 1:  # d is not needed after the last term
            base = d.neg_().add_(shift).clamp_(min=0)
        else:
            base = (shift - d).clamp_(min=0) if inplace else (shift - d).clamp(min=0)
        power = base
        if order > 1:
            power = base * base
            for _ in range(order - 2):
                power = power.mul_(base) if inplace else power * base
        if out is None:
            out = power.mul_(coef) if inplace else power * coef
        else:
            out = out.add_(power, alpha=coef) if inplace else out + coef * power
    return out


def bump_grid(low: float, high: float, grid_size: int, order: int):
    """ReLU-KAN / AF-KAN intervals [a_i, b_i): a_i = t_i, b_i = t_{i+k+1}, i = 0..G + k − 1
    (as (G + k, 1) columns, to broadcast against x.unsqueeze(-2))."""
    h = (high - low) / grid_size
    a = (low + h * torch.arange(-order, grid_size, dtype=torch.float64)).view(-1, 1)
    return a, a + (order + 1) * h


def relu_kan_bases(x: torch.Tensor, low: float, high: float, grid_size: int, order: int) -> torch.Tensor:
    """ReLU-KAN: R_i(x) = (r·ReLU(x − a_i)·ReLU(b_i − x))², r = 4/(b − a)² so that max R_i = 1;
    (..., n) → (G + k, ..., n).

    Fused: with centre c_i and half-width w = (b − a)/2, (x − a)(b − x) = w² − (x − c)² and
    r·w² = 1, so R_i = ReLU(1 − ((x − c_i)/w)²)²: the scaling is done once on x, then four
    elementwise ops on the (G + k)-fold tensor (against seven for the literal product).
    """
    a, _ = bump_grid(low, high, grid_size, order)
    half = (order + 1) * (high - low) / grid_size / 2
    centres = ((a + half) / half).to(x)

    if torch.is_grad_enabled() and x.requires_grad and x.dim() == 2:
        return _ReluKanBases.apply(x, low, high, grid_size, order)

    def inplace(rows):  # the same, in place
        return (rows.unsqueeze(-2) * (1 / half) - centres).square_().neg_().add_(1).clamp_(min=0).square_()

    out = _chunked(inplace, x, grid_size + order)
    return out if out is not None else F.relu(1 - (x.unsqueeze(-2) * (1 / half) - centres).square()).square()


class _ReluKanBases(torch.autograd.Function):
    """ReLU-KAN's bases with a hand-written backward: the forward runs the in-place, chunked form
    and saves only x (autograd would keep four (batch, G + k, n) intermediates); the backward is
    dR/dx = −4·t·ReLU(1 − t²)/w with t = (x − c)/w, summed against the incoming gradient."""

    @staticmethod
    def forward(ctx, x, low, high, grid_size, order):
        ctx.save_for_backward(x)
        ctx.grid = (low, high, grid_size, order)
        return relu_kan_bases(x.detach(), low, high, grid_size, order)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        low, high, grid_size, order = ctx.grid
        a, _ = bump_grid(low, high, grid_size, order)
        half = (order + 1) * (high - low) / grid_size / 2
        t = x.unsqueeze(-2) * (1 / half) - ((a + half) / half).to(x)
        slope = t.square().neg_().add_(1).clamp_(min=0).mul_(t).mul_(grad)
        return slope.sum(-2).mul_(-4 / half), None, None, None, None


def af_kan_bases(x: torch.Tensor, low: float, high: float, grid_size: int, order: int, activation: str,
                 function: str, normalise: bool) -> torch.Tensor:
    """AF-KAN's basis values (batch, G + k, n): a function combination of x1 = act(x − a_i),
    x2 = act(b_i − x).

    With `normalise`, min-max scaled to [0, 1] over each example's (bases × inputs) (AF-KAN
    scales over the whole batch tensor; per example keeps predictions independent of the batch).
    """
    a, b = bump_grid(low, high, grid_size, order)
    act = ACTIVATION_FUNCTIONS[activation]
    x = x.unsqueeze(-2)
    x1, x2 = act(x - a.to(x)), act(b.to(x) - x)
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
        lo = values.amin(dim=(-2, -1), keepdim=True)
        hi = values.amax(dim=(-2, -1), keepdim=True)
        values = (values - lo) / (hi - lo).clamp_min(1e-12)
    return values


BSPLINE_BASES = {"fused": fused_bspline_bases, "local": local_bspline_bases, "cox_de_boor": cox_de_boor_bases}


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
        """(batch, in) → (batch, G + k, in): the basis values of each input."""
        args = (x, self.low, self.high, self.grid_size, self.order)
        if self.basis == "bspline":
            return BSPLINE_BASES[self.impl](*args)
        if self.basis == "relu":
            return relu_kan_bases(*args)
        return af_kan_bases(*args, *self.af)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.basis == "af":
            phi = self.bases(x)
            score = torch.matmul(self.reduce.weight[0], phi)  # (batch, in)
            if self.reduce.bias is not None:
                score = score + self.reduce.bias
            if self.reduction == "global_attn":
                attention = torch.softmax(score / self.temperature.clamp(min=1.0), dim=-1)
                z = attention * phi.sum(-2)
            else:
                z = score
            return F.linear(ACTIVATION_FUNCTIONS[self.af[0]](self.norm(z)), self.weight)
        x = self.norm(x)
        # Σ_j B_j(x) @ W_j as one matrix product: (batch, (G + k)·in) @ ((G + k)·in, out)
        if self.basis == "bspline":
            flat = self.bases(x).flatten(-2)
            return torch.addmm(F.linear(F.silu(x), self.base_weight), flat, self.spline_weight.view(-1, self.out_features))
        return torch.addmm(self.bias, self.bases(x).flatten(-2), self.weight.view(-1, self.out_features))


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
