"""Training recipes: one YAML per published checkpoint, in hub_configs/.

A recipe names the architecture and its config, the data set, the training settings and what
the model card says (license, paper, expected metrics). Dotted ``key=value`` overrides change
any field from the command line (``training.lr=0.01``); values are parsed as YAML (with YAML
1.2's floats, so ``3e-4`` is a number, as in the recipe files themselves).
"""
from __future__ import annotations

import copy
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError

HUB_ORG = "zooscope"

class RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's float syntax.

    PyYAML implements YAML 1.1, where a float needs a dot: ``3e-4`` would be the string "3e-4"
    and ``training.lr=3e-4`` would fail as "not a number". YAML 1.2 (and every other YAML
    library people write recipes with) reads it as 0.0003.
    """


RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_yaml(text: str):
    """Read recipe YAML (a file's text or one override value) the way `load_recipe` does."""
    return yaml.load(text, Loader=RecipeLoader)


def close_matches(name: str, known) -> str:
    """" (did you mean X?)" for the close matches of `name` among `known`, else ""."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


TRAINING_DEFAULTS = {
    "trainer": "sgd",  # the accelerate loop; a registered trainer name or "package.module:Class"
    "trainer_options": {},  # settings of the chosen trainer (it validates them)
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
    "checkpoint_every": 0,  # steps between save_state; 0: only at the end of each epoch; null / never: no checkpoints
    "keep_checkpoints": 2,
    "stop_after_steps": None,  # stop early (the schedule is unchanged), e.g. to split a long run
    "eval_split": "test",
    "eval_on_train": False,  # also measure loss/accuracy on the training set each epoch (train_eval_*)
    "eval_every_steps": None,  # per-step curves: evaluate every N steps (metrics.json "curves"); null: off,
    # except for full-batch training (batch_size: full), where it defaults to every step
}
NEVER = "never"
TOP_LEVEL_FIELDS = {"id", "architecture", "description", "config", "data", "training", "card", "paper", "output_dir",
                    "ci"}
# Schedulers the loop can drive: reduce_lr_on_plateau needs a metric at every step, the loop gives none.
UNSUPPORTED_SCHEDULERS = {"reduce_lr_on_plateau"}


def recipe_dirs() -> list[Path]:
    """Where recipes are looked up by id: $ZOO_RECIPES_DIR, ./hub_configs, the checkout's hub_configs,
    and the copy an installed wheel carries (zoo/hub_configs, put there by setup.py)."""
    dirs = [Path(p) for p in os.environ.get("ZOO_RECIPES_DIR", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs += [Path.cwd() / "hub_configs", here.parent / "hub_configs", here / "hub_configs"]
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
    description: str = ""
    paper: dict | None = None  # the paper's claim and number (zoo.results validates it)
    output_dir: str | None = None
    # {dotted key: value}: the overrides that shrink this recipe to a few seconds; the test suite
    # trains every recipe in hub_configs/ with them (tests/test_zoo_recipes.py)
    ci: dict = field(default_factory=dict)
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
        if self.paper is not None:
            out["paper"] = self.paper
        if self.output_dir:
            out["output_dir"] = str(self.output_dir)
        if self.ci:
            out["ci"] = self.ci
        return out

    def ci_overrides(self) -> list[str]:
        """The `ci:` mapping as key=value overrides (values written as JSON, which YAML reads back)."""
        return [f"{key}={json.dumps(value)}" for key, value in self.ci.items()]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def checkpointing(self) -> bool:
        """False when `training.checkpoint_every` is null / never: no save_state at all."""
        return self.training["checkpoint_every"] not in (None, NEVER)

    @property
    def eval_every_steps(self) -> int | None:
        """Steps between the evaluations of metrics.json's "curves" (None: no curves)."""
        every = self.training["eval_every_steps"]
        if every is None and self.training["batch_size"] == "full":
            return 1  # full-batch GD: every step is an epoch, and the papers plot every step
        return None if every in (None, NEVER, 0) else every


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`["training.lr=0.01", "config.hidden_sizes=[64]"]` applied to a recipe dict (a copy)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. training.lr=0.01)")
        parts = key.split(".")
        if parts[0] not in TOP_LEVEL_FIELDS:
            raise UserError(f"override {item!r}: unknown recipe field {parts[0]!r}{close_matches(parts[0], TOP_LEVEL_FIELDS)}; "
                            f"fields: {', '.join(sorted(TOP_LEVEL_FIELDS))}")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {part!r} is not a mapping")
        try:
            node[parts[-1]] = parse_yaml(value)
        except yaml.YAMLError as error:
            raise UserError(f"override {item!r}: value is not valid YAML ({error})") from None
    return raw


def read_recipe_file(path_or_id: str | Path) -> dict:
    """A recipe's YAML mapping as written (no overrides, not validated), from a path or an id."""
    return _read_raw(path_or_id)[1]


