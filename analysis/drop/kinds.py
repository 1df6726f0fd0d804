"""What can be dropped and how (no torch here: the CLI's parser needs these names)."""
from __future__ import annotations

from ..errors import UserError

__all__ = ["KINDS", "MODES", "check_kind", "check_mode"]

KINDS = ("attn", "mlp", "block")
MODES = ("one-shot", "iterative")


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UserError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    return kind


def check_mode(mode: str) -> str:
    mode = {"oneshot": "one-shot", "one_shot": "one-shot"}.get(mode, mode)
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode
