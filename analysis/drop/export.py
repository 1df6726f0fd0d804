"""A dropped model as a repo folder that loads by name without zooscope, and its model card."""
from __future__ import annotations

import json
import os
import shutil
from typing import Sequence

from ..dropped_modeling.modeling_dropped import FAMILY_CLASSES, dropped_lists
from ..models import ZOO_NAMESPACE, as_adapter, clear_quantization
from .evaluation import EvalResult, rows_table
from .surgery import check_droppable, forget_drop_lists

__all__ = ["MODELING_DIR", "MODELING_FILE", "save_dropped", "model_card", "default_repo_id"]

# the remote code a dropped repo ships: analysis/dropped_modeling/modeling_dropped.py
MODELING_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dropped_modeling")
MODELING_FILE = "modeling_dropped.py"


def save_dropped(model, tokenizer, repo_dir: str, *, card: str | None = None) -> list[str]:
    """Write ``model`` (with dropped modules) as a repo folder: config.json (``drop_attn_list``,
    ``drop_mlp_list``, ``auto_map``), model.safetensors, the modeling file when sublayers are
    dropped, the tokenizer, and README.md (``card``)."""
    adapter = as_adapter(model)
    model = adapter.model
    clear_quantization(model)
    attn, mlp = dropped_lists(model)
    if attn or mlp:
        check_droppable(adapter)
    os.makedirs(repo_dir, exist_ok=True)
    config = model.config
    if attn or mlp:
        config.drop_attn_list, config.drop_mlp_list = attn, mlp
    else:
        forget_drop_lists(config)
    model.save_pretrained(repo_dir, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(repo_dir)
    config_path = os.path.join(repo_dir, "config.json")
    with open(config_path, encoding="utf-8") as handle:
        data = json.load(handle)
    data.pop("quantization_config", None)
    if attn or mlp:
        class_name = "Dropped" + FAMILY_CLASSES[adapter.family_name]
        data["architectures"] = [class_name]
        data["auto_map"] = {"AutoModelForCausalLM": f"modeling_dropped.{class_name}"}
        data["drop_attn_list"], data["drop_mlp_list"] = attn, mlp
        shutil.copyfile(os.path.join(MODELING_DIR, MODELING_FILE), os.path.join(repo_dir, MODELING_FILE))
    else:
        data.pop("auto_map", None)
        data.pop("drop_attn_list", None)
        data.pop("drop_mlp_list", None)
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    if card is not None:
        with open(os.path.join(repo_dir, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(card)
    return sorted(os.listdir(repo_dir))


def model_card(*, repo_id: str, base_model: str, family: str, kind: str, mode: str, dropped: Sequence[int],
               attn: Sequence[int], mlp: Sequence[int], num_layers_before: int, num_layers_after: int,
               rows: Sequence[EvalResult], weights_sha256: str | None = None, calibration: str = "") -> str:
    """README.md for a dropped model: what was dropped, and what it cost (the before/after rows)."""
    from huggingface_hub import ModelCard, ModelCardData

    hub_base = base_model if (base_model.count("/") == 1 and not os.path.exists(base_model)) else None
    data = ModelCardData(library_name="transformers", license="other", base_model=hub_base,
                         tags=["zooscope", "layer-drop", f"{kind}-drop", family], pipeline_tag="text-generation",
                         model_name=repo_id)
    remote = bool(attn or mlp)
    load = ("AutoModelForCausalLM.from_pretrained(\"{0}\", trust_remote_code=True)" if remote
            else "AutoModelForCausalLM.from_pretrained(\"{0}\")").format(repo_id)
    what = {"attn": "attention sublayers", "mlp": "MLP sublayers", "block": "whole blocks"}[kind]
    body = f"""
# {repo_id}

`{base_model}` with {len(dropped)} {what} dropped ({mode}), after He et al. 2024, "What Matters
in Transformers? Not All Attention is Needed": a module whose output is most similar to its
input (cosine similarity on calibration tokens) matters least.

- dropped {kind} (original layer indices): {list(dropped) or 'none'}
- layers: {num_layers_before} → {num_layers_after}; attention dropped in layers {list(attn) or 'none'},
  MLP dropped in layers {list(mlp) or 'none'} (`drop_attn_list` / `drop_mlp_list` in config.json)
- a dropped attention layer computes nothing and keeps no KV cache{'; ' + calibration if calibration else ''}

## Usage

{"The modeling code (`modeling_dropped.py`, which wraps transformers' own " + family + " classes) ships with the repo, so zooscope need not be installed (transformers >= 5.23 for generation with a KV cache):" if remote else "A plain transformers model (blocks were removed, no custom code):"}

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = {load}
tokenizer = AutoTokenizer.from_pretrained("{repo_id}")
```

## What it cost

{rows_table(rows)}

Perplexity on held-out text; throughput on one CPU/GPU as measured by `zoo-analysis drop`: the
median and quartiles of paired, alternating rounds (full model, dropped model), so compare rows,
not machines; a speed-up marked *not resolved* is within the measurement's noise.
"""
    if weights_sha256:
        body += f"\n## Files\n\n- `model.safetensors` sha256 `{weights_sha256}`\n"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def default_repo_id(model_name: str, kind: str, count: int) -> str:
    """``zooscope/<model>-drop-<kind>-<count>``, the model's base name made repo-safe."""
    base = os.path.basename(os.path.normpath(model_name))
    for suffix in (".gguf",):
        base = base[: -len(suffix)] if base.endswith(suffix) else base
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in base).strip("-.") or "model"
    return f"{ZOO_NAMESPACE}/{base}-drop-{kind}-{count}"
