"""vᵀHv without H v: second-order forward mode ("Taylor mode") through the loss.

Hutchinson's trace needs only the quadratic forms vᵀHv = d²/dε² L(θ + εv) at ε = 0, not the
products H v. Pushing a second-order tangent forward through the loss gives them in one forward
pass that carries, beside each value x, its first and second derivatives along v (ẋ, ẍ): the
primal values are computed once and shared by all K probes (the tangents carry a leading probe
axis). On a two-layer net that is one (probes x examples x units) matrix product per layer,
where a Hessian-vector product replays the gradient's graph backwards and back again.

The loss runs once as ordinary code under a ``TorchDispatchMode`` that sees every ATen
operation (after autograd's decompositions: ``linear`` arrives as ``t`` + ``addmm``) and, for
each one that touches a value with tangents, applies the operation's rule below. Nothing is
traced or compiled, so there is no set-up cost. An operation with tangent-carrying inputs and
no rule raises :class:`Unsupported`, and the caller (``HessianOperator.quadratic_forms``) falls
back to v·(H v). The rules assume the functions are twice differentiable where they are
evaluated (ReLU's kink is measure-zero: its second derivative is 0, as in autograd's double
backward).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["TaylorQuadraticForm", "Unsupported"]

aten = torch.ops.aten


class Unsupported(Exception):
    """The loss uses an operation on a tangent-carrying value that this module has no rule for."""


class _Jet:
    """A primal value with its first and second derivatives along the probes (None: zero)."""

    __slots__ = ("x", "d1", "d2")

    def __init__(self, x, d1=None, d2=None):
        self.x, self.d1, self.d2 = x, d1, d2


def _align(t: torch.Tensor | None, primal_ndim: int, out_ndim: int) -> torch.Tensor | None:
    """A tangent (K, *shape) reshaped so that it broadcasts like its primal against ``out_ndim``
    dimensions (numpy's right alignment, with the probe axis kept in front)."""
    if t is None or primal_ndim == out_ndim:
        return t
    return t.reshape(t.shape[0], *([1] * (out_ndim - primal_ndim)), *t.shape[1:])


def _add(*terms):
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _dim(d: int, ndim: int) -> int:
    """A primal dimension index as an index into its tangent (one probe axis in front)."""
    return (d % max(ndim, 1)) + 1


def _scale(t, factor):
    if t is None or (isinstance(factor, (int, float)) and factor == 1):
        return t
    return t * factor


# ---- rules ---------------------------------------------------------------------------------
# each takes the operation's arguments in schema order (a Jet for every tensor) and its primal
# output, and returns the output's (d1, d2); masks and indices (non-float outputs) never get here


def _linear_map(fn: Callable[[torch.Tensor], torch.Tensor]):
    """An operation linear in its one tensor argument, applied to the tangents by ``fn``."""

    def rule(args, out):
        a = args[0]
        return (None if a.d1 is None else fn(a, args, out, a.d1),
                None if a.d2 is None else fn(a, args, out, a.d2))
    return rule


def _view_like(a, args, out, t):
    return t.reshape(t.shape[0], *out.shape)


def _transpose_last(a, args, out, t):
    return t if a.x.dim() < 2 else t.transpose(-1, -2)


def _transpose(a, args, out, t):
    n = a.x.dim()
    return t.transpose(_dim(args[1], n), _dim(args[2], n))


def _permute(a, args, out, t):
    n = a.x.dim()
    return t.permute(0, *[_dim(d, n) for d in args[1]])


def _expand(a, args, out, t):
    return _align(t, a.x.dim(), out.dim()).expand(t.shape[0], *out.shape)


def _unsqueeze(a, args, out, t):
    return t.unsqueeze(_dim(args[1], out.dim()))


def _squeeze_dims(a, args, out, t):
    return t.reshape(t.shape[0], *out.shape)


def _to_copy(a, args, out, t):
    return t.to(out.dtype)


def _slice(a, args, out, t):
    dim = args[1] if len(args) > 1 else 0
    start = args[2] if len(args) > 2 else None
    end = args[3] if len(args) > 3 else None
    step = args[4] if len(args) > 4 else 1
    index = [slice(None)] * t.dim()
    index[_dim(dim, a.x.dim())] = slice(start, end, step)
    return t[tuple(index)]


def _select(a, args, out, t):
    return t.select(_dim(args[1], a.x.dim()), args[2])


def _reduce(kind: str):
    def fn(a, args, out, t):
        n = a.x.dim()
        # sum.default / mean.default reduce everything (their second argument, if any, is a dtype)
        dims = args[1] if len(args) > 1 and isinstance(args[1], (int, list, tuple)) else list(range(n))
        dims = [dims] if isinstance(dims, int) else list(dims)
        keepdim = bool(args[2]) if len(args) > 2 and isinstance(args[2], bool) else False
        if not dims:
            dims = list(range(n))
        shifted = [_dim(d, n) for d in dims]
        return t.sum(shifted, keepdim=keepdim) if kind == "sum" else t.mean(shifted, keepdim=keepdim)
    return fn


def _add_rule(sign: float):
    def rule(args, out):
        a, b = args[0], args[1]
        alpha = args[2] if len(args) > 2 else 1
        n = out.dim()
        if not isinstance(b, _Jet):
            return a.d1 if isinstance(a, _Jet) else None, a.d2 if isinstance(a, _Jet) else None
        if not isinstance(a, _Jet):
            a = _Jet(a)
        c = sign * alpha
        return (_add(_align(a.d1, a.x.dim(), n), _scale(_align(b.d1, b.x.dim(), n), c)),
                _add(_align(a.d2, a.x.dim(), n), _scale(_align(b.d2, b.x.dim(), n), c)))
    return rule


def _bilinear(product: Callable):
    """out = product(a, b), linear in each: d1 = ȧb + aḃ, d2 = äb + 2ȧḃ + ab̈ (Leibniz)."""

    def rule(a: _Jet, b: _Jet):
        d1 = _sum_fresh(None if a.d1 is None else product(a.d1, b.x), None if b.d1 is None else product(a.x, b.d1))
        cross = None if a.d1 is None or b.d1 is None else product(a.d1, b.d1).mul_(2)
        d2 = _sum_fresh(cross, None if a.d2 is None else product(a.d2, b.x),
                        None if b.d2 is None else product(a.x, b.d2))
        return d1, d2
    return rule


def _sum_fresh(*terms):
    """The sum of freshly computed terms (results of products, never a stored tangent), added
    in place into the first when the shapes allow: no new (probes x examples x units) buffer."""
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total.add_(t) if t.shape == total.shape else total + t
    return total


_matmul = _bilinear(torch.matmul)


def _mm_rule(args, out):
    return _matmul(args[0], args[1])


def _addmm_rule(args, out):
    c, a, b = args[0], args[1], args[2]
    beta = args[3] if len(args) > 3 else 1
    alpha = args[4] if len(args) > 4 else 1
    d1, d2 = _matmul(a, b)
    d1, d2 = _scale(d1, alpha), _scale(d2, alpha)
    if isinstance(c, _Jet):
        n = out.dim()
        # the products are fresh tensors of the output's full shape: the bias adds in place
        d1 = _sum_fresh(d1, _scale(_align(c.d1, c.x.dim(), n), beta))
        d2 = _sum_fresh(d2, _scale(_align(c.d2, c.x.dim(), n), beta))
    return d1, d2


def _mul_rule(args, out):
    a, b = args[0], args[1]
    if not isinstance(a, _Jet):
        a, b = b, a
    if not isinstance(b, _Jet):  # times a constant (a number or a tensor without tangents)
        return _scale(a.d1, b), _scale(a.d2, b)
    n = out.dim()
    a = _Jet(a.x, _align(a.d1, a.x.dim(), n), _align(a.d2, a.x.dim(), n))
    b = _Jet(b.x, _align(b.d1, b.x.dim(), n), _align(b.d2, b.x.dim(), n))
    return _bilinear(torch.mul)(a, b)


def _div_rule(args, out):
    a, b = args[0], args[1]
    if isinstance(b, _Jet) and (b.d1 is not None or b.d2 is not None):
        raise Unsupported("division by a quantity that depends on the parameters")
    divisor = b.x if isinstance(b, _Jet) else b
    return _scale(a.d1, 1 / divisor), _scale(a.d2, 1 / divisor)


def _neg_rule(args, out):
    a = args[0]
    return _scale(a.d1, -1), _scale(a.d2, -1)


def _pointwise(derivatives: Callable[[torch.Tensor, torch.Tensor, tuple], tuple]):
    """y = σ(x) elementwise: ẏ = σ'ẋ, ÿ = σ'ẍ + σ''ẋ²; ``derivatives(x, y, args)`` → (σ', σ'')
    (σ'' None where it is 0)."""

    def rule(args, out):
        a = args[0]
        if a.d1 is None and a.d2 is None:
            return None, None
        first, second = derivatives(a.x, out, args)
        d1 = _scale(a.d1, first)
        d2 = _add(_scale(a.d2, first), None if second is None or a.d1 is None else a.d1 * a.d1 * second)
        return d1, d2
    return rule


def _gelu(x, y, args):
    if (args[1] if len(args) > 1 else "none") != "none":
        raise Unsupported("gelu with the tanh approximation")
    density = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * density, density * (2 - x * x)


def _pow(x, y, args):
    p = args[1]
    if not isinstance(p, (int, float)):
        raise Unsupported("pow with a tensor exponent")
    return p * x ** (p - 1), (p * (p - 1) * x ** (p - 2)) if p not in (0, 1) else None


_POINTWISE = {
    aten.relu.default: lambda x, y, a: ((x > 0).to(x.dtype), None),
    aten.threshold.default: lambda x, y, a: ((x > a[1]).to(x.dtype), None),
    aten.leaky_relu.default: lambda x, y, a: (torch.where(x > 0, 1.0, a[1] if len(a) > 1 else 0.01).to(x.dtype), None),
    aten.tanh.default: lambda x, y, a: (1 - y * y, -2 * y * (1 - y * y)),
    aten.sigmoid.default: lambda x, y, a: (y * (1 - y), y * (1 - y) * (1 - 2 * y)),
    aten.exp.default: lambda x, y, a: (y, y),
    aten.log.default: lambda x, y, a: (1 / x, -1 / (x * x)),
    aten.gelu.default: _gelu,
    aten.pow.Tensor_Scalar: _pow,
}


def _log_softmax_rule(args, out):
    """u = x − logsumexp(x): u̇ = ẋ − E_p[ẋ], ü = ẍ − E_p[ẍ] − Var_p(ẋ), p = softmax(x)."""
    a = args[0]
    dim = _dim(args[1], a.x.dim())
    p = out.exp()
    mean = lambda t: (p * t).sum(dim, keepdim=True)  # noqa: E731 (p broadcasts over the probe axis)
    d1 = None if a.d1 is None else a.d1 - mean(a.d1)
    variance = None if a.d1 is None else (mean(a.d1 * a.d1) - mean(a.d1) ** 2).expand_as(a.d1)
    d2 = _add(None if a.d2 is None else a.d2 - mean(a.d2), _scale(variance, -1))
    return d1, d2


def _softmax_rule(args, out):
    """y = exp(u), u the log-softmax: ẏ = y u̇, ÿ = y (ü + u̇²)."""
    u1, u2 = _log_softmax_rule(args, out.log())
    return _scale(u1, out), None if u1 is None and u2 is None else out * _add(u2, None if u1 is None else u1 * u1)


def _nll_rule(args, out):
    """nll_loss_forward(x, target, weight, reduction, ignore_index) → (loss, total weight)."""
    x, target = args[0], args[1].x if isinstance(args[1], _Jet) else args[1]
    weight, reduction, ignore = args[2], args[3], args[4]
    if weight is not None:
        raise Unsupported("nll_loss with class weights")
    if x.x.dim() != 2:
        raise Unsupported("nll_loss on other than (examples, classes) inputs")
    keep = (target != ignore)
    index = target.clamp_min(0)

    def picked(t):
        if t is None:
            return None
        values = t.gather(2, index.view(1, -1, 1).expand(t.shape[0], -1, 1)).squeeze(2) * keep
        total = -values.sum(1)
        return total / keep.sum() if reduction == 1 else total if reduction == 2 else None

    if reduction not in (1, 2):
        raise Unsupported("nll_loss without a mean or sum reduction")
    return (picked(x.d1), None), (picked(x.d2), None)


def _mse_rule(args, out):
    """mse_loss(x, t, reduction): mean (x − t)²: d1 = 2 E[(x−t)ẋ], d2 = 2 E[ẋ² + (x−t)ẍ] (t fixed)."""
    x, target = args[0], args[1]
    reduction = args[2] if len(args) > 2 else 1
    if isinstance(target, _Jet) and (target.d1 is not None or target.d2 is not None):
        raise Unsupported("mse_loss with a target that depends on the parameters")
    residual = x.x - (target.x if isinstance(target, _Jet) else target)
    dims = list(range(1, x.x.dim() + 1))
    reduce = (lambda t: t.mean(dims)) if reduction == 1 else (lambda t: t.sum(dims)) if reduction == 2 else None
    if reduce is None:
        raise Unsupported("mse_loss without a mean or sum reduction")
    d1 = None if x.d1 is None else 2 * reduce(residual * x.d1)
    d2 = _add(None if x.d1 is None else 2 * reduce(x.d1 * x.d1), None if x.d2 is None else 2 * reduce(residual * x.d2))
    return d1, d2


def _bce_logits_rule(args, out):
    """binary_cross_entropy_with_logits(x, t, weight, pos_weight, reduction) = softplus(x) − t x."""
    x, target = args[0], args[1]
    if any(a is not None for a in args[2:4]):
        raise Unsupported("binary_cross_entropy_with_logits with weights")
    reduction = args[4] if len(args) > 4 else 1
    t = target.x if isinstance(target, _Jet) else target
    s = torch.sigmoid(x.x)
    dims = list(range(1, x.x.dim() + 1))
    reduce = (lambda v: v.mean(dims)) if reduction == 1 else (lambda v: v.sum(dims)) if reduction == 2 else None
    if reduce is None:
        raise Unsupported("binary_cross_entropy_with_logits without a mean or sum reduction")
    d1 = None if x.d1 is None else reduce((s - t) * x.d1)
    d2 = _add(None if x.d1 is None else reduce(s * (1 - s) * x.d1 * x.d1),
              None if x.d2 is None else reduce((s - t) * x.d2))
    return d1, d2


def _no_tangent(args, out):
    return None, None


_RULES: dict = {
    aten.t.default: _linear_map(_transpose_last),
    aten.transpose.int: _linear_map(_transpose),
    aten.permute.default: _linear_map(_permute),
    aten.view.default: _linear_map(_view_like),
    aten._unsafe_view.default: _linear_map(_view_like),
    aten.reshape.default: _linear_map(_view_like),
    aten.flatten.using_ints: _linear_map(_view_like),
    aten.squeeze.dim: _linear_map(_squeeze_dims),
    aten.squeeze.dims: _linear_map(_squeeze_dims),
    aten.squeeze.default: _linear_map(_squeeze_dims),
    aten.unsqueeze.default: _linear_map(_unsqueeze),
    aten.expand.default: _linear_map(_expand),
    aten.clone.default: _linear_map(lambda a, args, out, t: t.clone()),
    aten.alias.default: _linear_map(lambda a, args, out, t: t),
    aten._to_copy.default: _linear_map(_to_copy),
    aten.slice.Tensor: _linear_map(_slice),
    aten.select.int: _linear_map(_select),
    aten.sum.default: _linear_map(_reduce("sum")),
    aten.sum.dim_IntList: _linear_map(_reduce("sum")),
    aten.mean.default: _linear_map(_reduce("mean")),
    aten.mean.dim: _linear_map(_reduce("mean")),
    aten.add.Tensor: _add_rule(1.0),
    aten.sub.Tensor: _add_rule(-1.0),
    aten.mul.Tensor: _mul_rule,
    aten.div.Tensor: _div_rule,
    aten.neg.default: _neg_rule,
    aten.mm.default: _mm_rule,
    aten.bmm.default: _mm_rule,
    aten.matmul.default: _mm_rule,
    aten.addmm.default: _addmm_rule,
    aten._log_softmax.default: _log_softmax_rule,
    aten._softmax.default: _softmax_rule,
    aten.nll_loss_forward.default: _nll_rule,
    aten.mse_loss.default: _mse_rule,
    aten.binary_cross_entropy_with_logits.default: _bce_logits_rule,
    aten.detach.default: _no_tangent,
    aten.zeros_like.default: _no_tangent,
    aten.ones_like.default: _no_tangent,
}
_RULES.update({op: _pointwise(d) for op, d in _POINTWISE.items()})


def _positional(func, args: tuple, kwargs: dict) -> tuple:
    """The operation's arguments in its schema's order, keyword ones and defaults filled in (the
    rules read arguments by position: ``gelu``'s ``approximate``, ``_to_copy``'s ``dtype``)."""
    if not kwargs:
        return tuple(args)
    out = list(args)
    for argument in func._schema.arguments[len(args):]:
        if argument.name in kwargs:
            out.append(kwargs[argument.name])
        elif argument.has_default_value():
            out.append(argument.default_value)
        else:
            out.append(None)
    return tuple(out)


class _JetMode(TorchDispatchMode):
    """Applies the rules to every operation whose inputs carry tangents (``jets``: id → Jet)."""

    def __init__(self, jets: dict):
        super().__init__()
        self.jets = jets

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self._touches(args) and not (kwargs and self._touches(kwargs.values())):
            return out
        outputs = out if isinstance(out, tuple) else (out,)
        if not any(torch.is_tensor(o) and o.is_floating_point() for o in outputs):
            return out  # a mask or an index: no derivative
        rule = _RULES.get(func)
        if rule is None:
            raise Unsupported(f"no second-order rule for {func}")
        jets = tuple(self._jet(a) for a in _positional(func, args, kwargs))
        d1, d2 = rule(jets, out)
        if isinstance(out, tuple):  # (loss, total weight) of nll_loss_forward
            for o, a, b in zip(out, d1, d2):
                self._keep(o, a, b)
        else:
            self._keep(out, d1, d2)
        return out

    def _touches(self, values) -> bool:
        for a in values:
            if isinstance(a, (list, tuple)):
                if self._touches(a):
                    return True
            elif id(a) in self.jets and torch.is_tensor(a):
                return True
        return False

    def _jet(self, a):
        if torch.is_tensor(a):
            return self.jets[id(a)][1] if id(a) in self.jets else _Jet(a)
        if isinstance(a, (list, tuple)) and any(torch.is_tensor(x) and id(x) in self.jets for x in a):
            raise Unsupported("an operation on a list of tensors with tangents")
        return a

    def _keep(self, tensor, d1, d2):
        if torch.is_tensor(tensor) and (d1 is not None or d2 is not None):
            # the tensor is held as well, so that its id is not reused while the pass runs
            self.jets[id(tensor)] = (tensor, _Jet(tensor, d1, d2))


class TaylorQuadraticForm:
    """``form(tangents)`` → (K,) second derivatives d²/dε² loss(params + ε v_k), for tangents
    ``{name: (K, *shape)}`` over the parameters named in ``names``: one run of ``loss(params)``
    with the rules applied along the way (raises :class:`Unsupported` where one is missing)."""

    def __init__(self, loss: Callable[[dict], torch.Tensor], params: dict, names: Sequence[str]):
        self.loss, self.params, self.names = loss, params, list(names)

    @torch.no_grad()
    def __call__(self, tangents: dict) -> torch.Tensor:
        count = next(t.shape[0] for t in tangents.values())
        params = {n: self.params[n].detach().view_as(self.params[n]) for n in self.names}  # fresh objects
        jets = {id(params[n]): (params[n], _Jet(params[n], tangents.get(n), None)) for n in self.names}
        with _JetMode(jets):
            value = self.loss(params)
        if not (torch.is_tensor(value) and value.dim() == 0 and value.is_floating_point()):
            raise Unsupported("the loss is not a floating-point scalar")
        jet = jets.get(id(value))
        if jet is None or jet[1].d2 is None:  # the loss does not depend on the parameters
            return torch.zeros(count, dtype=value.dtype, device=value.device)
        return jet[1].d2.reshape(count)
