"""Sparse trainers: static random masks, and dynamic sparse training (DST) of G2GNet's ensemble-to-ensemble blocks.

- `static-sparse` (the random-sparse baseline): a fixed random unstructured mask on every
  hidden nn.Linear of any zoo model (the classifier stays dense), re-applied after each
  optimiser step. Masked weights stay exactly zero, so the saved model computes what was
  trained; the masks come from `seed`, so a resumed run rebuilds the same ones.
- `dst`: every `update_every` steps, in every G2GLinear, each output ensemble drops its
  weakest connected blocks (Frobenius norm) and connects the same number of unconnected input
  ensembles instead, chosen by `regrow`: "random" (SET), "gradient" (RigL: the norm of the
  dense gradient the block would have), or "hebbian" (G2GNet's rewiring: the input ensemble
  whose units' activations correlate most, in mean |Pearson r|, with the output ensemble's).
  The number of connections per output ensemble never changes, so the density is exact and the
  layer stays block-sparse (a replaced slot cuts its window into shorter runs of matmuls). The fraction rewired anneals from `prune_fraction` to 0 on a
  cosine (RigL) and rewiring stops after `stop_fraction` of training. Regrown blocks start at
  zero and their optimiser state is reset. The rewired ``connections`` are model buffers: they
  are in every checkpoint and in model.safetensors.

The edges rewired are ensemble pairs, not single weights: single-weight DST would break the
block structure that makes the layer fast (docs/FINDINGS.md, C1).
"""
from __future__ import annotations

import json
import math
import zlib

import torch

from ..errors import UserError
from .base import TrainOutcome, register_trainer
from .loop import SGDTrainer

REGROW = ("random", "gradient", "hebbian")
DST_STATE = "dst_state.json"


# --- pure functions ------------------------------------------------------------------------------

def g2g_layers(model) -> list[tuple[str, torch.nn.Module]]:
    """(name, layer) of every G2GLinear (block-sparse ensemble layer) in `model`."""
    return [(name, m) for name, m in model.named_modules() if type(m).__name__ == "G2GLinear"]


def hidden_linears(model) -> list[tuple[str, torch.nn.Linear]]:
    """(name, layer) of every nn.Linear except the last one (the classifier head)."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    return layers[:-1]


def random_mask(shape, sparsity: float, generator: torch.Generator) -> torch.Tensor:
    """A 0/1 float mask with exactly round(sparsity · numel) zeros at random places."""
    numel = math.prod(shape)
    zeros = round(sparsity * numel)
    mask = torch.ones(numel)
    mask[torch.randperm(numel, generator=generator)[:zeros]] = 0
    return mask.view(shape)


def block_norms(layer) -> torch.Tensor:
    """(out_ensembles, k): the Frobenius norm of each connected block."""
    return layer.weight.detach().flatten(2).norm(dim=2)


def hebbian_scores(inputs: torch.Tensor, outputs: torch.Tensor, in_ensembles: int, out_ensembles: int) -> torch.Tensor:
    """(out_ensembles, in_ensembles): mean |Pearson correlation| between the units of input
    ensemble i and those of output ensemble j over a batch (N, in) / (N, out). A unit that does
    not vary over the batch correlates 0 with everything."""
    def standardise(a):
        a = a.detach().double()
        a = a - a.mean(0)
        std = a.pow(2).mean(0).sqrt()
        return torch.where(std > 0, a / std.clamp_min(1e-30), torch.zeros_like(a))

    corr = standardise(inputs).T @ standardise(outputs) / inputs.shape[0]  # (in, out)
    n_in, n_out = corr.shape
    blocks = corr.abs().view(in_ensembles, n_in // in_ensembles, out_ensembles, n_out // out_ensembles)
    return blocks.mean(dim=(1, 3)).T.float()


def gradient_scores(inputs: torch.Tensor, grad_outputs: torch.Tensor, in_ensembles: int, out_ensembles: int) -> torch.Tensor:
    """(out_ensembles, in_ensembles): Frobenius norm of the dense weight gradient X^T dY per ensemble pair (RigL)."""
    grad = inputs.detach().reshape(-1, inputs.shape[-1]).T @ grad_outputs.detach().reshape(-1, grad_outputs.shape[-1])
    n_in, n_out = grad.shape
    blocks = grad.view(in_ensembles, n_in // in_ensembles, out_ensembles, n_out // out_ensembles)
    return blocks.pow(2).sum(dim=(1, 3)).sqrt().T


def rewire(layer, n_swap: int, scores: torch.Tensor) -> list[tuple[int, int]]:
    """Drop each output ensemble's `n_swap` weakest blocks and connect the `n_swap` unconnected
    input ensembles with the highest `scores` (out_ensembles, in_ensembles) instead.

    The new blocks' weights are zero. Returns the (output ensemble, slot) pairs rewired. Every
    output ensemble keeps exactly k distinct input ensembles.
    """
    out_e, k = layer.connections.shape
    n_swap = min(n_swap, k, layer.in_ensembles - k)
    if n_swap <= 0:
        return []
    norms = block_norms(layer)
    scores = scores.to(norms.device)
    changed = []
    with torch.no_grad():
        for j in range(out_e):
            slots = norms[j].argsort()[:n_swap]  # the weakest connected blocks
            candidates = scores[j].clone().float()
            candidates[layer.connections[j]] = -math.inf  # connected now (the dropped ones included)
            new = candidates.argsort(descending=True)[:n_swap]
            layer.connections[j, slots] = new.to(layer.connections.device)
            layer.weight[j, slots] = 0
            changed.extend((j, int(s)) for s in slots)
    return changed


def reset_optimizer_state(optimizer, param: torch.Tensor, slots: list[tuple[int, int]]) -> None:
    """Zero the optimiser's per-weight state (Adam moments, momentum) of the rewired blocks."""
    state = optimizer.state.get(param, {})
    for value in state.values():
        if torch.is_tensor(value) and value.shape == param.shape:
            for j, s in slots:
                value[j, s] = 0


