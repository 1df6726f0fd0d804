"""What every trainer shares: one training run from a checked recipe to the saved model.

`train()` checks everything the user can get wrong (recipe, trainer, output folder, data against
the config) before anything is written, builds a `TrainingRun` — the accelerator, the model, the
data loaders, evaluation, per-step curves, checkpoints — hands it to the recipe's trainer, and
ends every run the same way (`TrainingRun.finish`): save_pretrained safetensors, metrics.json,
recipe.yaml. A trainer only decides how the weights change.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..recipes import TRAINING_DEFAULTS, Recipe, load_recipe, parse_yaml
from .base import TrainOutcome, check_options, get_trainer, trainer_name
from .launching import check_launch, leave_together, make_accelerator, memory_held

CHECKPOINT_PREFIX = "step_"
TRAINER_STATE = "trainer_state.json"
# What a training run writes into its output folder: a folder holding any of these is a run's.
RUN_FILES = ("recipe.yaml", "metrics.json", "checkpoints", "model.safetensors", "config.json")
# Recipe fields a resumed run may change: they do not change the weights or the metrics.
RESUME_MAY_CHANGE = {"output_dir", "description", "card", "paper", "ci",
                     "training.stop_after_steps", "training.keep_checkpoints", "training.checkpoint_every"}


class TensorBatches(torch.utils.data.Dataset):
    """A data set split held as tensors, served a whole batch at a time.

    `datasets.Dataset` costs ~1 ms per example through a DataLoader; one tensor index per batch
    (`__getitems__`) costs microseconds, so the data never dominates a small model's step.
    Each batch also carries `example_index`, so the loop can account for which examples each
    process saw.
    """

    def __init__(self, dataset, columns: list[str]):
        table = dataset.with_format("torch", columns=columns)[:]
        self.columns = {name: table[name] for name in columns}
        self.length = len(dataset)

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return self.__getitems__([index])

    def __getitems__(self, indices):
        index = torch.as_tensor(indices)
        return {"example_index": index, **{name: column[index] for name, column in self.columns.items()}}


def whole_batch(batch):
    return batch  # __getitems__ already returns a collated batch


def model_input_columns(model, dataset) -> list[str]:
    """The data set's columns that the model's forward takes (always including labels)."""
    import inspect

    accepted = set(inspect.signature(model.forward).parameters)
    columns = [c for c in dataset.column_names if c in accepted]
    if model.main_input_name not in columns:
        raise UserError(
            f"the data set has no column {model.main_input_name!r}, the input of {type(model).__name__}; "
            f"its columns: {', '.join(dataset.column_names)}"
        )
    return columns


def is_regression(model) -> bool:
    """The task comes from the config (problem_type), never from the number of outputs."""
    config = getattr(getattr(model, "module", model), "config", None)
    return getattr(config, "problem_type", None) == "regression"


def is_field_output(model) -> bool:
    """Whether the model's architecture regresses fields (Architecture.output == "field")."""
    from ..registry import get_architecture, list_architectures

    model_type = getattr(getattr(getattr(model, "module", model), "config", None), "model_type", None)
    return model_type in list_architectures() and get_architecture(model_type).output == "field"


def evaluate(model, batches, gather=lambda tensors: tensors, regression: bool | None = None) -> dict:
    """Loss (and accuracy for classifiers) of `model` over `batches` of model inputs with labels.

    `gather` collects each batch's (logits, labels) from every process: accelerate's
    `gather_for_metrics` in the training loop, the identity in one process. The task is the
    config's `problem_type` unless `regression` says: a one-output classifier stays a classifier.
    eval_loss is the training loss's own average: cross-entropy per example, squared error per
    output element (the mean over examples and outputs, as mse_loss), and for a field
    architecture the relative L2 error per example.
    """
    regression = is_regression(model) if regression is None else regression
    field = is_field_output(model)
    was_training = model.training
    model.eval()
    total_loss, correct, count, elements = 0.0, 0, 0, 0
    with torch.no_grad():
        for batch in batches:
            batch.pop("example_index", None)
            logits, labels = gather((model(**batch).logits, batch["labels"]))
            if field:
                logits, labels = logits.double().flatten(1), labels.double().flatten(1)
                total_loss += ((logits - labels).norm(dim=1) / labels.norm(dim=1)).sum().item()
            elif regression:
                total_loss += torch.nn.functional.mse_loss(logits.reshape(labels.shape).float(), labels.float(),
                                                           reduction="sum").item()
                elements += labels.numel()
            else:
                total_loss += torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
                correct += (logits.argmax(-1) == labels).sum().item()
            count += len(labels)
    model.train(was_training)
    if count == 0:
        raise UserError("evaluation set is empty")
    metrics = {"eval_loss": total_loss / (elements if regression and not field else count)}
    if not regression:
        metrics["eval_accuracy"] = correct / count
    return metrics


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict


