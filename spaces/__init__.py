"""The zooscope Gradio Spaces: one folder per Space (``app.py``, ``README.md`` with the Space
card, ``requirements.txt``), their shared code in ``_shared/zooscope_spaces``, and
``python -m spaces.export NAME DIR``, which writes a folder a Hugging Face Space builds as it is.

Not part of the installed ``zooscope`` package: ``zoo`` and ``analysis`` never import it.
"""
from pathlib import Path

SPACES_DIR = Path(__file__).resolve().parent
SHARED_DIR = SPACES_DIR / "_shared"


def names() -> list[str]:
    """Every Space in this checkout (a folder with an app.py)."""
    return sorted(p.parent.name for p in SPACES_DIR.glob("*/app.py") if not p.parent.name.startswith("_"))