def _read_raw(path_or_id: str | Path) -> tuple[Path, dict]:
    path = Path(path_or_id)
    if not path.exists():
        if path.suffix in (".yaml", ".yml") or os.sep in str(path_or_id):
            raise UserError(f"recipe file {str(path_or_id)!r} does not exist")
        matches = [d / f"{path_or_id}.yaml" for d in recipe_dirs() if (d / f"{path_or_id}.yaml").exists()]
        if not matches:
            from .errors import unknown_name_error

            raise unknown_name_error("recipe", str(path_or_id), list_recipes())
        path = matches[0]
    try:
        raw = parse_yaml(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe is a YAML mapping")
    return path, raw


def load_recipe(path_or_id: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe from a YAML path or a recipe id (looked up in hub_configs/)."""
    path, raw = _read_raw(path_or_id)
    raw = apply_overrides(raw, overrides or [])
    unknown = sorted(set(raw) - TOP_LEVEL_FIELDS)
    if unknown:
        raise UserError(f"{path}: unknown recipe field(s) {', '.join(unknown)}{close_matches(unknown[0], TOP_LEVEL_FIELDS)}; "
                        f"fields: {', '.join(sorted(TOP_LEVEL_FIELDS))}")
    for required in ("architecture", "data"):
        if required not in raw:
            raise UserError(f"{path}: recipe needs a {required!r} field")
    data = raw["data"] if isinstance(raw["data"], dict) else {"name": raw["data"]}
    if "name" not in data:
        raise UserError(f"{path}: data needs a 'name' (one of the zoo data sets)")
    for section in ("config", "training", "card", "paper", "ci"):
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise UserError(f"{path}: {section} must be a mapping, got {raw[section]!r}")
    training = copy.deepcopy(TRAINING_DEFAULTS)
    unknown = sorted(set(raw.get("training") or {}) - set(TRAINING_DEFAULTS))
    if unknown:
        raise UserError(f"{path}: unknown training setting(s) {', '.join('training.' + k for k in unknown)}"
                        f"{close_matches(unknown[0], TRAINING_DEFAULTS)}; settings: {', '.join(TRAINING_DEFAULTS)}")
    training.update(raw.get("training") or {})
    recipe = Recipe(
        id=str(raw.get("id") or path.stem),
        architecture=raw["architecture"],
        config=dict(raw.get("config") or {}),
        data=data,
        training=training,
        card=dict(raw.get("card") or {}),
        description=raw.get("description", ""),
        paper=raw.get("paper"),
        output_dir=raw.get("output_dir"),
        ci=dict(raw.get("ci") or {}),
        source=path,
    )
    _validate(recipe)
    return recipe


def _check_config_keys(recipe: Recipe) -> None:
    # PretrainedConfig keeps unknown keys as stray attributes: a typo (`hidden_size` for
    # `hidden_sizes`) would silently train the default. The registry knows each config's keys.
    from .registry import check_config_keys

    check_config_keys(recipe.architecture, recipe.config, where="recipe config")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(recipe: Recipe) -> None:
    from . import data as zoo_data
    from .registry import build_config

    _check_config_keys(recipe)  # raises UserError on an unknown architecture too
    build_config(recipe.architecture, **recipe.config)  # raises UserError on a bad value
    zoo_data.dataset_parameters(recipe.data_name)  # raises UserError on an unknown data set
    if recipe.paper is not None:  # the paper: block's rules belong to the results table (zoo.paper, below recipes)
        from .paper import validate_paper_block

        recipe.paper = validate_paper_block(recipe.paper, where=f"{recipe.source}: paper" if recipe.source else "paper")
    t = recipe.training
    for key in ("epochs", "eval_batch_size", "seed", "warmup_steps", "keep_checkpoints"):
        if not _is_int(t[key]) or t[key] < 0:
            raise UserError(f"training.{key} must be a non-negative integer, got {t[key]!r}")
    if t["checkpoint_every"] not in (None, NEVER) and (not _is_int(t["checkpoint_every"]) or t["checkpoint_every"] < 0):
        raise UserError(f"training.checkpoint_every must be a non-negative integer (0: at each epoch's end) "
                        f"or null / never (no checkpoints), got {t['checkpoint_every']!r}")
    if t["eval_every_steps"] not in (None, NEVER) and (not _is_int(t["eval_every_steps"]) or t["eval_every_steps"] < 0):
        raise UserError(f"training.eval_every_steps must be a positive integer or null / never, got {t['eval_every_steps']!r}")
    if t["stop_after_steps"] is not None:
        if not _is_int(t["stop_after_steps"]) or t["stop_after_steps"] < 1:
            raise UserError(f"training.stop_after_steps must be a positive integer or null, got {t['stop_after_steps']!r}")
        if not recipe.checkpointing:
            raise UserError("training.stop_after_steps needs checkpoints to resume from, "
                            f"but training.checkpoint_every is {t['checkpoint_every']!r}")
    if not isinstance(t["trainer"], str) or not t["trainer"]:
        raise UserError(f"training.trainer must be a trainer name or package.module:Class, got {t['trainer']!r}")
    if not isinstance(t["trainer_options"], dict):
        raise UserError(f"training.trainer_options must be a mapping, got {t['trainer_options']!r}")
    if not isinstance(t["scheduler"], str):
        raise UserError(f"training.scheduler must be a scheduler name, got {t['scheduler']!r}")
    from transformers.trainer_utils import SchedulerType

    schedulers = [s.value for s in SchedulerType if s.value not in UNSUPPORTED_SCHEDULERS]
    if t["scheduler"] not in schedulers:
        raise UserError(f"unknown training.scheduler {t['scheduler']!r}{close_matches(t['scheduler'], schedulers)}; "
                        f"schedulers: {', '.join(schedulers)}")
    if t["batch_size"] != "full" and (not isinstance(t["batch_size"], int) or t["batch_size"] < 1):
        raise UserError(f"training.batch_size must be a positive integer or 'full', got {t['batch_size']!r}")
    if t["optimizer"] not in ("adamw", "adam", "sgd"):
        raise UserError(f"training.optimizer must be adamw, adam or sgd, got {t['optimizer']!r}")
    if t["mixed_precision"] not in (None, "no", "fp16", "bf16", "fp8"):
        raise UserError(f"training.mixed_precision must be no, fp16, bf16 or fp8, got {t['mixed_precision']!r}")
    if not isinstance(t["lr"], (int, float)) or isinstance(t["lr"], bool) or t["lr"] <= 0:
        raise UserError(f"training.lr must be a positive number, got {t['lr']!r}")
