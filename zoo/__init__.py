"""zooscope's model zoo: architectures from recent papers as transformers models.

``import zoo`` registers every architecture with AutoConfig, AutoModel and its task Auto class.
"""
from .errors import UserError
from .registry import Architecture, create_model, get_architecture, list_models

__version__ = "0.1.0"
__all__ = ["Architecture", "UserError", "create_model", "get_architecture", "list_models", "data", "__version__"]


def __getattr__(name):
    # `zoo.data` and `zoo.hub` import datasets / huggingface_hub: load them on first use.
    if name in ("data", "hub", "training", "recipes"):
        import importlib

        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(name)
