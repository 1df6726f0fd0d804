"""The single source of the files several architecture folders share (zoo_common.py, image_processing_zoo.py).

A Hub repo holds one architecture folder's files and nothing else, and transformers copies only
same-folder relative imports of remote code, so a shared module cannot be imported from here
at run time. Each folder that uses one therefore holds a byte-identical copy: plain files work
in every checkout, wheel, Hub repo and OS (symlinks do not survive Windows checkouts or every
packaging path), and tests/test_registry.py fails when a copy drifts from this source.
``python -m zoo.models._shared`` rewrites the copies (and adds none: a folder opts in by holding one).
"""
from __future__ import annotations

from pathlib import Path

SHARED_DIR = Path(__file__).resolve().parent
MODELS_DIR = SHARED_DIR.parent


def shared_files() -> dict[str, Path]:
    """name → source path of every shared module."""
    return {p.name: p for p in sorted(SHARED_DIR.glob("*.py")) if not p.name.startswith("_")}


def copies(models_dirs: list[Path] | None = None) -> list[tuple[Path, Path]]:
    """(source, copy) for every copy of a shared module in an architecture folder."""
    pairs = []
    for models_dir in models_dirs or [MODELS_DIR]:
        for folder in sorted(p for p in Path(models_dir).iterdir() if p.is_dir() and not p.name.startswith("_")):
            for name, source in shared_files().items():
                if (folder / name).exists():
                    pairs.append((source, folder / name))
    return pairs


def stale_copies(models_dirs: list[Path] | None = None) -> list[Path]:
    return [copy for source, copy in copies(models_dirs) if copy.read_bytes() != source.read_bytes()]


def sync(models_dirs: list[Path] | None = None) -> list[Path]:
    """Rewrite every stale copy from its source; returns the rewritten paths."""
    stale = stale_copies(models_dirs)
    sources = {copy: source for source, copy in copies(models_dirs)}
    for copy in stale:
        copy.write_bytes(sources[copy].read_bytes())
    return stale
