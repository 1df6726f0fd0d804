"""The accelerate training loop, short enough to read in one sitting.

One Accelerator drives 1..N processes (`python train.py`, `accelerate launch train.py`,
`torchrun --nproc_per_node N train.py`). The recipe's batch size is the *global* batch
(accelerate's `split_batches`): each process gets its share of every batch, so 1 and N
processes take the same optimisation steps and end with the same weights.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..errors import UserError
from ..recipes import Recipe, load_recipe

CHECKPOINT_PREFIX = "step_"


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


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def _latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    steps = [p for p in checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*") if (p / "trainer_state.json").exists()]
    return max(steps, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), default=None)


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def evaluate(model, batches, gather=lambda tensors: tensors) -> dict:
    """Loss (and accuracy for classifiers) of `model` over `batches` of model inputs with labels.

    `gather` collects each batch's (logits, labels) from every process: accelerate's
    `gather_for_metrics` in the training loop, the identity in one process.
    """
    was_training = model.training
    model.eval()
    total_loss, correct, count, regression = 0.0, 0, 0, False
    with torch.no_grad():
        for batch in batches:
            batch.pop("example_index", None)
            logits, labels = gather((model(**batch).logits, batch["labels"]))
            regression = logits.shape[-1] == 1
            if regression:
                total_loss += torch.nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float(), reduction="sum").item()
            else:
                total_loss += torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
                correct += (logits.argmax(-1) == labels).sum().item()
            count += len(labels)
    model.train(was_training)
    if count == 0:
        raise UserError("evaluation set is empty")
    metrics = {"eval_loss": total_loss / count}
    if not regression:
        metrics["eval_accuracy"] = correct / count
    return metrics


def train(recipe: Recipe | str | Path, overrides: list[str] | None = None, resume: bool = False,
          output_dir: str | Path | None = None) -> TrainResult:
    """Train a recipe with accelerate and save the model into its output folder.

    The output folder (``outputs/<recipe id>`` unless overridden) receives config.json,
    model.safetensors, metrics.json (history + final metrics), recipe.yaml and checkpoints/.
    Everything the user can get wrong is checked before the folder is created.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
    from transformers import get_scheduler
    from tqdm.auto import tqdm

    from .. import data as zoo_data
    from ..registry import create_model

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    t = recipe.training
    output_dir = Path(output_dir or recipe.resolved_output_dir())
    checkpoint_dir = output_dir / "checkpoints"
    resume_from = None
    if resume:
        resume_from = _latest_checkpoint(checkpoint_dir) if checkpoint_dir.exists() else None
        if resume_from is None:
            raise UserError(f"--resume: no checkpoint in {checkpoint_dir}; train without --resume to start a run")

    data = zoo_data.load(recipe.data_name, **recipe.data_params)  # user errors surface before any process group
    eval_split = recipe.data.get("eval_split", t["eval_split"])
    if "train" not in data or eval_split not in data:
        raise UserError(f"data set {recipe.data_name!r} needs 'train' and {eval_split!r} splits; it has {', '.join(data)}")
    accelerator = Accelerator(
        # Without a GPU, accelerate only joins torchrun's processes into one gloo group when told
        # it runs on CPU; with one, it picks the device itself.
        cpu=not _has_accelerator_device(),
        mixed_precision=t["mixed_precision"],
        project_config=ProjectConfiguration(project_dir=str(output_dir)),
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True, data_seed=t["seed"]),
    )
    set_seed(t["seed"])  # same init on every process
    model = create_model(recipe.architecture, **recipe.config)

    label_feature = data["train"].features.get("labels")
    if getattr(label_feature, "names", None) and len(label_feature.names) == model.config.num_labels:
        model.config.id2label = dict(enumerate(label_feature.names))  # class names travel with the model
        model.config.label2id = {name: i for i, name in enumerate(label_feature.names)}
    columns = model_input_columns(model, data["train"])
    train_set, eval_set = TensorBatches(data["train"], columns), TensorBatches(data[eval_split], columns)
    batch_size = len(train_set) if t["batch_size"] == "full" else t["batch_size"]
    if batch_size % accelerator.num_processes:
        raise UserError(f"training.batch_size ({batch_size}) must be divisible by the number of processes ({accelerator.num_processes})")
    if batch_size > len(train_set):
        raise UserError(f"training.batch_size ({batch_size}) is larger than the training set ({len(train_set)} examples)")

    train_dl = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=whole_batch)
    eval_dl = DataLoader(eval_set, batch_size=t["eval_batch_size"], collate_fn=whole_batch)
    train_eval_dl = DataLoader(train_set, batch_size=t["eval_batch_size"], collate_fn=whole_batch) if t["eval_on_train"] else None
    steps_per_epoch = len(train_set) // batch_size
    total_steps = steps_per_epoch * t["epochs"]

    params = [p for p in model.parameters() if p.requires_grad]
    if t["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(params, lr=t["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"])
    else:
        optimizer_class = torch.optim.AdamW if t["optimizer"] == "adamw" else torch.optim.Adam
        optimizer = optimizer_class(params, lr=t["lr"], weight_decay=t["weight_decay"])
    scheduler = get_scheduler(t["scheduler"], optimizer, num_warmup_steps=t["warmup_steps"], num_training_steps=total_steps)
    model, optimizer, train_dl, eval_dl, scheduler = accelerator.prepare(model, optimizer, train_dl, eval_dl, scheduler)
    if train_eval_dl is not None:
        train_eval_dl = accelerator.prepare(train_eval_dl)

    # Only now, with everything checked, does the output folder appear.
    if accelerator.is_main_process:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "recipe.yaml").write_text(recipe.to_yaml())
    state = {"step": 0, "history": [], "train_time_s": 0.0, "train_cpu_time_s": 0.0, "seen": [0, 0, 0]}  # seen: count, Σidx, Σidx² (this process)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        saved = json.loads((resume_from / "trainer_state.json").read_text())
        state.update(saved, seen=saved["seen"][accelerator.process_index])
        accelerator.print(f"resumed from {resume_from} (step {state['step']})")

    def save_checkpoint():
        path = checkpoint_dir / f"{CHECKPOINT_PREFIX}{state['step']}"
        accelerator.save_state(str(path))
        seen = accelerator.gather(torch.tensor(state["seen"], dtype=torch.float64)).view(-1, 3).tolist()
        if accelerator.is_main_process:
            _write_json_atomic(path / "trainer_state.json", {**state, "seen": seen})
            old = sorted(checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*"), key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))
            for stale in old[: max(0, len(old) - t["keep_checkpoints"])]:
                shutil.rmtree(stale, ignore_errors=True)
        accelerator.wait_for_everyone()

    stop_at = min(total_steps, t["stop_after_steps"] or total_steps)
    progress = tqdm(total=total_steps, initial=state["step"], desc=recipe.id, mininterval=1.0,
                    disable=not accelerator.is_local_main_process)
    model.train()
    while state["step"] < stop_at:
        epoch, skip = divmod(state["step"], steps_per_epoch)
        train_dl.set_epoch(epoch)
        batches = accelerator.skip_first_batches(train_dl, skip) if skip else train_dl
        loss_sum, loss_count = torch.zeros((), dtype=torch.float64), 0
        started, started_cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            index = batch.pop("example_index").double()
            state["seen"] = [state["seen"][0] + len(index), state["seen"][1] + index.sum().item(), state["seen"][2] + (index**2).sum().item()]
            loss = model(**batch).loss
            accelerator.backward(loss)
            if t["max_grad_norm"]:
                accelerator.clip_grad_norm_(model.parameters(), t["max_grad_norm"])
            optimizer.step()
            scheduler.step()
            # The wrapped optimizer's zero_grad looks up installed packages on every call (~2 ms in
            # accelerate 1.15); without gradient accumulation the inner optimizer's is equivalent.
            optimizer.optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach().double()
            loss_count += 1
            state["step"] += 1
            progress.update(1)
            if t["checkpoint_every"] and state["step"] % t["checkpoint_every"] == 0:
                state["train_time_s"] += time.perf_counter() - started
                state["train_cpu_time_s"] += time.process_time() - started_cpu
                save_checkpoint()
                started, started_cpu = time.perf_counter(), time.process_time()
            if state["step"] >= stop_at:
                break
        state["train_time_s"] += time.perf_counter() - started
        state["train_cpu_time_s"] += time.process_time() - started_cpu
        epoch_done = state["step"] % steps_per_epoch == 0
        if epoch_done:
            train_loss = accelerator.reduce(loss_sum / max(loss_count, 1), "mean").item()
            record = {"epoch": state["step"] // steps_per_epoch, "step": state["step"], "train_loss": train_loss,
                      **evaluate(model, eval_dl, accelerator.gather_for_metrics)}
            if train_eval_dl is not None:
                train_metrics = evaluate(model, train_eval_dl, accelerator.gather_for_metrics)
                record.update({k.replace("eval_", "train_eval_"): v for k, v in train_metrics.items()})
            state["history"].append(record)
            progress.set_postfix({k: round(v, 4) for k, v in record.items() if k.startswith("eval")})
            if not t["checkpoint_every"] or state["step"] % t["checkpoint_every"]:
                save_checkpoint()
    progress.close()

    finished = state["step"] >= total_steps
    seen = accelerator.gather(torch.tensor(state["seen"], dtype=torch.float64)).view(-1, 3).tolist()
    metrics = {
        "recipe": recipe.id,
        "finished": finished,
        "step": state["step"],
        "total_steps": total_steps,
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "train_time_s": state["train_time_s"],  # wall time of the training steps (no eval, no checkpoints)
        "train_cpu_time_s": state["train_cpu_time_s"],  # CPU time of this (main) process over the same steps
        "history": state["history"],
        "final": state["history"][-1] if state["history"] else {},
        # Which examples each process trained on: counts and index sums show the data was split.
        "examples_per_process": [{"examples": int(c), "index_sum": s, "index_square_sum": q} for c, s, q in seen],
    }
    # get_state_dict is collective: under FSDP / DeepSpeed ZeRO-3 every process helps gather the weights.
    state_dict = accelerator.get_state_dict(model) if finished else None
    if accelerator.is_main_process:
        if finished:
            _save_final(accelerator.unwrap_model(model), state_dict, output_dir)
        _write_json_atomic(output_dir / "metrics.json", metrics)
        accelerator.print(f"{'saved' if finished else 'stopped at step ' + str(state['step']) + '; checkpoint in'} {output_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(output_dir=output_dir, metrics=metrics)


def _save_final(model, state_dict: dict, output_dir: Path) -> None:
    """save_pretrained into a temporary sibling folder, then move the files in: never half-written."""
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".saving-") as tmp:
        model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        for item in Path(tmp).iterdir():
            item.chmod(0o644)  # the temporary folder's private mode must not leak into the output
            os.replace(item, output_dir / item.name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train a zoo recipe with accelerate: python train.py RECIPE.yaml, "
        "accelerate launch train.py RECIPE.yaml, or torchrun --nproc_per_node N train.py RECIPE.yaml.",
    )
    parser.add_argument("recipe", help="a recipe YAML (hub_configs/*.yaml) or a recipe id")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe overrides, e.g. training.epochs=2 config.hidden_sizes=[64] output_dir=/tmp/run")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output folder")
    parser.add_argument("--output-dir", help="where to save (default: outputs/<recipe id>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = train(args.recipe, args.overrides, resume=args.resume, output_dir=args.output_dir)
    except UserError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    final = result.metrics["final"]
    if final and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in final.items()}))
    return 0
