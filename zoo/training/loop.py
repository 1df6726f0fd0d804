"""The accelerate training loop, the default trainer (`training.trainer: sgd`).

One Accelerator drives 1..N processes (`python train.py`, `accelerate launch train.py`,
`torchrun --nproc_per_node N train.py`). The recipe's batch size is the *global* batch
(accelerate's `split_batches`): each process gets its share of every batch, so 1 and N
processes take the same optimisation steps and end with the same weights.

Trainers that are gradient descent with a twist subclass `SGDTrainer` and override a hook
instead of copying the loop: `build_optimizer` (which parameters, which optimiser),
`after_optimizer_step` (re-apply sparsity masks), `on_step_end` / `on_epoch_end` (prune, regrow,
anneal), `training_step` (a different loss), `on_save_checkpoint` / `on_load_checkpoint` (their
own state, e.g. masks as safetensors). Data loading, evaluation, curves, checkpoints, resume and
the final save are the run's (zoo.training.run), the same for every trainer.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from ..errors import UserError
from . import launching
from .base import TrainOutcome, register_trainer
from .run import (CHECKPOINT_PREFIX, TensorBatches, TrainingRun, TrainResult, _latest_checkpoint, _save_final,  # noqa: F401
                  _write_json_atomic, evaluate, model_input_columns, train, whole_batch)


@register_trainer("sgd")
class SGDTrainer:
    """Minibatch (or full-batch) gradient descent with the recipe's optimiser and scheduler."""

    options: dict = {}  # training.trainer_options this trainer takes (none)
    # The plain loop only calls the optimiser and accelerate's backward, which FSDP shards. Not
    # inherited (zoo.training.launching.check_launch reads the class's own attribute): a subclass whose
    # hooks leave whole weight tensors alone declares it again.
    supports_fsdp = True

    def setup(self, run: TrainingRun) -> None:
        params = [p for p in run.model.parameters() if p.requires_grad]
        optimizer = self.build_optimizer(run, params)
        scheduler = self.build_scheduler(run, optimizer)
        self.optimizer, self.scheduler = run.prepare_optimization(optimizer, scheduler)

    def build_optimizer(self, run: TrainingRun, params) -> torch.optim.Optimizer:
        t = run.settings
        if t["optimizer"] == "sgd":
            return torch.optim.SGD(params, lr=t["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"])
        optimizer_class = torch.optim.AdamW if t["optimizer"] == "adamw" else torch.optim.Adam
        return optimizer_class(params, lr=t["lr"], weight_decay=t["weight_decay"])

    def build_scheduler(self, run: TrainingRun, optimizer):
        from transformers import get_scheduler

        t = run.settings
        try:
            return get_scheduler(t["scheduler"], optimizer, num_warmup_steps=t["warmup_steps"],
                                 num_training_steps=run.total_steps)
        except (TypeError, ValueError) as error:  # e.g. a scheduler that needs arguments the recipe cannot give
            raise UserError(f"training.scheduler {t['scheduler']!r}: {error}") from None

    def training_step(self, run: TrainingRun, batch: dict) -> torch.Tensor:
        """One optimisation step on `batch` (this process's share); returns the loss."""
        loss = run.model(**batch).loss
        run.accelerator.backward(loss)
        if run.settings["max_grad_norm"]:
            run.accelerator.clip_grad_norm_(run.model.parameters(), run.settings["max_grad_norm"])
        self.optimizer.step()
        self.after_optimizer_step(run)
        self.scheduler.step()
        # The wrapped optimizer's zero_grad looks up installed packages on every call (~2 ms in
        # accelerate 1.15); without gradient accumulation the inner optimizer's is equivalent.
        self.optimizer.optimizer.zero_grad(set_to_none=True)
        return loss

    def after_optimizer_step(self, run: TrainingRun) -> None:
        """Hook: right after optimizer.step() (mask-based trainers re-apply their masks here)."""

    def train(self, run: TrainingRun) -> TrainOutcome:
        accelerator = run.accelerator
        run.model.train()
        while run.state["step"] < run.stop_at:
            epoch, skip = divmod(run.state["step"], run.steps_per_epoch)
            run.train_dl.set_epoch(epoch)
            batches = accelerator.skip_first_batches(run.train_dl, skip) if skip else run.train_dl
            run.start_clock()
            for batch in batches:
                run.count_examples(batch.pop("example_index"))
                run.step_done(self.training_step(run, batch))
                if run.state["step"] >= run.stop_at:
                    break
            run.stop_clock()
        return TrainOutcome(finished=run.state["step"] >= run.total_steps)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train a zoo recipe with its trainer: python train.py RECIPE.yaml, "
        "accelerate launch train.py RECIPE.yaml, or torchrun --nproc_per_node N train.py RECIPE.yaml.",
    )
    parser.add_argument("recipe", help="a recipe YAML (hub_configs/*.yaml) or a recipe id")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe overrides, e.g. training.epochs=2 training.lr=3e-4 config.hidden_sizes=[64] output_dir=/tmp/run")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the output folder from its latest checkpoint (same recipe)")
    parser.add_argument("--overwrite", action="store_true", help="delete the run already in the output folder first")
    parser.add_argument("--output-dir", help="where to save (default: outputs/<recipe id>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # options may come before or after the overrides
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    launching.EXIT_AFTER_RUN = several
    try:
        result = train(args.recipe, args.overrides, resume=args.resume, output_dir=args.output_dir, overwrite=args.overwrite)
    except UserError as error:
        if int(os.environ.get("RANK", "0")) == 0:  # every process finds the same mistake: say it once
            print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    final = result.metrics.get("final")
    if final and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in final.items()}))
    if several:
        # Every process has written what it writes and left the group (launching.leave_together):
        # end here, before torch's gloo teardown, which can hang (pytorch/pytorch#75097).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
