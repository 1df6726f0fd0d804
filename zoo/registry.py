"""The one registry: model_type → configuration class, model class, task, folder.

Every sub-package of ``zoo.models`` that declares ``ARCHITECTURE`` is discovered here and
registered with transformers' AutoConfig, AutoModel and its task Auto class, so a new
architecture needs no edit outside its own folder.
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import inspect
import os
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path

import transformers
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from .errors import UserError, unknown_name_error  # noqa: F401 (re-exported)


AUTO_CLASS_TO_PIPELINE_TAG = {
    "AutoModelForImageClassification": "image-classification",
    "AutoModelForCausalLM": "text-generation",
}
# Extra folders holding architecture sub-packages (os.pathsep-separated), searched after zoo/models.
from .catalog import MODELS_PATH_ENV  # noqa: E402 (one name for the variable, read by the static catalog too)
OUTPUTS = ("classes", "field")  # Architecture.output
_RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.(\w+)\s+import\s", re.MULTILINE)


@dataclass(frozen=True)
class Architecture:
    """What the zoo knows about one architecture (declared by its folder's ``ARCHITECTURE`` dict)."""

    name: str  # == config_class.model_type
    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]  # the task model create_model builds and training trains
    task_auto_class: str | None  # e.g. "AutoModelForImageClassification"; None: AutoModel only
    description: str
    paper: str  # BibTeX of the family's paper
    tiny_config: dict = field(default_factory=dict)  # small enough for tests
    base_model_class: type[PreTrainedModel] | None = None  # the backbone, what AutoModel returns
    # exported as preprocessor_config.json; a class, or "module.Class" in the folder (imported on
    # first use: Pillow and transformers' image code need not load with `import zoo`)
    image_processor_class: type | str | None = None
    pipeline_tag: str | None = None  # the Hub task; default from task_auto_class
    # what a demo feeds it: "image" | "sequence" | "tabular" | "grid"; None: inferred from the
    # config (zoo-explorer's try-it panel, spaces/_shared/zooscope_spaces/explorer.py)
    input_kind: str | None = None
    # what the task model's logits are: "classes" (batch, num_labels) class scores or regression
    # outputs; "field": a field (batch, config.out_channels, *the input's grid) regressed with float
    # labels of that shape, the loss the relative L2 error ‖logits − labels‖ / ‖labels‖ per
    # example, averaged (operator learning); no num_labels classifier or scalar-regressor variant
    output: str = "classes"

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"architecture {self.name}: output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")

    @property
    def backbone_class(self) -> type[PreTrainedModel]:
        """What AutoModel returns: the backbone, or the model itself for a one-class architecture."""
        return self.base_model_class or self.model_class

    @property
    def processor_class(self) -> type | None:
        """The image processor class (imported now if the folder named it by a string)."""
        ref = self.image_processor_class
        if isinstance(ref, str):
            module, _, name = ref.rpartition(".")
            package = self.config_class.__module__.rsplit(".", 1)[0]
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        return ref

    @property
    def task(self) -> str | None:
        """The Hub pipeline tag of the task model (None when no task fits)."""
        return self.pipeline_tag or AUTO_CLASS_TO_PIPELINE_TAG.get(self.task_auto_class or "")

    @property
    def folder(self) -> Path:
        """The folder of the architecture's configuration/modeling pair (its remote code)."""
        return Path(importlib.import_module(self.model_class.__module__).__file__).parent

    @property
    def code_files(self) -> list[Path]:
        """The files a Hub repo needs: configuration_<name>.py, modeling_<name>.py, the image
        processor's file, and every same-folder module they import (e.g. zoo_common.py)."""
        classes = [self.config_class, self.model_class, self.backbone_class]
        if self.image_processor_class is not None:
            classes.append(self.processor_class)
        files: list[Path] = []
        for cls in classes:
            path = Path(importlib.import_module(cls.__module__).__file__)
            if path not in files:
                files.append(path)
        for path in files:  # grows while it runs: the relative-import closure, as transformers follows it
            for name in _RELATIVE_IMPORT.findall(path.read_text()):
                sibling = path.parent / f"{name}.py"
                if sibling.exists() and sibling not in files:
                    files.append(sibling)
        return files

    @staticmethod
    def _ref(cls) -> str:
        return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"

    @property
    def auto_map(self) -> dict[str, str]:
        """config.json's `auto_map`: Auto class → "module.Class" in the repo's own files."""
        auto_map = {"AutoConfig": self._ref(self.config_class), "AutoModel": self._ref(self.backbone_class)}
        if self.task_auto_class:
            auto_map[self.task_auto_class] = self._ref(self.model_class)
        return auto_map

    @property
    def min_transformers_version(self) -> str:
        """The oldest transformers the folder's code loads on (its zoo_common.MIN_TRANSFORMERS_VERSION)."""
        package = self.config_class.__module__.rsplit(".", 1)[0]
        try:
            return importlib.import_module(f"{package}.zoo_common").MIN_TRANSFORMERS_VERSION
        except (ImportError, AttributeError):
            return transformers.__version__  # unknown: only the version it runs on here is known to work

    @property
    def requirement_note(self) -> str:
        """One sentence for the model card."""
        note = (f"Needs `transformers>={self.min_transformers_version}` (4.x and 5.x) and torch; "
                "the modeling code ships with the repo, so zooscope need not be installed.")
        if self.image_processor_class is not None:
            note += (" The image processor needs Pillow; on transformers 4.x name it in the pipeline call "
                     "(`image_processor=<repo id>`), 5.x finds it by itself.")
        return note

    def export_config(self, config: dict) -> dict:
        """config.json as published: the saved config plus `auto_map` and the transformers requirement."""
        return {**config, "auto_map": self.auto_map, "min_transformers_version": self.min_transformers_version}

    def preprocessor_config(self, config: dict) -> dict | None:
        """preprocessor_config.json for a model config (a dict as in config.json), or None when the
        architecture has no image processor. AutoImageProcessor (trust_remote_code) reads it."""
        cls = self.processor_class
        if cls is None:
            return None
        processor = cls.for_model_config(config)
        out = {key: value for key, value in processor.to_dict().items() if not key.startswith("_")}
        out["image_processor_type"] = cls.__name__
        out["auto_map"] = {"AutoImageProcessor": self._ref(cls)}
        return out

    @property
    def config_keys(self) -> set[str]:
        """The keys a config of this architecture accepts: its own fields and PretrainedConfig's."""
        own = {p for p in inspect.signature(self.config_class.__init__).parameters if p not in ("self", "kwargs")}
        return own | _common_config_keys()


