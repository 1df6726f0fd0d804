"""zooscope's model zoo: architectures from recent papers as transformers models.

``import zoo`` is cheap (no torch, no transformers): the CLIs start fast. The registry loads on
first use of ``zoo.create_model`` / ``zoo.list_models`` / ``zoo.get_architecture`` (or an explicit
``import zoo.registry``), and registering is what makes every architecture known to AutoConfig,
AutoModel and its task Auto class.
"""
from .errors import UserError

__version__ = "0.1.0"
__all__ = ["Architecture", "UserError", "create_model", "get_architecture", "list_models", "data", "__version__"]

_REGISTRY_NAMES = ("Architecture", "get_architecture")
_API_NAMES = ("create_model", "list_models")
_SUBMODULES = ("api", "data", "hub", "training", "recipes", "registry", "results")


def __getattr__(name):
    # Heavy imports (torch, transformers, datasets, huggingface_hub) happen here, on first use.
    import importlib

    if name in _REGISTRY_NAMES:
        return getattr(importlib.import_module("zoo.registry"), name)
    if name in _API_NAMES:
        return getattr(importlib.import_module("zoo.api"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
