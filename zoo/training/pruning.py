"""Iterative magnitude pruning with weight rewinding (`imp`), and Activating-while-Pruning on top of it.

The recipe's epochs are split into `cycles` + 1 equal training phases. After every phase but
the last, the trainer prunes `prune_fraction` of the weights still alive in the prunable layers
(every nn.Linear and nn.Conv2d weight except the classifier's) by |w| — per layer
(`scope: layer`, torch.nn.utils.prune.l1_unstructured) or over all of them at once
(`scope: global`, prune.global_unstructured) — then rewinds the surviving weights to their
values at step `rewind_step` (0: the initialisation, the lottery-ticket rewind), clears the
optimiser state and restarts the learning-rate schedule. After `cycles` cycles the sparsity is
1 − (1 − prune_fraction)^cycles.

AP (Activating-while-Pruning, `ap_fraction` > 0): each cycle additionally removes that fraction
of the still-alive weights chosen among the *negative* ones that changed least since the rewind
point (|w − w_rewind| smallest), which lowers the dead neuron rate (analysis.dnr measures it).
Per-cycle accuracy and sparsity go into metrics.json ("imp"). Masks and the rewind point are
saved with every checkpoint (imp_state.safetensors), so --resume continues the same cycle.
"""
from __future__ import annotations

import math

import torch

from ..errors import UserError
from .base import TrainOutcome, register_trainer
from .loop import SGDTrainer
from .sparse import option_fraction, option_int

IMP_STATE = "imp_state.safetensors"


def prunable_weights(model) -> dict[str, torch.nn.Parameter]:
    """name → weight of every nn.Linear / nn.Conv2d except the last nn.Linear (the classifier)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    head = linears[-1] if linears else None
    return {f"{name}.weight": m.weight for name, m in model.named_modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and name != head}


def magnitude_masks(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], fraction: float,
                    scope: str = "layer") -> dict[str, torch.Tensor]:
    """New 0/1 masks: remove round(fraction · alive) of the alive weights with the smallest |w|,
    in each tensor (scope "layer") or among all of them together ("global") — the masks
    torch.nn.utils.prune's L1 pruning gives when applied again to a pruned tensor."""
    new = {}
    if scope == "layer":
        for name, w in weights.items():
            new[name] = _prune_smallest(w.detach().abs(), masks[name], fraction)
        return new
    flat_scores = torch.cat([w.detach().abs().reshape(-1) for w in weights.values()])
    flat_masks = torch.cat([masks[n].reshape(-1) for n in weights])
    flat = _prune_smallest(flat_scores, flat_masks, fraction)
    start = 0
    for name, w in weights.items():
        new[name] = flat[start:start + w.numel()].view_as(w)
        start += w.numel()
    return new


