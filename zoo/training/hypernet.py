"""The hypernetwork trainer (`training.trainer: hypernet`): one conditioning value γ per step.

A hypernetwork (architecture `hypernet`) learns the whole family θ(γ) at once: every step draws
one γ ~ U(gamma_low, gamma_high) for the batch, the model predicts the target net's weights for
that γ, and the loss is the γ-conditioned objective. The objective here (Ortiz et al.'s
"loss-mixing weight" setting, on a classification task): label smoothing of strength
ε = max_smoothing · γ, targets (1 − ε)·one-hot + ε·uniform. γ comes from a generator seeded by
(seed, step), so every process draws the same γ and a resumed run draws what an uninterrupted
one would. Evaluation (shared, at config.default_gamma) and the final metrics add the
unsmoothed accuracy at the two ends of the γ range: `eval_accuracy_gamma_low/high`.
"""
from __future__ import annotations

import torch

from ..errors import UserError
from .base import TrainOutcome, register_trainer
from .loop import SGDTrainer


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Mean cross-entropy against (1 − eps)·one-hot(labels) + eps·uniform."""
    target = torch.full_like(logits, eps / logits.shape[-1])
    target.scatter_add_(1, labels[:, None], torch.full((len(labels), 1), 1 - eps, dtype=logits.dtype, device=logits.device))
    return -(target * logits.log_softmax(-1)).sum(-1).mean()


def sample_gamma(seed: int, step: int, low: float, high: float) -> float:
    """The γ of training step `step` (the same in every process and after a resume)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


@register_trainer("hypernet")
class HyperNetTrainer(SGDTrainer):
    options: dict = {"gamma_low": 0.0, "gamma_high": 1.0, "max_smoothing": 0.5}
    supports_fsdp = True  # the plain loop with another loss

    def setup(self, run) -> None:
        model = run.unwrapped_model
        if getattr(model.config, "model_type", None) != "hypernet":
            raise UserError(f"training.trainer hypernet needs a hypernetwork (architecture hypernet), got {type(model).__name__}")
        low, high, smoothing = (run.options[k] for k in ("gamma_low", "gamma_high", "max_smoothing"))
        for name, value in (("gamma_low", low), ("gamma_high", high), ("max_smoothing", smoothing)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise UserError(f"training.trainer_options.{name} must be a number in [0, 1], got {value!r}")
        if low > high:
            raise UserError(f"training.trainer_options.gamma_low ({low}) is above gamma_high ({high})")
        super().setup(run)

    def training_step(self, run, batch: dict) -> torch.Tensor:
        o = run.options
        gamma = sample_gamma(run.settings["seed"], run.state["step"], o["gamma_low"], o["gamma_high"])
        logits = run.model(pixel_values=batch["pixel_values"], gamma=gamma).logits
        loss = smoothed_cross_entropy(logits, batch["labels"], o["max_smoothing"] * gamma)
        run.accelerator.backward(loss)
        if run.settings["max_grad_norm"]:
            run.accelerator.clip_grad_norm_(run.model.parameters(), run.settings["max_grad_norm"])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.optimizer.zero_grad(set_to_none=True)  # see SGDTrainer.training_step
        return loss

    def train(self, run) -> TrainOutcome:
        outcome = super().train(run)
        if outcome.finished:
            config = run.unwrapped_model.config
            default = config.default_gamma
            try:
                for end in ("low", "high"):
                    config.default_gamma = run.options[f"gamma_{end}"]
                    outcome.final[f"eval_accuracy_gamma_{end}"] = run.evaluate()["eval_accuracy"]
            finally:
                config.default_gamma = default
        return outcome
