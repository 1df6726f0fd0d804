"""The recipe's ``paper:`` block: its schema and its one validator.

Its own module, importing nothing of the zoo but its errors, so that zoo.recipes can check the
block while loading a recipe without importing the results table (which imports zoo.recipes):
the import graph stays one-way. ``zoo.results`` re-exports both names.
"""
from __future__ import annotations

import math
import re

from .errors import UserError

PAPER_REQUIRED = ("title", "citation", "url", "claim", "metric", "value", "reproduced")
PAPER_OPTIONAL = ("bibtex", "findings")
REPRODUCED = ("yes", "partly", "no", "n/a")


def validate_paper_block(block, where: str = "paper") -> dict:
    """Check a recipe's ``paper:`` block and return it normalised (``reproduced`` as a string).

    Raises UserError naming the field for a missing or malformed entry. YAML 1.1 reads a bare
    ``yes`` / ``no`` as a boolean; both spellings are accepted.
    """
    if not isinstance(block, dict):
        raise UserError(f"{where} must be a mapping with {', '.join(PAPER_REQUIRED)}, got {type(block).__name__}")
    unknown = sorted(set(block) - set(PAPER_REQUIRED) - set(PAPER_OPTIONAL))
    if unknown:
        import difflib

        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, PAPER_REQUIRED + PAPER_OPTIONAL, 1))
                 else k for k in unknown]
        raise UserError(f"{where}: unknown field(s) {', '.join(hints)}; fields: {', '.join(PAPER_REQUIRED + PAPER_OPTIONAL)}")
    missing = [k for k in PAPER_REQUIRED if k not in block]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(missing)} (value may be null when the paper has no number)")
    out = dict(block)
    for key in ("title", "citation", "url", "claim", "metric"):
        if not isinstance(out[key], str) or not out[key].strip():
            raise UserError(f"{where}.{key} must be a non-empty string, got {out[key]!r}")
    if not re.match(r"https?://", out["url"]):
        raise UserError(f"{where}.url must be an http(s) link, got {out['url']!r}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", out["metric"]):
        raise UserError(f"{where}.metric must be a metrics.json key such as eval_accuracy, got {out['metric']!r}")
    value = out["value"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise UserError(f"{where}.value must be a number or null, got {value!r}")
    reproduced = out["reproduced"]
    if isinstance(reproduced, bool):
        reproduced = "yes" if reproduced else "no"
    if reproduced not in REPRODUCED:
        raise UserError(f"{where}.reproduced must be one of {', '.join(REPRODUCED)}, got {out['reproduced']!r}")
    out["reproduced"] = reproduced
    for key in PAPER_OPTIONAL:
        if key in out and out[key] is not None and not isinstance(out[key], str):
            raise UserError(f"{where}.{key} must be a string, got {out[key]!r}")
    return out


def paper_of(recipe) -> dict:
    """A recipe's paper block, normalised ({} when it has none; the Recipe may hold None or {})."""
    return validate_paper_block(recipe.paper) if recipe.paper else {}
