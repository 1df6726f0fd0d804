"""Shared fixtures: an isolated Hugging Face cache, tiny recipes, subprocess helpers."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

# A tiny recipe on sklearn's digits (always available): 22 steps per epoch at batch 64.
TINY_RECIPE = {
    "id": "tiny-mlp-digits",
    "architecture": "mlp",
    "config": {"image_size": 8, "hidden_sizes": [16], "num_labels": 10},
    "data": {"name": "digits"},
    "training": {"epochs": 2, "batch_size": 64, "lr": 0.01, "checkpoint_every": 10, "seed": 3},
}


@pytest.fixture
def hf_env(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache for this test (and the subprocesses it starts)."""
    env = {
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "HF_MODULES_CACHE": str(tmp_path / "hf-modules"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # huggingface_hub read the environment at import: point this process's constants there too
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", env["HF_HUB_CACHE"])
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    return {**os.environ, **env}


@pytest.fixture
def tiny_recipe(tmp_path):
    """Write the tiny recipe (with optional changes) to a YAML file and return its path."""

    def write(**changes) -> Path:
        recipe = yaml.safe_load(yaml.safe_dump(TINY_RECIPE))
        for key, value in changes.items():
            recipe[key] = {**recipe[key], **value} if isinstance(value, dict) and key in recipe else value
        path = tmp_path / f"{recipe['id']}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        return path

    return write


def run(args: list[str], env: dict | None = None, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a command, capturing output; the caller asserts on the return code."""
    return subprocess.run(args, env=env, cwd=cwd or REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def run_python(code: str, env: dict | None = None, block_zoo: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter; `block_zoo` makes `import zoo` fail there."""
    prelude = "import sys; sys.modules['zoo'] = None; sys.modules['analysis'] = None\n" if block_zoo else ""
    return run([sys.executable, "-c", prelude + code], env=env, **kwargs)


@pytest.fixture(scope="session")
def single_run(tmp_path_factory):
    """The tiny recipe trained by `python train.py` in one process: the reference the other
    runs (2 processes, resumed, killed and resumed, ...) are compared with."""
    folder = tmp_path_factory.mktemp("single")
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    proc = run([sys.executable, "train.py", str(recipe), f"output_dir={folder / 'out'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe, folder / "out"
