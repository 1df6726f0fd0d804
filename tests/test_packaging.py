"""The wheel is complete: an installed zooscope (no checkout beside it) still knows every recipe id."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO_ROOT, run_python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            str(REPO_ROOT), "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (path,) = out.glob("zooscope-*.whl")
    return path


def test_wheel_carries_the_recipes(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = sorted(p.name for p in (REPO_ROOT / "hub_configs").glob("*.yaml"))
    assert recipes and all(f"zoo/hub_configs/{name}" in names for name in recipes)
    with zipfile.ZipFile(wheel) as archive:  # byte-identical copies
        for name in recipes:
            assert archive.read(f"zoo/hub_configs/{name}") == (REPO_ROOT / "hub_configs" / name).read_bytes()


def test_wheel_carries_the_launch_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.name for p in (REPO_ROOT / "zoo" / "training" / "launch").glob("*.yaml"))
    assert configs and all(f"zoo/training/launch/{name}" in names for name in configs)


def test_recipe_ids_work_from_the_installed_wheel(wheel, tmp_path, hf_env):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"  # no hub_configs/ in the working directory either
    elsewhere.mkdir()
    code = ("import zoo.recipes as r; from pathlib import Path\n"
            f"assert Path(r.__file__).is_relative_to({str(site)!r}), r.__file__\n"
            "print(','.join(r.list_recipes())); print(r.read_recipe_file('mlp-fashion-mnist')['architecture'])")
    result = run_python(code, env={**hf_env, "PYTHONPATH": str(site)}, cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    listed, architecture = result.stdout.split()
    assert listed.split(",") == sorted(p.stem for p in (REPO_ROOT / "hub_configs").glob("*.yaml"))
    assert architecture == "mlp"
