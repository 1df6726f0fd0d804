"""`zoo-analysis`: one sub-command per analysis tool.

A tool module joins the CLI by defining ``add_cli(subparsers)``, which adds its sub-parser and
sets ``func`` (called with the parsed arguments, returns an exit code), normally through
``analysis.runner.add_tool``. User mistakes are raised as ``analysis.errors.AnalysisError`` /
``UserError`` and printed as one line (``analysis.runner.run_cli``), never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .runner import run_cli

# Tool modules, in the order they appear in --help. A module that is missing is skipped, so a
# tool can land on its own.
TOOL_MODULES = ["depth", "drop", "convergent", "dnr", "sharpness", "geometry", "interaction_basis"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo-analysis",
        description="Load any model by name (Hub id, local folder, .gguf file or zoo id) and measure it.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in TOOL_MODULES:
        try:
            module = importlib.import_module(f"analysis.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"analysis.{name}":
                continue
            raise
        module.add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
