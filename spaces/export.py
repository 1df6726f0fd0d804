"""``python -m spaces.export NAME DIR``: write a folder that a Hugging Face Space builds as it is.

No package index serves zooscope, and a Space's build installs ``requirements.txt`` before the
repository's files are copied in (only that one file is mounted then), so a requirement that
points at a wheel inside the folder cannot work there. The folder therefore carries zooscope
itself, installed from a wheel built from this checkout: the wheel is unpacked next to
``app.py`` (its ``zoo``/``analysis`` packages and its ``.dist-info``, exactly what pip would put
in site-packages; the app's folder is first on ``sys.path``), and ``requirements.txt`` lists
zooscope's third-party dependencies, read from that wheel's metadata, with the Space's own
extras. The folder holds:

    DIR/app.py, DIR/README.md         the Space and its card (YAML header: sdk, app_file, ...)
    DIR/zooscope_spaces/               the Spaces' shared code
    DIR/zoo/, DIR/analysis/, DIR/zooscope-<version>.dist-info/   zooscope, from the wheel
    DIR/wheels/zooscope-<version>-py3-none-any.whl               the wheel itself (pip install-able)
    DIR/hub_configs/                   the recipes, where zoo.recipes looks (unless the wheel has them)
    DIR/requirements.txt               third-party requirements only

The wheel's version carries the checkout's commit as a local label (0.1.0+g1a2b3c4, "+dirty"
for uncommitted changes), so the Space says which code it runs. DIR must be empty or absent;
the folder is staged beside it and renamed into place, so a failure leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from . import SHARED_DIR, SPACES_DIR, names

REPO_ROOT = SPACES_DIR.parent
SKIP = {"__pycache__", ".pytest_cache", "requirements.txt"}
BUILD_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".git", "outputs", "runs",
                                      "spaces", "tests", "benchmarks", "docs", ".*", "venv")


class ExportError(Exception):
    """A mistake in the command (unknown Space, DIR not empty, a failed build): one line, exit 2."""


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def local_version_label() -> str | None:
    """g<short sha>[.dirty] of the checkout, or None outside git."""
    sha = _git("rev-parse", "--short=8", "HEAD")
    if not sha:
        return None
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "zoo", "analysis", "pyproject.toml")
    return f"g{sha}" + (".dirty" if dirty else "")


def build_wheel(out_dir: Path, label: str | None = None) -> Path:
    """Build zooscope's wheel from a clean copy of the checkout (the checkout gets no build/ or
    egg-info), with ``label`` appended to the version as a PEP 440 local label."""
    with tempfile.TemporaryDirectory(prefix="zooscope-wheel-") as tmp:
        source = Path(tmp) / "src"
        shutil.copytree(REPO_ROOT, source, ignore=BUILD_IGNORE, symlinks=False)
        pyproject = source / "pyproject.toml"
        text = pyproject.read_text()
        if label:
            text, count = re.subn(r'(?m)^(version\s*=\s*")([^"+]+)(")', rf"\g<1>\g<2>+{label}\g<3>", text, count=1)
            if count != 1:
                raise ExportError("pyproject.toml has no static version = \"...\" line to label")
            pyproject.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
             "--wheel-dir", str(out_dir), str(source)],
            capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise ExportError("building the zooscope wheel failed: " + " | ".join(tail))
    wheels = sorted(out_dir.glob("zooscope-*.whl"))
    if len(wheels) != 1:
        raise ExportError(f"expected one zooscope wheel in {out_dir}, found {len(wheels)}")
    return wheels[0]


def wheel_requirements(wheel: Path, extras: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """(version, Requires-Dist lines) of a wheel: the plain ones and those of ``extras``."""
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
    requirements = []
    for line in metadata.get_all("Requires-Dist") or []:
        spec, _, marker = line.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extra is None or extra.group(1) in extras:
            requirements.append(spec.strip())
    return metadata["Version"], list(dict.fromkeys(requirements))


def space_requirements(name: str) -> list[str]:
    """The Space's own lines in spaces/NAME/requirements.txt (comments and zooscope dropped)."""
    path = SPACES_DIR / name / "requirements.txt"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [line.strip() for line in lines
            if line.strip() and not line.lstrip().startswith("#") and not line.strip().startswith("zooscope")]


def export(name: str, target: str | os.PathLike, *, wheel: str | os.PathLike | None = None) -> Path:
    """Write the deployable folder for Space ``name`` into ``target``; returns its path."""
    if name not in names():
        raise ExportError(f"unknown Space {name!r}; Spaces here: {', '.join(names())}")
    target = Path(target).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportError(f"{target} exists and is not an empty folder: choose a new one")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        source = SPACES_DIR / name
        for item in sorted(source.iterdir()):
            if item.name in SKIP:
                continue
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, stage / item.name)
        shutil.copytree(SHARED_DIR / "zooscope_spaces", stage / "zooscope_spaces",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        wheels = stage / "wheels"
        wheels.mkdir()
        if wheel is None:
            built = build_wheel(wheels, local_version_label())
        else:
            built = Path(shutil.copy2(wheel, wheels))
        with zipfile.ZipFile(built) as archive:
            archive.extractall(stage)  # what pip would install: the packages and their dist-info
        if (REPO_ROOT / "hub_configs").is_dir() and not any((stage / "zoo").rglob("hub_configs")):
            # recipes are found next to the zoo package's parent (zoo.recipes.recipe_dirs): ship
            # them there until the wheel carries them as package data
            shutil.copytree(REPO_ROOT / "hub_configs", stage / "hub_configs")
        version, requirements = wheel_requirements(built, extras=("spaces",))
        own = space_requirements(name)
        lines = [
            f"# Written by `python -m spaces.export {name}` from zooscope {version}.",
            "# zooscope itself is in this folder (zoo/, analysis/ and its .dist-info, unpacked from",
            f"# wheels/{built.name}): no package index serves it, and a Space installs this file before",
            "# the folder's other files are there. These are its third-party dependencies.",
            *requirements,
        ]
        extra = [r for r in own if r not in requirements]
        if extra:
            lines += ["# this Space's own", *extra]
        (stage / "requirements.txt").write_text("\n".join(lines) + "\n")
        if target.exists():
            target.rmdir()
        os.replace(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spaces.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"the Space: {', '.join(names())}")
    parser.add_argument("dir", help="the folder to write (new or empty)")
    parser.add_argument("--wheel", help="use this zooscope wheel instead of building one from the checkout")
    args = parser.parse_args(argv)
    try:
        folder = export(args.name, args.dir, wheel=args.wheel)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {folder}: push it to a Space repository (sdk: gradio), or run it: cd {folder} && "
          "pip install -r requirements.txt && python app.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