class LossMeter:
    """The mean training loss over a span of steps, kept on the device: no sync per step.

    Its per-process sum and count go into every checkpoint, so a run resumed mid-span reports
    the same mean as the uninterrupted one.
    """

    def __init__(self):
        self.sum, self.count = None, 0

    def add(self, loss: torch.Tensor) -> None:
        loss = loss.detach().double()
        self.sum = loss if self.sum is None else self.sum + loss
        self.count += 1

    def mean(self, accelerator) -> float:
        """The mean over the span, averaged over processes (each saw its share of every batch)."""
        local = self.sum / self.count if self.count else torch.zeros((), dtype=torch.float64, device=accelerator.device)
        return accelerator.reduce(local.to(accelerator.device), "mean").item()

    def reset(self) -> None:
        self.sum, self.count = None, 0

    def values(self) -> list[float]:
        return [0.0 if self.sum is None else self.sum.item(), float(self.count)]

    def load(self, values: list[float], device) -> None:
        total, count = values
        self.count = int(count)
        self.sum = torch.tensor(total, dtype=torch.float64, device=device) if self.count else None


def _checkpoint_step(path: Path) -> int:
    return int(path.name[len(CHECKPOINT_PREFIX):])


def _latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    steps = [p for p in checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*") if (p / TRAINER_STATE).exists()]
    return max(steps, key=_checkpoint_step, default=None)


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_final(model, state_dict: dict | None, output_dir: Path) -> None:
    """save_pretrained into a temporary sibling folder, then move the files in: never half-written."""
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".saving-") as tmp:
        model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        for item in Path(tmp).iterdir():
            item.chmod(0o644)  # the temporary folder's private mode must not leak into the output
            os.replace(item, output_dir / item.name)


# --- the output folder: a new run, an overwrite, or a resume ------------------------------------

@dataclass
class OutputPlan:
    resume_from: Path | None = None  # the checkpoint to continue from
    clear: bool = False  # --overwrite: empty the folder before writing
    finished_metrics: dict | None = None  # --resume of a finished run: nothing to do


def _comparable(recipe: dict) -> dict[str, object]:
    """A recipe as {dotted key: value}, training defaults filled in, YAML-normalised."""
    recipe = parse_yaml(json.dumps(recipe, default=str))  # one normalisation for both sides
    recipe["training"] = {**TRAINING_DEFAULTS, **(recipe.get("training") or {})}
    flat = {}
    for key, value in recipe.items():
        if key in ("config", "data", "training") and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return {k: v for k, v in flat.items() if k not in RESUME_MAY_CHANGE and k.split(".")[0] not in RESUME_MAY_CHANGE}


