"""The benchmarks use the project's public API only (issue 10 items 5-6): no ``sys.path`` edits,
no ``tests`` imports, no ``_private`` names of the analysis / zoo modules, and every name they
take from a project module exists there (a refactor that drops one breaks this test, not a
benchmark run on a GPU machine weeks later)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))
PROJECT = ("analysis", "zoo")


def _project_uses(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(problems found from the source alone, [(module, attribute)] the file takes from project modules)."""
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    problems, uses = [], []
    if "sys.path" in source:
        problems.append("edits sys.path")
    aliases: dict[str, str] = {}  # local name -> project module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tests":
                    problems.append(f"imports {alias.name}")
                if alias.name.split(".")[0] in PROJECT:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            root = node.module.split(".")[0]
            if root == "tests":
                problems.append(f"imports from {node.module}")
            if root not in PROJECT:
                continue
            for alias in node.names:
                if alias.name.startswith("_"):
                    problems.append(f"imports the private {node.module}.{alias.name}")
                try:  # a sub-module (from analysis import convergent as cv) or a name in the module
                    importlib.import_module(f"{node.module}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                except ModuleNotFoundError:
                    uses.append((node.module, alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            module = aliases[node.value.id]
            if node.attr.startswith("_"):
                problems.append(f"uses the private {module}.{node.attr}")
            uses.append((module, node.attr))
    return problems, uses


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.name for p in BENCHMARKS])
def test_benchmark_uses_public_api_only(path):
    problems, uses = _project_uses(path)
    for module, name in sorted(set(uses)):
        if not hasattr(importlib.import_module(module), name):
            problems.append(f"uses {module}.{name}, which does not exist")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_checker_finds_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.path.insert(0, '..')\nfrom analysis import convergent as cv\n"
                   "from tests.analysis_fixtures import make_tiny\ncv._column_argmax(None)\ncv.no_such_name\n")
    problems, uses = _project_uses(bad)
    assert "edits sys.path" in problems
    assert "imports from tests.analysis_fixtures" in problems
    assert "uses the private analysis.convergent._column_argmax" in problems
    assert ("analysis.convergent", "no_such_name") in uses
