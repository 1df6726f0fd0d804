"""The everyday commands start fast: `zoo --help`, `zoo-analysis --help` and `zoo list` import no
torch, transformers or datasets (those take seconds to import; the goal is < 1.5 s / < 3 s).
Checking the imports, not the clock, keeps the test exact on a loaded CI machine."""
from __future__ import annotations

import sys

import pytest

from tests.conftest import run_python

HEAVY = ("torch", "transformers", "datasets", "gradio")


@pytest.mark.parametrize("code", [
    "import zoo.cli; zoo.cli.build_parser().format_help()",
    "import analysis.cli; analysis.cli.build_parser().format_help()",
    "import zoo.cli; zoo.cli.main(['list'])",
    "import zoo",
])
def test_everyday_commands_import_nothing_heavy(code, hf_env):
    check = f"import sys\n{code}\nheavy = [m for m in {HEAVY!r} if m in sys.modules]\nassert not heavy, heavy\nprint('ok')"
    result = run_python(check, env=hf_env)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_catalog_agrees_with_the_registry():
    """`zoo list` reads architectures and data sets from the files; the imported registry is the truth."""
    from zoo import catalog, data, registry

    static = {a.name: (a.task_auto_class, a.description) for a in catalog.architectures()}
    imported = {name: (registry.get_architecture(name).task_auto_class, registry.get_architecture(name).description)
                for name in registry.list_architectures()}
    assert static == imported
    assert catalog.dataset_names() == sorted(data.list_datasets())


def test_zoo_list_prints_every_architecture_recipe_and_data_set(hf_env):
    from zoo import catalog
    from zoo.recipes import list_recipes

    result = run_python("import zoo.cli, sys; sys.exit(zoo.cli.main(['list']))", env=hf_env)
    assert result.returncode == 0, result.stderr
    for arch in catalog.architectures():
        assert f"  {arch.name} " in result.stdout
    for recipe_id in list_recipes():
        assert f"  {recipe_id} " in result.stdout
    assert "not published here" in result.stdout  # the test's cache is empty
    line = next(row for row in result.stdout.splitlines() if row.startswith("data sets: "))
    assert line.removeprefix("data sets: ").split(", ") == catalog.dataset_names()  # every data set, sorted
