"""zoo-explorer's view of the zoo, read from the registry, the recipes and the published repos
with no per-entry code: a new architecture folder or recipe YAML shows up as it lands.

* ``input_kind``: image / sequence / tabular / grid, from the architecture's optional
  ``ARCHITECTURE["input_kind"]`` or else its config (``image_size``, ``vocab_size``,
  ``input_dim``, ``grid_size``) and main input name; the try-it panel follows from it.
* ``published_ids``: zooscope/<id> repos with a complete snapshot in the local cache (and, when
  online, the Hub's list): the only ids the page offers, so none fails when chosen.
* ``catalogue``: every architecture and every recipe, with the recipe's ``paper:`` block (read
  defensively: it is optional, and older recipes carry ``card.reference`` / ``card.expected``)
  beside our measured number.
* ``curve_rows``: metrics.json's per-evaluation ``curves`` or, for older runs, its per-epoch
  ``history``.
"""
from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

from zoo.errors import UserError

HUB_ORG = "zooscope"
INPUT_KINDS = ("image", "sequence", "tabular", "grid")

# data set name → an extra, data-specific widget shown beside the kind's generic one (round 1's
# XOR plane and modular-arithmetic pair); anything else needs nothing here
DATA_WIDGETS = {
    "xor_cluster": "plane",
    "modular_arithmetic": "pair",
}


def widget_kind(main_input_name: str, data_name: str | None) -> str:
    """Round 1's widget name: ``"image"`` for ``pixel_values``, else the data set's widget from
    ``DATA_WIDGETS``, else ``"example"``."""
    if main_input_name == "pixel_values":
        return "image"
    return DATA_WIDGETS.get(data_name or "", "example")


def _architecture_spec(arch) -> dict:
    """The ARCHITECTURE dict of the architecture's package (where an ``input_kind`` may be)."""
    try:
        package = importlib.import_module(arch.model_class.__module__.rsplit(".", 1)[0])
        return dict(getattr(package, "ARCHITECTURE", {}) or {})
    except Exception:  # noqa: BLE001 - no spec: derive from the config
        return {}


def input_kind(config: dict, main_input: str | None = None, declared: str | None = None) -> str:
    """The kind of input an architecture takes, for the try-it panel."""
    if declared:
        if declared not in INPUT_KINDS:
            raise UserError(f"input_kind {declared!r} is not one of {', '.join(INPUT_KINDS)}")
        return declared
    if main_input == "grid" or "grid_size" in config or ("grid_height" in config and "grid_width" in config):
        return "grid"
    if main_input == "pixel_values" or "image_size" in config:
        return "image"
    if main_input == "input_ids" or "vocab_size" in config:
        return "sequence"
    return "tabular"


def architecture_kind(arch, config: dict | None = None) -> str:
    declared = getattr(arch, "input_kind", None) or _architecture_spec(arch).get("input_kind")
    if config is None:
        config = arch.config_class().to_dict()
    return input_kind(config, getattr(arch.model_class, "main_input_name", None), declared)


# ------------------------------------------------------------------------------------------
# what is published
# ------------------------------------------------------------------------------------------


def cached_snapshot(repo_id: str) -> Path | None:
    """The snapshot refs/main points at, when it is complete (config.json and weights)."""
    from zoo.hub import cached_snapshot as hub_cached_snapshot

    snapshot = hub_cached_snapshot(repo_id)
    return snapshot if snapshot is not None and any(snapshot.glob("*.safetensors")) else None


def published_ids(online: bool | None = None) -> list[str]:
    """Bare ids of the zoo's published models (zoo.hub.published_ids): complete snapshots in the
    local cache, and the Hub's list when it is reachable; ``online=False`` reads the cache alone."""
    from huggingface_hub import constants

    from zoo.hub import published_ids as hub_published_ids

    return hub_published_ids(cache_dir=constants.HF_HUB_CACHE if online is False else None)


# ------------------------------------------------------------------------------------------
# recipes, papers, numbers
# ------------------------------------------------------------------------------------------