def _prune_smallest(scores: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """`mask` with round(fraction · alive) more zeros, at the alive entries with the smallest scores."""
    alive = mask.reshape(-1).bool()
    count = round(fraction * int(alive.sum()))
    out = mask.clone().reshape(-1)
    if count:
        candidates = scores.reshape(-1).clone()
        candidates[~alive] = math.inf
        out[torch.topk(candidates, count, largest=False).indices] = 0
    return out.view_as(mask)


def ap_masks(weights: dict[str, torch.Tensor], rewind: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
             fraction: float) -> dict[str, torch.Tensor]:
    """AP's extra removal, per layer: round(fraction · alive) of the alive weights, taken among
    the alive negative ones with the smallest change |w − w_rewind| (fewer if fewer are negative)."""
    new = {}
    for name, w in weights.items():
        w = w.detach()
        mask = masks[name]
        alive = mask.reshape(-1).bool()
        count = round(fraction * int(alive.sum()))
        negative = alive & (w.reshape(-1) < 0)
        count = min(count, int(negative.sum()))
        out = mask.clone().reshape(-1)
        if count:
            change = (w - rewind[name]).abs().reshape(-1).clone()
            change[~negative] = math.inf
            out[torch.topk(change, count, largest=False).indices] = 0
        new[name] = out.view_as(mask)
    return new


@register_trainer("imp")
class IMPTrainer(SGDTrainer):
    """Iterative magnitude pruning with rewinding; `ap_fraction` > 0 adds Activating-while-Pruning."""

    options = {"cycles": 5, "prune_fraction": 0.37, "scope": "layer", "rewind_step": 0, "ap_fraction": 0.0}

    def setup(self, run) -> None:
        o = run.options
        option_int(o, "cycles")
        option_fraction(o, "prune_fraction")
        option_fraction(o, "ap_fraction")
        if o["scope"] not in ("layer", "global"):
            raise UserError(f"training.trainer_options.scope must be layer or global, got {o['scope']!r}")
        self.weights = prunable_weights(run.unwrapped_model)
        if not self.weights:
            raise UserError(f"imp: {run.recipe.architecture} has no prunable layer (nn.Linear or nn.Conv2d besides the "
                            "classifier)")
        self.phase = run.total_steps // (o["cycles"] + 1)
        if self.phase < 1:
            raise UserError(f"imp: {run.total_steps} training steps cannot be split into {o['cycles'] + 1} phases; "
                            "train longer or use fewer cycles")
        if not 0 <= o["rewind_step"] < self.phase:
            raise UserError(f"training.trainer_options.rewind_step must be in [0, {self.phase}) (one phase), "
                            f"got {o['rewind_step']!r}")
        self.masks = {n: torch.ones_like(w) for n, w in self.weights.items()}
        self.rewind = {n: w.detach().clone() for n, w in self.weights.items()}  # step 0 (rewind_step 0)
        self.cycles: list[dict] = []
        super().setup(run)

    def build_scheduler(self, run, optimizer):
        """The recipe's schedule shape (constant or cosine), restarted at every phase."""
        kind, phase = run.settings["scheduler"], max(1, run.total_steps // (run.options["cycles"] + 1))
        if kind not in ("constant", "cosine", "linear"):
            raise UserError(f"imp restarts the schedule every cycle: training.scheduler must be constant, cosine or linear, "
                            f"got {kind!r}")

        def factor(step: int) -> float:
            t = (step % phase) / phase
            return {"constant": 1.0, "cosine": 0.5 * (1 + math.cos(math.pi * t)), "linear": 1 - t}[kind]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def after_optimizer_step(self, run) -> None:
        with torch.no_grad():
            for name, w in self.weights.items():
                w.mul_(self.masks[name])

    def on_step_end(self, run) -> None:
        step, o = run.state["step"], run.options
        if step == o["rewind_step"] and step > 0:
            self.rewind = {n: w.detach().clone() for n, w in self.weights.items()}
        if step % self.phase:
            return
        done = step // self.phase  # training phases finished
        if done > o["cycles"] + 1 or len(self.cycles) >= done:
            return
        self.cycles.append({"cycle": done - 1, "step": step, "sparsity": self.sparsity(), **run.evaluate()})
        if done > o["cycles"]:
            return  # the last phase: nothing to prune after it
        self.masks = magnitude_masks(self.weights, self.masks, o["prune_fraction"], o["scope"])
        if o["ap_fraction"]:
            self.masks = ap_masks(self.weights, self.rewind, self.masks, o["ap_fraction"])
        with torch.no_grad():
            for name, w in self.weights.items():
                w.copy_(self.rewind[name] * self.masks[name])
        inner = getattr(self.optimizer, "optimizer", self.optimizer)
        inner.state.clear()

    def sparsity(self) -> float:
        total = sum(m.numel() for m in self.masks.values())
        return 1 - sum(float(m.sum()) for m in self.masks.values()) / total

    def on_save_checkpoint(self, run, path) -> None:
        from safetensors.torch import save_file

        if run.accelerator.is_main_process:
            tensors = {f"mask/{n}": m.contiguous().cpu() for n, m in self.masks.items()}
            tensors |= {f"rewind/{n}": w.contiguous().cpu() for n, w in self.rewind.items()}
            save_file(tensors, str(path / IMP_STATE), metadata={"cycles": repr(self.cycles)})

    def on_load_checkpoint(self, run, path) -> None:
        import ast

        from safetensors import safe_open

        with safe_open(str(path / IMP_STATE), framework="pt") as f:
            device = next(iter(self.weights.values())).device
            self.masks = {n: f.get_tensor(f"mask/{n}").to(device) for n in self.weights}
            self.rewind = {n: f.get_tensor(f"rewind/{n}").to(device) for n in self.weights}
            self.cycles = ast.literal_eval(f.metadata()["cycles"])

    def train(self, run) -> TrainOutcome:
        outcome = super().train(run)
        outcome.final["eval_sparsity"] = self.sparsity()  # the model card's results table shows it
        outcome.metrics["imp"] = {"cycles": self.cycles, "final_sparsity": self.sparsity(),
                                  "scope": run.options["scope"], "ap_fraction": run.options["ap_fraction"]}
        return outcome
