"""Lazy re-exports for the tool packages: ``analysis.depth.run_depth`` imports its module on first use.

`zoo-analysis --help` needs only each tool's ``add_cli``; importing every module up front would load
torch (seconds). No submodule is named like a function it exports, so importing one never hides
a name of the package.
"""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict, namespace: dict):
    """The package's ``__getattr__`` and ``__dir__``: `exports` maps a public name to the module that
    defines it (``"report"``) or to ``(module, name there)`` for a name kept under an older alias."""

    def __getattr__(name: str):
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = (where, name) if isinstance(where, str) else where
        value = getattr(importlib.import_module(f"{package}.{module}"), attribute)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
