"""The project's import graph: imports run one way and never in a cycle.

DESIGN.md: models <- registry <- recipes <- training / hub <- cli; `analysis` may use the zoo's
registry and hub but never its training; nothing in `zoo` imports `analysis` (or the Spaces).
Every import counts, also one inside a function or under `if TYPE_CHECKING:`: a lazy import is
still a dependency, and a cycle hidden behind one breaks as soon as somebody moves it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("zoo", "analysis")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            modules[module_name(path)] = path
    return modules


def imported_names(path: Path, module: str, is_package: bool) -> set[str]:
    """Absolute names of everything `path` imports (also inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "import_module"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(path, module, path.name == "__init__.py"):
            # `from pkg import sub` names pkg.sub: keep the longest prefix that is a project module
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as a closed path), or None. A package importing its own
    sub-modules (re-exports in __init__) is not a cycle unless the sub-module imports back
    something outside itself that leads to the package."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {node: WHITE for node in graph}
    stack: list[str] = []

    def visit(node):
        colour[node] = GREY
        stack.append(node)
        for target in sorted(graph[node]):
            if colour[target] == GREY:
                return stack[stack.index(target):] + [target]
            if colour[target] == WHITE:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(graph):
        if colour[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def _without_parent_package_edges(graph):
    """Importing `zoo.models.mlp` runs `zoo/__init__.py` and `zoo/models/__init__.py` first, but
    that is Python's package mechanics, not a design dependency: keep explicit imports only,
    minus a sub-module's edges to its own ancestors that exist only to reach a sibling."""
    return {node: {t for t in targets if not node.startswith(t + ".")} for node, targets in graph.items()}


def test_graph_sees_imports():
    # the checker itself: it must find edges we know exist
    graph = import_graph()
    assert "zoo.registry" in graph["zoo"]
    assert "zoo.errors" in graph["zoo.registry"]  # a relative import, `from .errors import UserError`


def test_no_import_cycles():
    graph = _without_parent_package_edges(import_graph())
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("source, forbidden", [
    ("zoo", "analysis"),
    ("zoo", "spaces"),
    ("analysis", "zoo.training"),
])
def test_layer_rule(source, forbidden):
    offenders = []
    for module, path in project_modules().items():
        if module != source and not module.startswith(source + "."):
            continue
        for name in imported_names(path, module, path.name == "__init__.py"):
            if name == forbidden or name.startswith(forbidden + "."):
                offenders.append(f"{module} imports {name}")
    assert not offenders, "\n".join(offenders)