def recipe_files() -> dict[str, Path]:
    """Recipe id → its YAML (the first directory of ``zoo.recipes.recipe_dirs`` wins)."""
    from zoo.recipes import recipe_dirs

    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def paper_of(recipe: dict) -> dict:
    """The recipe's ``paper:`` block as a dict of known keys (all optional), with the round-1
    ``card.reference`` / ``card.expected`` as fallbacks. Anything malformed reads as absent."""
    recipe = recipe if isinstance(recipe, dict) else {}
    paper = recipe.get("paper") if isinstance(recipe.get("paper"), dict) else {}
    card = recipe.get("card") if isinstance(recipe.get("card"), dict) else {}
    out = {k: paper.get(k) for k in ("title", "citation", "url", "claim", "metric", "value", "reproduced", "findings")}
    expected = card.get("expected") if isinstance(card.get("expected"), dict) else {}
    if not out["citation"] and not out["title"] and card.get("reference"):
        out["citation"] = str(card["reference"])
    if not out["metric"] and expected:
        out["metric"] = next(iter(expected))
    if out["value"] is not None and not isinstance(out["value"], (int, float)):
        out["value"] = None
    out["expected"] = expected.get(out["metric"]) if out["metric"] else None
    return out


def measured(metrics: dict, metric: str | None) -> float | None:
    final = metrics.get("final") if isinstance(metrics.get("final"), dict) else {}
    value = final.get(metric or "eval_accuracy")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _number(value) -> str:
    return "—" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


def comparison_markdown(recipe: dict, metrics: dict) -> str:
    """Our number beside the paper's, for one model's page."""
    paper = paper_of(recipe)
    metric = paper["metric"] or "eval_accuracy"
    ours = measured(metrics, metric)
    cite = paper["citation"] or paper["title"] or "no paper: a baseline"
    if paper["url"]:
        cite = f"[{cite}]({paper['url']})"
    lines = [f"**Paper**: {cite}", "", "| metric | ours | paper | reproduced |", "|---|---|---|---|",
             f"| `{metric}` | {_number(ours)} | {_number(paper['value'])} | {paper['reproduced'] or '—'} |"]
    if paper["claim"]:
        lines += ["", f"The paper's number measures: {paper['claim']}"]
    if paper["expected"] is not None and ours is not None and ours < paper["expected"]:
        lines += ["", f"⚠️ below the recipe's expected {metric} = {paper['expected']}"]
    return "\n".join(lines)


def catalogue(published: list[str] | None = None) -> list[list[str]]:
    """One row per recipe (id, architecture, input kind, data, paper, metric, ours, paper's,
    reproduced, published) and one per architecture that no recipe uses yet."""
    import yaml

    from zoo.registry import get_architecture, list_architectures

    published = set(published_ids() if published is None else published)
    rows, used = [], set()
    for rid, path in recipe_files().items():
        try:
            recipe = yaml.safe_load(path.read_text()) or {}
        except Exception:  # noqa: BLE001 - a broken recipe still gets its row
            recipe = {}
        arch_name = str(recipe.get("architecture", "?"))
        used.add(arch_name)
        try:
            arch = get_architecture(arch_name)
            config = {**arch.config_class().to_dict(), **(recipe.get("config") or {})}
            kind = architecture_kind(arch, config)
        except Exception:  # noqa: BLE001
            kind = "?"
        data = recipe.get("data")
        data = data.get("name") if isinstance(data, dict) else data
        paper = paper_of(recipe)
        metrics = published_metrics(rid) if rid in published else {}
        rows.append([rid, arch_name, kind, str(data or "—"), paper["metric"] or "eval_accuracy",
                     _number(measured(metrics, paper["metric"])), _number(paper["value"]),
                     str(paper["reproduced"] or "—"), "yes" if rid in published else "no",
                     _short(paper["citation"] or paper["title"] or "—")])
    for name in list_architectures():
        if name not in used:
            arch = get_architecture(name)
            try:
                kind = architecture_kind(arch)
            except Exception:  # noqa: BLE001 - a config without defaults: the row still shows
                kind = "?"
            rows.append(["—", name, kind, "—", "—", "—", "—", "—", "no", _short(arch.paper or "—")])
    for rid in sorted(published - set(recipe_files())):  # published without a recipe here
        rows.append([rid, "?", "?", "—", "—", "—", "—", "—", "yes", "—"])
    return rows