def swap_count(k: int, fraction: float) -> int:
    """Blocks each output ensemble rewires: round(fraction · k), at least 1 while fraction > 0."""
    return max(1, round(fraction * k)) if fraction > 0 else 0


# --- trainers ------------------------------------------------------------------------------------

def option_int(options: dict, name: str, minimum: int = 1) -> int:
    """training.trainer_options.<name> as an integer >= minimum, else a UserError naming it."""
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"training.trainer_options.{name} must be an integer >= {minimum}, got {value!r}")
    return value


def option_fraction(options: dict, name: str, interval: str = "[0, 1)") -> float:
    """training.trainer_options.<name> as a number in `interval` ("[0, 1)", "(0, 1]" or "[0, 1]")."""
    value = options[name]
    inside = {"[0, 1)": lambda v: 0 <= v < 1, "(0, 1]": lambda v: 0 < v <= 1, "[0, 1]": lambda v: 0 <= v <= 1}[interval]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not inside(value):
        raise UserError(f"training.trainer_options.{name} must be in {interval}, got {value!r}")
    return float(value)


@register_trainer("static-sparse")
class StaticSparseTrainer(SGDTrainer):
    """Fixed random unstructured masks on the hidden nn.Linear layers (the random-sparse baseline)."""

    options = {"sparsity": 0.75, "seed": 0}

    def build_optimizer(self, run, params):
        sparsity = option_fraction(run.options, "sparsity")
        layers = hidden_linears(run.unwrapped_model)
        if not layers:
            raise UserError(f"static-sparse: {run.recipe.architecture} has no hidden nn.Linear layer to mask "
                            "(the last Linear, the classifier, stays dense)")
        generator = torch.Generator().manual_seed(int(run.options["seed"]))
        self.masks = [(m, random_mask(m.weight.shape, sparsity, generator).to(m.weight.device)) for _, m in layers]
        self.apply_masks()
        return super().build_optimizer(run, params)

    def apply_masks(self) -> None:
        with torch.no_grad():
            for module, mask in self.masks:
                module.weight.mul_(mask)

    def after_optimizer_step(self, run) -> None:
        self.apply_masks()

    def train(self, run) -> TrainOutcome:
        outcome = super().train(run)
        zeros = sum(int((m.weight == 0).sum()) for m, _ in self.masks)
        total = sum(m.weight.numel() for m, _ in self.masks)
        outcome.metrics["sparsity"] = {"masked_layers": len(self.masks), "zero_fraction": zeros / total}
        outcome.final["eval_sparsity"] = zeros / total  # of the masked layers; the model card shows it
        return outcome


