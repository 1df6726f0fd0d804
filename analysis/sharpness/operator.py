"""The Hessian of a model's loss on fixed batches, as a linear operator on the flat parameter vector.

``HessianOperator(model, batches)`` differentiates the loss with respect to every parameter that
requires grad (frozen parameters and buffers stay fixed) through ``torch.func``: the loss is a
pure function of a parameter dict (``functional_call``), its Hessian-vector product is the
pullback of its gradient (``vjp`` of ``grad``: the graph of L and ∇L built once, then replayed)
or forward-over-reverse (``jvp`` of ``grad``), and a stack of vectors goes through ``vmap`` so
that all probes share one graph. Nothing of size P × P is built unless :meth:`exact` is asked
for (tiny models only).

The loss over several batches is the example-weighted mean of the batch losses, so the operator
is the Hessian of the mean loss over all the examples, whatever the batch size.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vjp, vmap

from ..errors import UserError
from .names import LOSSES, MODES

__all__ = ["HessianOperator", "LOSSES", "MODES", "batch_size_of"]


def batch_size_of(batch: dict) -> int:
    for value in batch.values():
        if torch.is_tensor(value) and value.dim() > 0:
            return int(value.shape[0])
    raise UserError("a batch holds no tensors")


def _logits(output):
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, (tuple, list)):
        logits = output[1] if len(output) > 1 and torch.is_tensor(output[0]) and output[0].dim() == 0 else output[0]
    if logits is None and torch.is_tensor(output):
        logits = output
    if logits is None:
        raise UserError(f"the model's output ({type(output).__name__}) has no logits")
    return logits


def _loss_from(output, batch: dict, loss: str):
    if loss == "model":
        value = getattr(output, "loss", None)
        if value is None and isinstance(output, (tuple, list)) and output and torch.is_tensor(output[0]) \
                and output[0].dim() == 0:
            value = output[0]
        if value is None:
            raise UserError("the model returned no loss for these labels; pick --loss cross_entropy or mse")
        return value
    logits = _logits(output)
    labels = batch.get("labels")
    if labels is None:
        raise UserError(f"--loss {loss} needs a labels column")
    if loss == "cross_entropy":
        if labels.is_floating_point():
            raise UserError("--loss cross_entropy needs integer class labels; the labels are floating point")
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long())
    if not labels.is_floating_point():
        # one-hot by comparison, not F.one_hot: that checks the labels' range by reading a value,
        # which a traced loss (the second-order forward mode) cannot do
        labels = labels.long()[..., None] == torch.arange(logits.shape[-1], device=labels.device)
    return nn.functional.mse_loss(logits.reshape(labels.shape), labels.to(logits.dtype))


class HessianOperator:
    """H = ∇²L(θ) at the model's current parameters θ, for L the mean loss over ``batches``.

    ``batches``: dicts of model keyword arguments (``labels`` included when ``loss="model"``),
    all on the model's device. ``loss``: one of :data:`LOSSES`. ``params``: names of the
    parameters to differentiate (default: every parameter that requires grad).
    """

    def __init__(self, model: nn.Module, batches: Sequence[dict], *, loss: str = "model",
                 params: Iterable[str] | None = None, mode: str = "reverse"):
        if loss not in LOSSES:
            raise UserError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        if mode not in MODES:
            raise UserError(f"unknown Hessian-vector product mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode = mode
        self._pulls = None
        self.model = model.eval()  # dropout off: the Hessian of a deterministic loss
        self.loss = loss
        named = dict(model.named_parameters())
        if params is None:
            names = [n for n, p in named.items() if p.requires_grad]
        else:
            names = list(params)
            missing = [n for n in names if n not in named]
            if missing:
                raise UserError(f"the model has no parameter {', '.join(missing)}")
        if not names:
            raise UserError(f"{type(model).__name__} has no parameters that require grad; "
                            "there is no Hessian to measure")
        self.names = names
        self.params = {n: named[n].detach() for n in names}
        self.fixed = {n: p.detach() for n, p in named.items() if n not in self.params}
        self.fixed.update(dict(model.named_buffers()))
        self.shapes = [self.params[n].shape for n in names]
        self.sizes = [self.params[n].numel() for n in names]
        self.dim = int(sum(self.sizes))
        self.dtype = self.params[names[0]].dtype
        self.device = self.params[names[0]].device
        self.batches = list(batches)
        if not self.batches:
            raise UserError("no examples to measure the loss on")
        counts = [batch_size_of(b) for b in self.batches]
        total = float(sum(counts))
        self.examples = int(total)
        self.weights = [c / total for c in counts]
        self.quadratic_method: str | None = None  # how quadratic_forms computes vᵀHv, once asked

    # ---- flat vectors <-> parameter dicts ------------------------------------------------
    def flatten(self, tensors: dict) -> torch.Tensor:
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def unflatten(self, vector: torch.Tensor) -> dict:
        pieces = torch.split(vector, self.sizes)
        return {n: piece.view(shape) for n, piece, shape in zip(self.names, pieces, self.shapes)}

    def theta(self) -> torch.Tensor:
        """The flat parameter vector θ."""
        return self.flatten(self.params)

    # ---- the loss and its derivatives ----------------------------------------------------
    def _batch_loss(self, batch: dict) -> Callable[[dict], torch.Tensor]:
        def f(params: dict) -> torch.Tensor:
            output = functional_call(self.model, {**self.fixed, **params}, args=(), kwargs=batch)
            return _loss_from(output, batch, self.loss)
        return f

    def value(self) -> float:
        """L(θ), the mean loss over all examples."""
        with torch.no_grad():
            return float(sum(w * self._batch_loss(b)(self.params) for w, b in zip(self.weights, self.batches)))

    def gradient(self) -> torch.Tensor:
        """∇L(θ), flat."""
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for w, b in zip(self.weights, self.batches):
            total += w * self.flatten(grad(self._batch_loss(b))(self.params))
        return total

    def hvp(self, vector: torch.Tensor) -> torch.Tensor:
        """H v for one flat vector v (shape (P,))."""
        return self.hvps(vector.unsqueeze(0))[0]

    def _pullbacks(self) -> list:
        """Per batch, the vector-Jacobian product of ∇L_b: reverse-over-reverse, the graph of
        L_b and its gradient built once and kept, so every later H v replays only its backward."""
        if self._pulls is None:
            self._pulls = [vjp(grad(self._batch_loss(b)), self.params)[1] for b in self.batches]
        return self._pulls

    def hvps(self, vectors: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """H V for a stack of flat vectors (K, P) → (K, P): ``vmap`` over the probes, so each
        chunk of ``chunk`` probes (default all) is one batched pass through the graph.

        ``mode="reverse"`` (default): the pullback of ∇L (``vjp`` of ``grad``), its graph built
        once per operator; ``mode="forward"``: forward-over-reverse (``jvp`` of ``grad``),
        recomputed each call (no graph kept between calls, less memory)."""
        if vectors.dim() != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (K, {self.dim}), got {tuple(vectors.shape)}")
        vectors = vectors.to(dtype=self.dtype, device=self.device)
        chunk = vectors.shape[0] if not chunk else chunk
        out = torch.zeros_like(vectors)
        if self.mode == "reverse":
            functions = [lambda v, pull=pull: self.flatten(pull(self.unflatten(v))[0]) for pull in self._pullbacks()]
        else:
            functions = []
            for b in self.batches:
                g = grad(self._batch_loss(b))
                functions.append(lambda v, g=g: self.flatten(jvp(g, (self.params,), (self.unflatten(v),))[1]))
        for w, one in zip(self.weights, functions):
            batched = vmap(one)
            for start in range(0, vectors.shape[0], chunk):
                try:
                    out[start:start + chunk] += w * batched(vectors[start:start + chunk])
                except RuntimeError as error:
                    if self.mode == "forward" and "ZeroTensor" in str(error):
                        raise UserError("forward-over-reverse Hessian-vector products fail on this loss in this "
                                        "torch version (mse_loss); use mode='reverse'") from None
                    raise
        return out

    def quadratic_forms(self, vectors: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """vᵀHv for a stack of flat vectors (K, P) → (K,): what Hutchinson's trace needs.

        By second-order forward mode through the loss where every operation on the way has a
        rule (:mod:`.taylor`: one forward pass carrying the tangents of ``chunk`` probes at a time,
        default all, and no gradient graph), else
        as v·(H v) through :meth:`hvps`; ``quadratic_method`` says which ran, and why."""
        from .taylor import TaylorQuadraticForm, Unsupported

        if vectors.dim() != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (K, {self.dim}), got {tuple(vectors.shape)}")
        vectors = vectors.to(dtype=self.dtype, device=self.device)
        if self.quadratic_method in (None, "taylor"):
            chunk = chunk or vectors.shape[0]
            out = torch.zeros(vectors.shape[0], dtype=self.dtype, device=self.device)
            try:
                for start in range(0, vectors.shape[0], chunk):
                    block = vectors[start:start + chunk]
                    pieces = torch.split(block, self.sizes, dim=1)
                    tangents = {n: piece.view(block.shape[0], *shape)
                                for n, piece, shape in zip(self.names, pieces, self.shapes)}
                    for w, b in zip(self.weights, self.batches):
                        out[start:start + chunk] += w * TaylorQuadraticForm(self._batch_loss(b), self.params,
                                                                             self.names)(tangents)
                self.quadratic_method = "taylor"
                return out
            except Unsupported as reason:
                self.quadratic_method = f"hvp ({reason})"
        return (vectors * self.hvps(vectors, chunk=chunk)).sum(1)

    def exact(self, max_params: int = 4096) -> torch.Tensor:
        """The whole P × P Hessian, as H applied to the identity's rows in chunks (the operator's
        own Hessian-vector products); tiny models only. Not ``torch.func.hessian``: its vmapped
        forward-over-reverse gets layer norm's Hessian wrong in torch 2.13 (by 1e-2 on a tiny
        net, tests/test_sharpness.py; cf. pytorch/pytorch#196700, layer norm's forward-mode second
        derivative), where the products agree with torch.autograd's to 1e-15."""
        if self.dim > max_params:
            raise UserError(f"the exact Hessian of {self.dim} parameters is too large (limit {max_params}); "
                            "use the estimators, or raise the limit")
        identity = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        total = self.hvps(identity, chunk=256)
        return 0.5 * (total + total.T)
