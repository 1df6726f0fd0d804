"""What `zoo list` shows, read from the source files without importing torch or transformers.

Importing the registry means importing every architecture (torch + transformers: seconds on a
laptop) and the data sets mean `datasets`; a listing needs neither. This module reads the same
facts straight from the files: each architecture folder's ``ARCHITECTURE`` literals and its
config's ``model_type``, and each data module's ``@register_dataset("name")``. A test checks the
result against the imported registry, so the two cannot drift apart.
"""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
MODELS_PATH_ENV = "ZOO_MODELS_PATH"  # the registry's extra search path (zoo.registry reads the same variable)


@dataclass(frozen=True)
class ArchitectureSummary:
    name: str  # the config's model_type
    task_auto_class: str | None
    description: str


def _literal_fields(call: ast.Call) -> dict:
    fields = {}
    for keyword in call.keywords:
        try:
            fields[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:  # a class or other expression: not needed for the listing
            continue
    return fields


def _model_type(folder: Path) -> str | None:
    for path in folder.glob("configuration_*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "model_type" for t in node.targets):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    return node.value.value
    return None


def model_folders() -> list[Path]:
    roots = [PACKAGE_ROOT / "models"] + [Path(p) for p in os.environ.get(MODELS_PATH_ENV, "").split(os.pathsep) if p]
    return sorted(f for root in roots if root.is_dir() for f in root.iterdir() if (f / "__init__.py").is_file())


def architectures() -> list[ArchitectureSummary]:
    """Every folder that declares ``ARCHITECTURE = dict(...)``, as the registry would find it."""
    found = {}
    for folder in model_folders():
        tree = ast.parse((folder / "__init__.py").read_text())
        for node in tree.body:
            if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ARCHITECTURE" for t in node.targets)
                    and isinstance(node.value, ast.Call)):
                fields = _literal_fields(node.value)
                name = _model_type(folder)
                if name:
                    found[name] = ArchitectureSummary(name, fields.get("task_auto_class"), fields.get("description", ""))
    return [found[n] for n in sorted(found)]


def dataset_names() -> list[str]:
    """The names the data modules register with ``@register_dataset("name")``."""
    names = set()
    for path in sorted((PACKAGE_ROOT / "data").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef):
                for decorator in node.decorator_list:
                    if (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "register_dataset"
                            and decorator.args and isinstance(decorator.args[0], ast.Constant)):
                        names.add(decorator.args[0].value)
    return sorted(names)
