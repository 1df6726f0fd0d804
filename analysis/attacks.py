"""ℓ∞ adversarial attacks on a classifier given as a function of its inputs: FGSM (Goodfellow et
al. 2015) and PGD with random starts (Madry et al. 2018), and the accuracy under each.

`model(x) -> logits` (n × K, K ≥ 2) is any differentiable torch callable; labels are class
indices. The attacks maximise the margin loss max_{j≠y} z_j − z_y (for K = 2 the negative
signed margin: FGSM on it is the exact worst case of a linear classifier). `columns` limits
the perturbation to the leading input columns (e.g. not a constant bias feature); `clip`
keeps the perturbed inputs in a box.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["margin_loss", "fgsm", "pgd", "robust_accuracy"]


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per example: the largest wrong logit minus the true one (> 0 means misclassified)."""
    true = logits.gather(1, labels[:, None])[:, 0]
    wrong = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    return wrong - true


def _mask(x: torch.Tensor, columns: int | None) -> torch.Tensor:
    mask = torch.ones_like(x)
    if columns is not None:
        mask[:, columns:] = 0
    return mask


def _project(x0, x, epsilon, clip):
    x = torch.max(torch.min(x, x0 + epsilon), x0 - epsilon)
    if clip is not None:
        x = x.clamp(*clip)
    return x


def _gradient(model, x, labels):
    x = x.detach().requires_grad_(True)
    loss = margin_loss(model(x), labels)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def fgsm(model: Callable, x: torch.Tensor, labels: torch.Tensor, epsilon: float, columns: int | None = None,
         clip: tuple[float, float] | None = None) -> torch.Tensor:
    """One signed-gradient step of size ε: x + ε sign(∇ loss)."""
    _, grad = _gradient(model, x, labels)
    return _project(x, x + epsilon * grad.sign() * _mask(x, columns), epsilon, clip).detach()


def pgd(model: Callable, x: torch.Tensor, labels: torch.Tensor, epsilon: float, steps: int = 20,
        step_size: float | None = None, restarts: int = 1, columns: int | None = None,
        clip: tuple[float, float] | None = None, seed: int = 0) -> torch.Tensor:
    """Projected signed-gradient ascent on the margin loss from `restarts` starts (the clean input,
    then uniform points of the ball); per example the perturbation with the largest loss."""
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    mask = _mask(x, columns)
    gen = torch.Generator().manual_seed(seed)
    best, best_loss = x.detach().clone(), torch.full((len(x),), float("-inf"), dtype=x.dtype)
    for r in range(restarts):
        start = torch.rand(x.shape, generator=gen, dtype=x.dtype) * 2 - 1 if r else torch.zeros_like(x)
        xa = _project(x, x + epsilon * start * mask, epsilon, clip)
        for _ in range(steps + 1):
            loss, grad = _gradient(model, xa, labels)
            better = loss > best_loss
            best[better], best_loss[better] = xa[better].detach(), loss[better]
            xa = _project(x, xa + step_size * grad.sign() * mask, epsilon, clip).detach()
    return best


def robust_accuracy(model: Callable, x: torch.Tensor, labels: torch.Tensor, epsilon: float, attack: str = "pgd",
                    **kwargs) -> float:
    """Accuracy on the attacked inputs (attack: none | fgsm | pgd)."""
    if attack == "fgsm":
        x = fgsm(model, x, labels, epsilon, **{k: v for k, v in kwargs.items() if k in ("columns", "clip")})
    elif attack == "pgd":
        x = pgd(model, x, labels, epsilon, **kwargs)
    elif attack != "none":
        raise ValueError(f"attack must be none, fgsm or pgd, got {attack!r}")
    with torch.no_grad():
        return float((model(x).argmax(1) == labels).double().mean())
