"""The README's commands are the ones CI and users run."""
from __future__ import annotations

import re

from .conftest import REPO_ROOT


def readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick_start)


def test_quick_start_has_exactly_two_commands():
    commands = readme_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    main_job, tests = commands
    assert "train.py hub_configs/" in main_job and "zoo publish" in main_job and "zoo evaluate" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_readme_recipe_exists():
    main_job = readme_commands()[0]
    recipe = re.search(r"train\.py (hub_configs/\S+\.yaml)", main_job).group(1)
    assert (REPO_ROOT / recipe).exists()
