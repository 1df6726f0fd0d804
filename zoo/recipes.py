"""Training recipes: one YAML per published checkpoint, in hub_configs/.

A recipe names the architecture and its config, the data set, the training settings and what
the model card says (license, paper, expected metrics). Dotted ``key=value`` overrides change
any field from the command line (``training.lr=0.01``); values are parsed as YAML.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError

HUB_ORG = "zooscope"

TRAINING_DEFAULTS = {
    "epochs": 1,
    "batch_size": 64,  # global batch: split between processes; "full" for full-batch training
    "eval_batch_size": 1024,
    "optimizer": "adamw",  # adamw | adam | sgd
    "lr": 1e-3,
    "weight_decay": 0.0,
    "momentum": 0.0,  # sgd only
    "scheduler": "constant",  # any transformers.get_scheduler name
    "warmup_steps": 0,
    "max_grad_norm": None,
    "seed": 0,
    "mixed_precision": None,  # no | fp16 | bf16; None: whatever `accelerate launch`/config says, else no
    "checkpoint_every": 0,  # steps between save_state; 0: only at the end of each epoch
    "keep_checkpoints": 2,
    "stop_after_steps": None,  # stop early (the schedule is unchanged), e.g. to split a long run
    "eval_split": "test",
    "eval_on_train": False,  # also measure loss/accuracy on the training set each epoch (train_eval_*)
}
TOP_LEVEL_FIELDS = {"id", "architecture", "description", "config", "data", "training", "card", "paper", "output_dir"}


def recipe_dirs() -> list[Path]:
    """Where recipes are looked up by id: $ZOO_RECIPES_DIR, ./hub_configs, the checkout's hub_configs."""
    dirs = [Path(p) for p in os.environ.get("ZOO_RECIPES_DIR", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "hub_configs", Path(__file__).resolve().parent.parent / "hub_configs"]
    return list(dict.fromkeys(d.resolve() for d in dirs if d.is_dir()))


def list_recipes() -> list[str]:
    return sorted({p.stem for d in recipe_dirs() for p in d.glob("*.yaml")})


@dataclass
class Recipe:
    id: str
    architecture: str
    config: dict
    data: dict  # {"name": ..., **parameters}
    training: dict
    card: dict = field(default_factory=dict)
    paper: dict = field(default_factory=dict)  # the `paper:` block, checked by zoo.results.validate_paper_block
    description: str = ""
    output_dir: str | None = None
    source: Path | None = None

    @property
    def repo_id(self) -> str:
        return f"{HUB_ORG}/{self.id}"

    @property
    def data_name(self) -> str:
        return self.data["name"]

    @property
    def data_params(self) -> dict:
        return {k: v for k, v in self.data.items() if k not in ("name", "eval_split")}

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir or Path("outputs") / self.id)

    def to_dict(self) -> dict:
        out = {
            "id": self.id, "architecture": self.architecture, "description": self.description,
            "config": self.config, "data": self.data, "training": self.training, "card": self.card,
        }
        if self.paper:
            out["paper"] = self.paper
        if self.output_dir:
            out["output_dir"] = str(self.output_dir)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`["training.lr=0.01", "config.hidden_sizes=[64]"]` applied to a recipe dict (a copy)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. training.lr=0.01)")
        parts = key.split(".")
        if parts[0] not in TOP_LEVEL_FIELDS:
            raise UserError(f"override {item!r}: unknown recipe field {parts[0]!r}; fields: {', '.join(sorted(TOP_LEVEL_FIELDS))}")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {part!r} is not a mapping")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise UserError(f"override {item!r}: value is not valid YAML ({error})") from None
    return raw


def load_recipe(path_or_id: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe from a YAML path or a recipe id (looked up in hub_configs/)."""
    path = Path(path_or_id)
    if not path.exists():
        if path.suffix in (".yaml", ".yml") or os.sep in str(path_or_id):
            raise UserError(f"recipe file {str(path_or_id)!r} does not exist")
        matches = [d / f"{path_or_id}.yaml" for d in recipe_dirs() if (d / f"{path_or_id}.yaml").exists()]
        if not matches:
            from .registry import unknown_name_error

            raise unknown_name_error("recipe", str(path_or_id), list_recipes())
        path = matches[0]
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe is a YAML mapping")
    raw = apply_overrides(raw, overrides or [])
    unknown = set(raw) - TOP_LEVEL_FIELDS
    if unknown:
        raise UserError(f"{path}: unknown recipe field(s) {', '.join(sorted(unknown))}; fields: {', '.join(sorted(TOP_LEVEL_FIELDS))}")
    for required in ("architecture", "data"):
        if required not in raw:
            raise UserError(f"{path}: recipe needs a {required!r} field")
    data = raw["data"] if isinstance(raw["data"], dict) else {"name": raw["data"]}
    if "name" not in data:
        raise UserError(f"{path}: data needs a 'name' (one of the zoo data sets)")
    training = dict(TRAINING_DEFAULTS)
    unknown = set(raw.get("training") or {}) - set(TRAINING_DEFAULTS)
    if unknown:
        raise UserError(f"{path}: unknown training setting(s) {', '.join(sorted(unknown))}; settings: {', '.join(TRAINING_DEFAULTS)}")
    training.update(raw.get("training") or {})
    recipe = Recipe(
        id=str(raw.get("id") or path.stem),
        architecture=raw["architecture"],
        config=dict(raw.get("config") or {}),
        data=data,
        training=training,
        card=dict(raw.get("card") or {}),
        paper=_paper_block(raw.get("paper"), path),
        description=raw.get("description", ""),
        output_dir=raw.get("output_dir"),
        source=path,
    )
    _validate(recipe)
    return recipe


def _paper_block(block, path) -> dict:
    from .paper import validate_paper_block

    return validate_paper_block(block, where=f"{path}: paper") if block is not None else {}


def _validate(recipe: Recipe) -> None:
    from . import data as zoo_data
    from .registry import build_config

    build_config(recipe.architecture, **recipe.config)  # raises UserError on an unknown arch / bad value
    zoo_data.dataset_parameters(recipe.data_name)  # raises UserError on an unknown data set
    t = recipe.training
    for key in ("epochs", "eval_batch_size", "seed", "checkpoint_every", "warmup_steps", "keep_checkpoints"):
        if not isinstance(t[key], int) or isinstance(t[key], bool) or t[key] < 0:
            raise UserError(f"training.{key} must be a non-negative integer, got {t[key]!r}")
    if t["batch_size"] != "full" and (not isinstance(t["batch_size"], int) or t["batch_size"] < 1):
        raise UserError(f"training.batch_size must be a positive integer or 'full', got {t['batch_size']!r}")
    if t["optimizer"] not in ("adamw", "adam", "sgd"):
        raise UserError(f"training.optimizer must be adamw, adam or sgd, got {t['optimizer']!r}")
    if t["mixed_precision"] not in (None, "no", "fp16", "bf16", "fp8"):
        raise UserError(f"training.mixed_precision must be no, fp16, bf16 or fp8, got {t['mixed_precision']!r}")
    if not isinstance(t["lr"], (int, float)) or t["lr"] <= 0:
        raise UserError(f"training.lr must be a positive number, got {t['lr']!r}")
