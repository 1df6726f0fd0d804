"""Models, layers and inputs: loading the models to compare, naming their layers (module paths),
and batches every model sees identically (images of a zoo data set, or text that every
tokenizer splits the same way)."""
from __future__ import annotations

import difflib
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..batching import pad_id
from ..errors import UserError
from ..hooks import Hooks

__all__ = ["list_layers", "check_layers", "layer_shapes", "input_kind", "check_inputs", "load_models",
           "image_batches", "text_prompts", "text_batches", "check_same_tokenization", "check_tokenizers_first"]


def list_layers(model: nn.Module) -> list[tuple[str, str]]:
    """``(module path, class name)`` for every named submodule (the root excluded)."""
    return [(name, type(module).__name__) for name, module in model.named_modules() if name]


def check_layers(model: nn.Module, layers: Sequence[str], model_name: str = "model") -> dict[str, nn.Module]:
    """The modules named ``layers``; an unknown name is a UserError listing what exists."""
    modules = dict(model.named_modules())
    found = {}
    for layer in layers:
        if layer in modules and layer:
            found[layer] = modules[layer]
            continue
        names = [n for n in modules if n]
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}; " if close else ""
        if len(names) <= 40:
            listing = f"{hint}its layers: {', '.join(names)}"
        else:
            listing = (f"{hint}it has {len(names)} layers, list them with: "
                       f"zoo-analysis match --list-layers --models {model_name}")
        raise UserError(f"{model_name} has no layer {layer!r}; {listing}")
    return found


def input_kind(model: nn.Module) -> str:
    return getattr(model, "main_input_name", None) or "input_ids"


def load_models(names: Sequence[str], *, dtype=None, device=None, trust_remote_code=None):
    """Load each model by name (Hub id, folder, .gguf, zoo id): a causal LM where it is one
    (module paths then start with ``model.`` as in the checkpoint), else the task class the
    checkpoint was saved with, else ``AutoModel``. Tokenizers are loaded when there are any."""
    import zoo.registry  # noqa: F401  registers the zoo architectures with the Auto classes
    from ..models import load_model

    loaded = []
    for name in names:
        try:
            item = load_model(name, task="causal-lm", dtype=dtype, device=device, trust_remote_code=trust_remote_code,
                              tokenizer=True)
        except UserError as error:
            if "not a decoder language model" not in str(error) and "has no tokenizer" not in str(error):
                raise
            item = None
            for task in ("image-classification", "sequence-classification", "auto"):
                try:
                    item = load_model(name, task=task, dtype=dtype, device=device,
                                      trust_remote_code=trust_remote_code, tokenizer=task != "image-classification")
                    break
                except (UserError, ValueError, KeyError):
                    if task == "auto":
                        raise
        loaded.append(item)
    return loaded


def check_inputs(models: Sequence[nn.Module], names: Sequence[str]) -> str:
    kinds = [input_kind(m) for m in models]
    if len(set(kinds)) > 1:
        described = ", ".join(f"{n} takes {k}" for n, k in zip(names, kinds))
        raise UserError(f"the models take different kinds of input ({described}); "
                        "convergent learning compares models on the same inputs")
    return kinds[0]


def image_batches(data: str, split: str = "test", limit: int | None = None, batch_size: int = 256,
                  **data_kwargs) -> tuple[int, Iterator[dict]]:
    """(number of examples, iterator of ``{"pixel_values": ...}`` batches) from a zoo data set."""
    from zoo import data as zoo_data

    dataset = zoo_data.load(data, split=split, **data_kwargs)
    if "pixel_values" not in dataset.column_names:
        raise UserError(f"data set {data!r} has no pixel_values column (columns: {', '.join(dataset.column_names)})")
    total = len(dataset) if limit is None else min(limit, len(dataset))

    def batches():
        for start in range(0, total, batch_size):
            yield {"pixel_values": dataset[start:min(start + batch_size, total)]["pixel_values"]}

    return total, batches()