@register_trainer("dst")
class DSTTrainer(SGDTrainer):
    """Dynamic sparse training of G2GNet's ensemble blocks: prune the weakest, regrow by `regrow`."""

    options = {"update_every": 100, "prune_fraction": 0.3, "regrow": "random", "stop_fraction": 0.75,
               "anneal": "cosine", "seed": 0}

    def setup(self, run) -> None:
        o = run.options
        option_int(o, "update_every")
        option_fraction(o, "prune_fraction", "(0, 1]")
        option_fraction(o, "stop_fraction", "[0, 1]")
        if o["regrow"] not in REGROW:
            raise UserError(f"training.trainer_options.regrow must be one of {', '.join(REGROW)}, got {o['regrow']!r}")
        if o["anneal"] not in ("cosine", "constant"):
            raise UserError(f"training.trainer_options.anneal must be cosine or constant, got {o['anneal']!r}")
        self.layers = g2g_layers(run.unwrapped_model)
        if not self.layers:
            raise UserError(f"dst rewires G2GNet's ensemble blocks; {run.recipe.architecture} has no G2GLinear layer "
                            "(use architecture: g2gnet, or trainer static-sparse for random masks)")
        self.rewired = 0
        super().setup(run)

    def fraction_at(self, run, step: int) -> float:
        """The fraction of each output ensemble's blocks rewired at `step` (0 once rewiring stopped)."""
        end = run.options["stop_fraction"] * run.total_steps
        if step >= end:
            return 0.0
        base = run.options["prune_fraction"]
        return base if run.options["anneal"] == "constant" else base * (1 + math.cos(math.pi * step / end)) / 2

    def training_step(self, run, batch):
        step = run.state["step"] + 1  # the step this call makes
        due = step % run.options["update_every"] == 0 and self.fraction_at(run, step) > 0
        if not due:
            return super().training_step(run, batch)
        captured, handles = {}, []
        needs_grad = run.options["regrow"] == "gradient"
        for name, layer in self.layers:
            handles.append(layer.register_forward_hook(self._capture(captured, name, needs_grad)))
        try:
            loss = super().training_step(run, batch)
        finally:
            for handle in handles:
                handle.remove()
        self.rewire_all(run, step, captured)
        return loss

    @staticmethod
    def _capture(captured: dict, name: str, needs_grad: bool):
        def hook(module, args, output):
            captured[name] = {"x": args[0].detach(), "y": output.detach()}
            if needs_grad and output.requires_grad:
                output.register_hook(lambda grad: captured[name].__setitem__("dy", grad.detach()))
        return hook

    def scores(self, run, step: int, name: str, layer, captured: dict) -> torch.Tensor:
        regrow = run.options["regrow"]
        shape = (layer.out_ensembles, layer.in_ensembles)
        if regrow == "random" or name not in captured or (regrow == "gradient" and "dy" not in captured[name]):
            generator = torch.Generator().manual_seed((int(run.options["seed"]) * 1_000_003 + step * 7919 + zlib.crc32(name.encode())) % 2**31)
            return torch.rand(shape, generator=generator)
        c = captured[name]
        if regrow == "gradient":
            return gradient_scores(c["x"], c["dy"], *shape[::-1])
        block = run.unwrapped_model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else None
        act = getattr(block, "act", None) or torch.nn.Identity()
        return hebbian_scores(c["x"], act(c["y"]), *shape[::-1])

    def rewire_all(self, run, step: int, captured: dict) -> None:
        fraction = self.fraction_at(run, step)
        inner = getattr(self.optimizer, "optimizer", self.optimizer)
        for name, layer in self.layers:
            scores = self.scores(run, step, name, layer, captured)
            if run.accelerator.num_processes > 1:  # each process saw its share of the batch: one decision for all
                scores = run.accelerator.reduce(scores.to(run.accelerator.device), "mean").cpu()
            changed = rewire(layer, swap_count(layer.k, fraction), scores)
            reset_optimizer_state(inner, layer.weight, changed)
            self.rewired += len(changed)

    def on_save_checkpoint(self, run, path) -> None:
        # the connections and optimiser state are in the model / accelerate's state; the count is ours
        if run.accelerator.is_main_process:
            (path / DST_STATE).write_text(json.dumps({"blocks_rewired": self.rewired}))

    def on_load_checkpoint(self, run, path) -> None:
        self.rewired = json.loads((path / DST_STATE).read_text())["blocks_rewired"]

    def train(self, run) -> TrainOutcome:
        outcome = super().train(run)
        weights = sum(layer.weight.numel() for _, layer in self.layers)
        dense = sum(layer.in_features * layer.out_features for _, layer in self.layers)
        outcome.final["eval_sparsity"] = 1 - weights / dense  # of the G2GLinear layers; the model card shows it
        outcome.metrics["dst"] = {
            "regrow": run.options["regrow"], "blocks_rewired": self.rewired,
            "density": {name: layer.k / layer.in_ensembles for name, layer in self.layers},
        }
        return outcome
