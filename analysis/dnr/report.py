"""The DNR report: dnr.json, report.md and the figure."""
from __future__ import annotations

import json
from pathlib import Path

from .core import DNRResult


def summary_markdown(result: DNRResult) -> str:
    lines = [f"# Dead neuron rate: {result.model}", "",
             f"{result.examples} examples of {result.data or 'the given batches'}: "
             f"**DNR {result.rate:.4f}** (fraction of ReLU outputs <= 0, all layers, weighted by units)", "",
             "| layer | units | DNR |", "|---|---|---|"]
    lines += [f"| {name} | {result.units.get(name, '')} | {rate:.4f} |" for name, rate in result.layers.items()]
    return "\n".join(lines) + "\n"


def write_files(result: DNRResult, folder: str | Path, plots: bool = True) -> list[Path]:
    folder = Path(folder)
    paths = [folder / "dnr.json", folder / "report.md"]
    paths[0].write_text(json.dumps(result.to_json(), indent=2))
    paths[1].write_text(summary_markdown(result))
    if plots:
        from .plots import plot_layers

        paths.append(plot_layers(result, folder / "dnr.png"))
    return paths