def check_same_tokenization(tokenizers: Sequence[Any], names: Sequence[str], texts: Sequence[str]) -> None:
    """Every tokenizer splits `texts` into the first one's token ids, else a UserError."""
    for tok, name in zip(tokenizers[1:], names[1:]):
        same = tok is not None and all(
            tok(t, add_special_tokens=False)["input_ids"] == tokenizers[0](t, add_special_tokens=False)["input_ids"]
            for t in texts)
        if not same:
            raise UserError(f"{name} tokenizes the text differently from {names[0]}; unit activations can only be "
                            "compared token by token between models with the same tokenizer")


def check_tokenizers_first(names: Sequence[str], source: str | None = None, *, trust_remote_code=None,
                           revision=None) -> None:
    """Refuse text models whose tokenizers differ before any weights are loaded (a pair of 0.5B
    models takes minutes and gigabytes to load; their tokenizers take seconds). Models without a
    tokenizer (image models) are left to the later checks."""
    from ..models import load_tokenizer
    from ..prompts import load_prompts

    tokenizers = [load_tokenizer(n, trust_remote_code=trust_remote_code, revision=revision) for n in names]
    if all(tok is None for tok in tokenizers) or tokenizers[0] is None:
        return
    prompts = load_prompts(tokenizers[0], source, num_prompts=2, max_tokens=64)
    check_same_tokenization(tokenizers, names, [tokenizers[0].decode(p) for p in prompts])


def text_prompts(tokenizers: Sequence[Any], names: Sequence[str], source: str | None = None, *, num_prompts: int = 16,
                 max_tokens: int = 128, add_special_tokens: bool = True) -> list[torch.Tensor]:
    """The token ids of text (built-in English, a file or a datasets name), checked to be split
    the same way by every model's tokenizer."""
    from ..prompts import load_prompts

    if tokenizers[0] is None:
        raise UserError(f"{names[0]} has no tokenizer; text inputs need one")
    prompts = load_prompts(tokenizers[0], source, num_prompts=num_prompts, max_tokens=max_tokens,
                           add_special_tokens=add_special_tokens)
    check_same_tokenization(tokenizers, names, [tokenizers[0].decode(p) for p in prompts[:2]])
    return prompts


def text_batches(tokenizers: Sequence[Any], names: Sequence[str], source: str | None = None, num_prompts: int = 16,
                 max_tokens: int = 128, batch_size: int = 4, *, tokens=None,
                 add_special_tokens: bool = True) -> tuple[int, Iterator[dict]]:
    """Token batches from text (built-in English, a file or a datasets name) that every model
    tokenizes identically (else positions could not be aligned), or from exact ``tokens`` (1-D id
    tensors, fed to every model as they are)."""
    from ..prompts import iter_batches

    if tokens is not None:
        prompts = [torch.as_tensor(t, dtype=torch.long).reshape(-1) for t in tokens]
    else:
        prompts = text_prompts(tokenizers, names, source, num_prompts=num_prompts, max_tokens=max_tokens,
                               add_special_tokens=add_special_tokens)
    pad = pad_id(tokenizers[0]) if tokenizers[0] is not None else 0

    def batches():
        for ids, mask in iter_batches(prompts, batch_size, pad_id=pad):
            yield {"input_ids": ids, "attention_mask": mask}

    return len(prompts), batches()


def layer_shapes(model: nn.Module, batch: dict) -> dict[str, str]:
    """Output shape of every module on one small batch (for --list-layers)."""
    from ..models import first_tensor

    shapes: dict[str, str] = {}

    def hook_for(name):
        def hook(mod, inp, out):
            try:
                t = first_tensor(out)
                shapes[name] = "×".join(str(s) for s in t.shape)
            except (TypeError, IndexError):
                pass
        return hook

    with Hooks() as hooks:
        for name, module in model.named_modules():
            if name:
                hooks.forward(module, hook_for(name))
        try:
            with torch.inference_mode():
                model(**batch)
        except Exception:  # a listing still helps without shapes
            pass
    return shapes