def recipe_differences(current: dict, saved: dict) -> list[str]:
    """What differs between two recipes, in the fields that change a run's result."""
    a, b = _comparable(current), _comparable(saved)
    return [f"{key}={a.get(key)!r} (the run's: {b.get(key)!r})" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def _check_same_recipe(recipe: Recipe, saved: dict | None, where: Path, output_dir: Path) -> None:
    if saved is None:
        raise UserError(f"--resume: {where} does not say which recipe made it; start a new run with --overwrite")
    differences = recipe_differences(recipe.to_dict(), saved)
    if differences:
        raise UserError(f"--resume: the recipe differs from the one that made {where}: {'; '.join(differences[:4])}"
                        f"{' ...' if len(differences) > 4 else ''}; resume with the run's recipe "
                        f"({output_dir / 'recipe.yaml'}) or start over with --overwrite")


def _saved_recipe(output_dir: Path, checkpoint: Path | None) -> tuple[dict | None, Path]:
    """The recipe that made a checkpoint (kept inside it), else the output folder's recipe.yaml."""
    if checkpoint is not None:
        saved = _read_json(checkpoint / TRAINER_STATE).get("recipe")
        if saved:
            return saved, checkpoint
    try:
        return parse_yaml((output_dir / "recipe.yaml").read_text()), output_dir / "recipe.yaml"
    except (OSError, ValueError):
        return None, output_dir / "recipe.yaml"


def plan_output(output_dir: Path, recipe: Recipe, resume: bool, overwrite: bool) -> OutputPlan:
    """Decide what happens to the output folder, or refuse; nothing is changed here."""
    if resume and overwrite:
        raise UserError("--resume continues the run in the output folder, --overwrite deletes it: give one of them")
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"output folder {output_dir} is a file")
    checkpoint_dir = output_dir / "checkpoints"
    if resume:
        metrics = _read_json(output_dir / "metrics.json")
        if metrics.get("finished") and (output_dir / "model.safetensors").exists():
            saved, where = _saved_recipe(output_dir, None)
            _check_same_recipe(recipe, saved, where, output_dir)
            return OutputPlan(finished_metrics=metrics)
        latest = _latest_checkpoint(checkpoint_dir) if checkpoint_dir.is_dir() else None
        if latest is None:
            raise UserError(f"--resume: no checkpoint in {checkpoint_dir}; train without --resume to start a run")
        saved, where = _saved_recipe(output_dir, latest)
        _check_same_recipe(recipe, saved, where, output_dir)
        return OutputPlan(resume_from=latest)
    if output_dir.is_dir() and any(output_dir.iterdir()):
        ours = [name for name in RUN_FILES if (output_dir / name).exists()]
        if not ours:  # someone else's files: never train into them, never delete them
            raise UserError(f"{'--overwrite: ' if overwrite else ''}{output_dir} is not a training output folder "
                            f"(no {', '.join(RUN_FILES)}) and not empty; choose another output_dir")
        if not overwrite:
            what = "a finished run" if _read_json(output_dir / "metrics.json").get("finished") else "another run"
            raise UserError(f"output folder {output_dir} already holds {what}; --resume continues it, "
                            f"--overwrite deletes it first, or choose another output_dir")
        return OutputPlan(clear=True)
    return OutputPlan()


# --- checks of the data against the model, before anything is written ---------------------------

def check_labels(recipe: Recipe, model, train_split) -> None:
    """The config's outputs must fit the data's labels: a class count, or a regression target."""
    names = getattr(train_split.features.get("labels"), "names", None)
    if not names:
        return
    config = model.config
    if is_regression(model):
        raise UserError(f"config.num_labels={config.num_labels} makes {recipe.architecture} a regressor "
                        f"(problem_type: regression), but data set {recipe.data_name!r} has {len(names)} classes; "
                        f"set config.num_labels={len(names)}")
    if config.num_labels != len(names):
        raise UserError(f"config.num_labels={config.num_labels} does not match data set {recipe.data_name!r}, "
                        f"which has {len(names)} classes; set config.num_labels={len(names)}")


def check_forward(recipe: Recipe, model, examples: TensorBatches) -> None:
    """One forward pass on two examples: a config that does not fit the data (input size,
    channels, ...) fails here with one line, not in the first training step after the output
    folder was written. Eval mode and no_grad: it consumes no random numbers."""
    batch = examples.__getitems__(list(range(min(2, len(examples)))))
    batch.pop("example_index")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(**batch)
    except (RuntimeError, ValueError, IndexError) as error:
        shapes = ", ".join(f"{name} {tuple(value.shape[1:])}" for name, value in batch.items() if name != "labels")
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"the {recipe.architecture} config does not fit data set {recipe.data_name!r} "
                        f"(one example: {shapes}): {detail}") from None
    finally:
        model.train(was_training)


# --- the run --------------------------------------------------------------------------------------