# the numbers first, the paper (free text) last: a long citation must not push them off screen
CATALOGUE_HEADERS = ["recipe", "architecture", "input", "data", "metric", "ours", "paper's", "reproduced",
                     "published", "paper"]


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def published_metrics(rid: str) -> dict:
    snapshot = cached_snapshot(f"{HUB_ORG}/{rid}")
    if snapshot and (snapshot / "metrics.json").is_file():
        try:
            return json.loads((snapshot / "metrics.json").read_text())
        except ValueError:
            return {}
    return {}


# ------------------------------------------------------------------------------------------
# curves
# ------------------------------------------------------------------------------------------


def curve_rows(metrics: dict) -> tuple[str, list[dict]]:
    """(x axis name, rows): metrics.json's ``curves`` (one row per evaluation, x = step) when
    present, else the per-epoch ``history`` (x = epoch)."""
    curves = metrics.get("curves")
    if isinstance(curves, list) and any(isinstance(r, dict) and "step" in r for r in curves):
        return "step", [r for r in curves if isinstance(r, dict) and isinstance(r.get("step"), (int, float))]
    history = metrics.get("history")
    if isinstance(history, list):
        rows = [dict(r, epoch=r.get("epoch", i + 1)) for i, r in enumerate(history) if isinstance(r, dict)]
        return "epoch", rows
    return "epoch", []


def curve_series(metrics: dict) -> tuple[str, dict[str, list[tuple[float, float]]]]:
    """(x name, {metric: [(x, value), ...]}) for every numeric metric in the curve rows."""
    x_name, rows = curve_rows(metrics)
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        x = row.get(x_name)
        for key, value in row.items():
            if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                series.setdefault(key, []).append((float(x), float(value)))
    return x_name, series


def parse_numbers(text: str, name: str = "input", integer: bool = False) -> list[Any]:
    """Comma / space separated numbers → a list (a UserError names the bad token)."""
    if text is None or not str(text).strip():
        raise UserError(f"{name} is empty: type numbers separated by spaces or commas, or take a test example")
    out = []
    for token in str(text).replace(",", " ").split():
        try:
            value = float(token)
        except ValueError:
            raise UserError(f"{name}: {token!r} is not a number") from None
        if integer:
            if value != int(value):
                raise UserError(f"{name}: {token!r} is not a whole number")
            value = int(value)
        out.append(value)
    return out


def image_to_pixels(image, size: int, invert: str = "auto"):
    """A drawn or uploaded image (numpy HxW[xC], PIL, or Gradio's editor dict) → a
    ``1×1×size×size`` float tensor in [0, 1], bright object on a dark background like
    (Fashion-)MNIST: ``invert="auto"`` inverts light-background pictures."""
    import numpy as np
    import torch
    from PIL import Image

    if isinstance(image, dict):  # ImageEditor / Sketchpad value: background, layers, composite
        image = image.get("composite") if image.get("composite") is not None else image.get("background")
    if image is None:
        raise UserError("no image: draw something or upload a picture first")
    if isinstance(image, str):
        image = Image.open(image)
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = np.clip(array * (255.0 if array.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        image = Image.fromarray(array)
    if image.mode in ("RGBA", "LA"):
        # transparent pixels (an empty sketch layer) count as background
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3:4].astype(np.float32) / 255.0
        rgb = np.asarray(rgba)[..., :3].astype(np.float32)
        if alpha.max() == 0:
            raise UserError("the drawing is empty: draw something first")
        gray = (rgb.mean(-1, keepdims=True) * alpha + 255.0 * (1 - alpha))[..., 0]
        image = Image.fromarray(gray.astype(np.uint8))
    gray = np.asarray(image.convert("L").resize((size, size), Image.BOX), dtype=np.float32) / 255.0
    if invert == "auto":
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        invert = bool(border.mean() > 0.5)
    if invert:
        gray = 1.0 - gray
    if gray.max() - gray.min() < 1e-3:
        raise UserError("the image is blank: draw something or upload a picture")
    return torch.from_numpy(gray)[None, None]