_REGISTRY: dict[str, Architecture] = {}


@functools.lru_cache(maxsize=1)
def _common_config_keys() -> frozenset[str]:
    # every attribute a bare PretrainedConfig has (return_dict, id2label, problem_type, dtype, ...),
    # plus what a saved or published config.json carries
    extra = {"model_type", "transformers_version", "architectures", "auto_map", "_name_or_path",
             "min_transformers_version", "num_labels"}
    return frozenset(PretrainedConfig().to_dict()) | extra


def _models_path_from_env() -> None:
    from . import models

    for entry in filter(None, os.environ.get(MODELS_PATH_ENV, "").split(os.pathsep)):
        path = str(Path(entry).resolve())
        if path not in models.__path__:
            models.__path__.append(path)


def add_models_path(path: str | Path) -> list[str]:
    """Search `path` for architecture folders too (as $ZOO_MODELS_PATH does); returns the new names."""
    from . import models

    path = str(Path(path).resolve())
    if path not in models.__path__:
        models.__path__.append(path)
    before = set(_REGISTRY)
    _discover()
    return sorted(set(_REGISTRY) - before)


def _discover() -> None:
    from . import models

    for info in pkgutil.iter_modules(models.__path__):
        if not info.ispkg or info.name.startswith("_"):  # _shared holds the sources of shared files
            continue
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        spec = getattr(module, "ARCHITECTURE", None)
        if spec is None:
            continue
        arch = Architecture(name=spec["config_class"].model_type, **spec)
        if arch.name not in _REGISTRY:
            register(arch)


def register(arch: Architecture) -> None:
    """Add an architecture to the registry and to transformers' Auto classes."""
    _REGISTRY[arch.name] = arch
    AutoConfig.register(arch.name, arch.config_class, exist_ok=True)
    AutoModel.register(arch.config_class, arch.backbone_class, exist_ok=True)
    if arch.task_auto_class:
        getattr(transformers, arch.task_auto_class).register(arch.config_class, arch.model_class, exist_ok=True)


def auto_class_for(config) -> type:
    """The transformers Auto class that loads the task model of a zoo config (an instance or a
    config.json dict), not the backbone AutoModel returns.

    That is the architecture's task Auto class, except for a repo run as remote code that maps
    no such class (round-1 repos of two_layer_mlp map only AutoModel, to their whole network).
    A config of a class registered here means transformers uses the registered classes, which
    have the task class.
    """
    is_dict = isinstance(config, dict)
    model_type = config.get("model_type") if is_dict else getattr(config, "model_type", None)
    auto_map = (config.get("auto_map") if is_dict else getattr(config, "auto_map", None)) or {}
    arch = _REGISTRY.get(model_type)
    name = arch.task_auto_class if arch is not None else None
    if not name:
        return AutoModel
    local = not is_dict and isinstance(config, arch.config_class)
    if local or not auto_map or name in auto_map:
        return getattr(transformers, name)
    return AutoModel


def get_architecture(name: str) -> Architecture:
    if name not in _REGISTRY:
        raise unknown_name_error("architecture", name, list(_REGISTRY))
    return _REGISTRY[name]


def list_architectures(pattern: str | None = None) -> list[str]:
    return sorted(n for n in _REGISTRY if pattern is None or fnmatch.fnmatch(n, pattern))


def check_config_keys(arch_name: str, keys, where: str = "config") -> None:
    """A UserError for the first key an `arch_name` config does not take, naming the close matches.

    PretrainedConfig stores unknown keys as attributes without a word, so a typo
    (``hiden_sizes``) would build the default model; recipes and overrides call this too.
    """
    arch = get_architecture(arch_name)
    known = arch.config_keys
    for key in keys:
        if key in known:
            continue
        own = sorted(known - _common_config_keys())
        close = difflib.get_close_matches(key, own, n=3, cutoff=0.7) or difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.75)
        hint = f"did you mean {', '.join(close)}?" if close else f"{arch_name} takes: {', '.join(own)}"
        raise UserError(f"unknown {where} key {key!r} for architecture {arch_name}; {hint}")


def build_config(name: str, **overrides) -> PretrainedConfig:
    """The architecture's config with `overrides`; an unknown key or an invalid value is a UserError naming the field."""
    arch = get_architecture(name)
    check_config_keys(name, overrides)
    try:
        return arch.config_class(**overrides)
    except (TypeError, ValueError) as error:
        raise UserError(f"invalid {name} config: {error}") from error


def build_model(name: str, **config_overrides) -> PreTrainedModel:
    """A fresh task model of architecture `name` (e.g. MLPForImageClassification); an unknown or
    invalid config key is a UserError naming the field. Recipe ids and published weights:
    ``zoo.create_model`` (zoo.api)."""
    return get_architecture(name).model_class(build_config(name, **config_overrides))


_models_path_from_env()
_discover()