class TrainingRun:
    """One run: what every trainer gets, and the shared steps every run ends with.

    Attributes a trainer uses: `recipe`, `settings` (recipe.training), `options`
    (training.trainer_options with the trainer's defaults), `accelerator`, `model` (prepared:
    wrapped for DDP etc.; `unwrapped_model` is the PreTrainedModel), `train_set` / `eval_set`
    (TensorBatches), `train_dl` / `eval_dl` (prepared DataLoaders), `batch_size`,
    `steps_per_epoch`, `total_steps`, `stop_at`, and `state` (step, history, curves, ...: what a
    checkpoint restores).

    A step-based trainer calls `count_examples(index)` and `step_done(loss)` once per optimiser
    step: that advances the step, keeps the loss means, and runs the evaluations, epoch records
    and checkpoints due at that step, so curves and resume are the same for every trainer. A
    solver-type trainer may instead set the weights, `record_epoch` / `record_curve` what it
    wants plotted, and return.
    """

    def __init__(self, recipe: Recipe, trainer, accelerator, model, data, eval_split: str, output_dir: Path,
                 options: dict):
        from torch.utils.data import DataLoader

        t = recipe.training
        self.recipe, self.settings, self.options = recipe, t, options
        self.trainer, self.trainer_name = trainer, trainer_name(type(trainer), t["trainer"])
        self.accelerator = accelerator
        self.output_dir, self.checkpoint_dir = output_dir, output_dir / "checkpoints"
        self.data = data
        columns = model_input_columns(model, data["train"])
        self.train_set, self.eval_set = TensorBatches(data["train"], columns), TensorBatches(data[eval_split], columns)
        self.batch_size = len(self.train_set) if t["batch_size"] == "full" else t["batch_size"]
        if self.batch_size % accelerator.num_processes:
            raise UserError(f"training.batch_size ({self.batch_size}) must be divisible by the number of processes "
                            f"({accelerator.num_processes})")
        if self.batch_size > len(self.train_set):
            raise UserError(f"training.batch_size ({self.batch_size}) is larger than the training set "
                            f"({len(self.train_set)} examples)")
        self.steps_per_epoch = len(self.train_set) // self.batch_size
        self.total_steps = self.steps_per_epoch * t["epochs"]
        self.stop_at = min(self.total_steps, t["stop_after_steps"] or self.total_steps)
        self.eval_every = recipe.eval_every_steps
        self.checkpointing = recipe.checkpointing
        self.checkpoint_every = t["checkpoint_every"] if self.checkpointing else None

        train_dl = DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True, collate_fn=whole_batch)
        eval_dl = DataLoader(self.eval_set, batch_size=t["eval_batch_size"], collate_fn=whole_batch)
        if accelerator.is_fsdp2:
            # accelerate's FSDP2 shards the model together with its optimiser (it swaps the
            # optimiser's parameters for the shards): prepare_optimization does both
            self.model = model
            self.train_dl, self.eval_dl = accelerator.prepare(train_dl, eval_dl)
        else:
            self.model, self.train_dl, self.eval_dl = accelerator.prepare(model, train_dl, eval_dl)
        self.train_eval_dl = None
        if t["eval_on_train"]:
            self.train_eval_dl = accelerator.prepare(
                DataLoader(self.train_set, batch_size=t["eval_batch_size"], collate_fn=whole_batch))

        self.state = {"step": 0, "history": [], "curves": [], "train_time_s": 0.0, "train_cpu_time_s": 0.0,
                      "seen": [0, 0, 0]}  # seen: count, Σidx, Σidx² of the examples this process trained on
        self.epoch_loss, self.curve_loss = LossMeter(), LossMeter()
        self.progress = None
        self._clock = None
        # Trainer hooks, looked up once (step_done runs every step).
        self._on_step_end = getattr(trainer, "on_step_end", None)
        self._on_epoch_end = getattr(trainer, "on_epoch_end", None)

    def prepare_optimization(self, optimizer, scheduler):
        """accelerate.prepare for the trainer's optimiser and scheduler; under FSDP2 the model is
        sharded in the same call, and run.model becomes the sharded module."""
        if not self.accelerator.is_fsdp2:
            return self.accelerator.prepare(optimizer, scheduler)
        from torch.distributed.fsdp import FSDPModule

        try:
            self.model.get_input_embeddings()
        except NotImplementedError:
            # accelerate's FSDP2 preparation asks every transformers model for its input
            # embeddings, and transformers raises for models that have none (MLPs, convnets)
            self.model.get_input_embeddings = lambda: None
        self.model, optimizer, scheduler = self.accelerator.prepare(self.model, optimizer, scheduler)
        if not any(isinstance(module, FSDPModule) for module in self.model.modules()):
            raise RuntimeError("accelerate returned the model unsharded under FSDP2")
        return optimizer, scheduler

    @property
    def unwrapped_model(self):
        return self.accelerator.unwrap_model(self.model)

    # -- the clock: train_time_s counts the training steps only, no evaluation or checkpoints
    def start_clock(self) -> None:
        self._clock = (time.perf_counter(), time.process_time())

    def stop_clock(self) -> None:
        if self._clock is not None:
            wall, cpu = self._clock
            self.state["train_time_s"] += time.perf_counter() - wall
            self.state["train_cpu_time_s"] += time.process_time() - cpu
            self._clock = None

    # -- the output folder
    def begin(self, plan: OutputPlan) -> None:
        """Everything is checked: only now does the output folder appear (or get cleared)."""
        if self.accelerator.is_main_process:
            if plan.clear:
                for item in self.output_dir.iterdir():
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "recipe.yaml").write_text(self.recipe.to_yaml())
        self.accelerator.wait_for_everyone()

    def start_progress(self):
        """The progress bar, from the first step on (a solver that takes no steps shows none)."""
        from tqdm.auto import tqdm

        self.progress = tqdm(total=self.total_steps, initial=self.state["step"], desc=self.recipe.id, mininterval=1.0,
                             disable=not self.accelerator.is_local_main_process)
        return self.progress

    # -- per step
    def count_examples(self, index: torch.Tensor) -> None:
        """Account for the examples of this process's share of the batch (examples_per_process)."""
        index = index.double()
        seen = self.state["seen"]
        self.state["seen"] = [seen[0] + len(index), seen[1] + index.sum().item(), seen[2] + (index**2).sum().item()]

    def step_done(self, loss: torch.Tensor) -> None:
        """After one optimiser step: count it, then run what is due at this step, in this order:
        the trainer's on_step_end / on_epoch_end hooks, the evaluation (epoch record, curve
        point), the checkpoint — so a checkpoint holds everything up to and including its step."""
        self.epoch_loss.add(loss)
        if self.eval_every:
            self.curve_loss.add(loss)
        (self.progress or self.start_progress()).update(1)
        step = self.state["step"] = self.state["step"] + 1
        if self._on_step_end is not None:
            self._on_step_end(self)
        epoch_end = step % self.steps_per_epoch == 0
        curve_due = bool(self.eval_every) and step % self.eval_every == 0
        checkpoint_due = self.checkpointing and (epoch_end or bool(self.checkpoint_every) and step % self.checkpoint_every == 0)
        if not (epoch_end or curve_due or checkpoint_due):
            return
        self.stop_clock()
        if epoch_end and self._on_epoch_end is not None:
            self._on_epoch_end(self, step // self.steps_per_epoch)
        metrics = self.evaluate() if epoch_end or curve_due else None
        if epoch_end:
            self.record_epoch(self.epoch_loss.mean(self.accelerator), metrics)
            self.epoch_loss.reset()
        if curve_due:
            self.record_curve(self.curve_loss.mean(self.accelerator), metrics)
            self.curve_loss.reset()
        if checkpoint_due:
            self.save_checkpoint()
        self.start_clock()

    # -- evaluation and records
    def evaluate(self, model=None) -> dict:
        """eval_loss / eval_accuracy on the eval split (+ train_eval_* with training.eval_on_train)."""
        model = self.model if model is None else model
        metrics = evaluate(model, self.eval_dl, self.accelerator.gather_for_metrics)
        if self.train_eval_dl is not None:
            train_metrics = evaluate(model, self.train_eval_dl, self.accelerator.gather_for_metrics)
            metrics.update({k.replace("eval_", "train_eval_"): v for k, v in train_metrics.items()})
        return metrics

    def record_epoch(self, train_loss: float | None, metrics: dict | None = None) -> dict:
        """Append metrics.json's per-epoch record for the current step."""
        step = self.state["step"]
        record = {"epoch": step // self.steps_per_epoch, "step": step}
        if train_loss is not None:
            record["train_loss"] = train_loss
        record.update(self.evaluate() if metrics is None else metrics)
        self.state["history"].append(record)
        if self.progress is not None:
            self.progress.set_postfix({k: round(v, 4) for k, v in record.items() if k.startswith("eval")})
        return record

    def record_curve(self, train_loss: float | None, metrics: dict | None = None) -> dict:
        """Append a point of metrics.json's "curves" for the current step."""
        step = self.state["step"]
        row = {"step": step, "epoch": step / self.steps_per_epoch}
        if train_loss is not None:
            row["train_loss"] = train_loss
        row.update(self.evaluate() if metrics is None else metrics)
        self.state["curves"].append(row)
        return row

    # -- checkpoints
    def save_checkpoint(self) -> Path:
        """accelerator.save_state + the loop's own state (trainer_state.json) + the trainer's
        files (its on_save_checkpoint hook); only the newest training.keep_checkpoints stay."""
        accelerator = self.accelerator
        path = self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{self.state['step']}"
        accelerator.save_state(str(path))
        local = torch.tensor([*self.state["seen"], *self.epoch_loss.values(), *self.curve_loss.values()],
                             dtype=torch.float64, device=accelerator.device)
        per_process = accelerator.gather(local).view(accelerator.num_processes, -1).tolist()
        hook = getattr(self.trainer, "on_save_checkpoint", None)
        if hook is not None:
            hook(self, path)
        if accelerator.is_main_process:
            _write_json_atomic(path / TRAINER_STATE, {
                **self.state,
                "seen": [row[:3] for row in per_process],
                "epoch_loss": [row[3:5] for row in per_process],
                "curve_loss": [row[5:7] for row in per_process],
                "trainer": self.trainer_name,
                "recipe": self.recipe.to_dict(),
            })
            old = sorted(self.checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*"), key=_checkpoint_step)
            for stale in old[: max(0, len(old) - self.settings["keep_checkpoints"])]:
                shutil.rmtree(stale, ignore_errors=True)
        accelerator.wait_for_everyone()
        return path

    def load_checkpoint(self, path: Path) -> None:
        accelerator = self.accelerator
        accelerator.load_state(str(path))
        saved = json.loads((path / TRAINER_STATE).read_text())
        rank = accelerator.process_index
        for key in ("step", "history", "curves", "train_time_s", "train_cpu_time_s"):
            if key in saved:
                self.state[key] = saved[key]
        self.state["seen"] = saved["seen"][rank]
        if "epoch_loss" in saved:
            self.epoch_loss.load(saved["epoch_loss"][rank], accelerator.device)
            self.curve_loss.load(saved["curve_loss"][rank], accelerator.device)
        hook = getattr(self.trainer, "on_load_checkpoint", None)
        if hook is not None:
            hook(self, path)
        accelerator.print(f"resumed from {path} (step {self.state['step']})")

    # -- the end every run shares
    def finish(self, outcome: TrainOutcome) -> TrainResult:
        """Save the trained model (save_pretrained, safetensors) and metrics.json."""
        accelerator = self.accelerator
        if self.progress is not None:
            self.progress.close()
        own_model = outcome.model is None or outcome.model is self.unwrapped_model or outcome.model is self.model
        model = self.unwrapped_model if own_model else outcome.model
        history = self.state["history"]
        if outcome.finished and not (history and history[-1]["step"] == self.state["step"]):
            final = {"step": self.state["step"], **self.evaluate(self.model if own_model else model)}
        else:
            final = dict(history[-1]) if history else {}
        final.update(outcome.final)
        seen = accelerator.gather(torch.tensor(self.state["seen"], dtype=torch.float64, device=accelerator.device))
        held = accelerator.gather(torch.tensor(memory_held(self.model, self.trainer), dtype=torch.float64,
                                               device=accelerator.device)).view(-1, 3).tolist()
        metrics = {
            "recipe": self.recipe.id,
            "trainer": self.trainer_name,
            "finished": outcome.finished,
            "step": self.state["step"],
            "total_steps": self.total_steps,
            "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "train_time_s": self.state["train_time_s"],  # wall time of the training steps (no eval, no checkpoints)
            "train_cpu_time_s": self.state["train_cpu_time_s"],  # CPU time of this (main) process over the same steps
            "history": history,
            "eval_every_steps": self.eval_every,
            "curves": self.state["curves"],
            "final": final,
            "sharding": "FSDP2" if accelerator.is_fsdp2 else None,
            # What each process holds: its shard of the weights and of the optimiser state (all
            # of both without sharding), and its peak resident memory.
            "memory_per_process": [{"parameter_bytes": int(p), "optimizer_state_bytes": int(o), "peak_rss_mb": r}
                                   for p, o, r in held],
            # Which examples each process trained on: counts and index sums show the data was split.
            "examples_per_process": [{"examples": int(c), "index_sum": s, "index_square_sum": q}
                                     for c, s, q in seen.view(-1, 3).tolist()],
            **outcome.metrics,
        }
        # get_state_dict is collective: under FSDP every process helps
        # gather the full, unsharded weights.
        state_dict = None
        if outcome.finished:
            state_dict = accelerator.get_state_dict(self.model) if own_model else model.state_dict()
        if accelerator.is_main_process:
            if outcome.finished:
                _save_final(model, state_dict, self.output_dir)
            _write_json_atomic(self.output_dir / "metrics.json", metrics)
            where = "saved" if outcome.finished else f"stopped at step {self.state['step']}; checkpoint in"
            accelerator.print(f"{where} {self.output_dir}")
        accelerator.wait_for_everyone()
        leave_together(accelerator)
        return TrainResult(output_dir=self.output_dir, metrics=metrics)


def train(recipe: Recipe | str | Path, overrides: list[str] | None = None, resume: bool = False,
          output_dir: str | Path | None = None, overwrite: bool = False) -> TrainResult:
    """Train a recipe with its trainer (training.trainer, default: the accelerate loop) and save
    the model into its output folder.

    The output folder (``outputs/<recipe id>`` unless overridden) receives config.json,
    model.safetensors, metrics.json (history, curves, final metrics), recipe.yaml and
    checkpoints/. Everything the user can get wrong is checked before the folder is written:
    a folder holding another run is refused unless `overwrite` (cleared) or `resume` (continued,
    if the recipe matches the checkpoint's; a finished run is left as it is).
    """
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    from .. import data as zoo_data
    from ..registry import build_model

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    t = recipe.training
    trainer_class = get_trainer(t["trainer"])
    options = check_options(trainer_class, t["trainer_options"])
    output_dir = Path(output_dir or recipe.resolved_output_dir())
    plan = plan_output(output_dir, recipe, resume, overwrite)
    if plan.finished_metrics is not None:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"{output_dir} holds the finished run of this recipe; nothing to resume")
        return TrainResult(output_dir=output_dir, metrics=plan.finished_metrics)

    data = zoo_data.load(recipe.data_name, **recipe.data_params)  # user errors surface before any process group
    eval_split = recipe.data.get("eval_split", t["eval_split"])
    if "train" not in data or eval_split not in data:
        raise UserError(f"data set {recipe.data_name!r} needs 'train' and {eval_split!r} splits; it has {', '.join(data)}")
    check_launch(trainer_class, t["trainer"], len(data["train"]), len(data[eval_split]))
    accelerator = make_accelerator(
        mixed_precision=t["mixed_precision"],
        project_config=ProjectConfiguration(project_dir=str(output_dir)),
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True, data_seed=t["seed"]),
    )
    set_seed(t["seed"])  # same init on every process
    model = build_model(recipe.architecture, **recipe.config)
    check_labels(recipe, model, data["train"])
    label_names = getattr(data["train"].features.get("labels"), "names", None)
    if label_names and len(label_names) == model.config.num_labels:
        model.config.id2label = dict(enumerate(label_names))  # class names travel with the model
        model.config.label2id = {name: i for i, name in enumerate(label_names)}
    check_forward(recipe, model, TensorBatches(data["train"].select(range(min(2, len(data["train"])))),
                                                model_input_columns(model, data["train"])))

    trainer = trainer_class()
    run = TrainingRun(recipe, trainer, accelerator, model, data, eval_split, output_dir, options)
    setup = getattr(trainer, "setup", None)
    if setup is not None:
        setup(run)  # optimiser, scheduler, ...: still before anything is written
    run.begin(plan)
    if plan.resume_from is not None:
        run.load_checkpoint(plan.resume_from)
    outcome = trainer.train(run)
    if not isinstance(outcome, TrainOutcome):
        raise TypeError(f"trainer {run.trainer_name!r}: train(run) must return a TrainOutcome, got {type(outcome).__name__}")
    return run.finish(outcome)
