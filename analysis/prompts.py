"""Prompts for the analysis tools: built-in English text, a text file, or a `datasets` name.

The built-in text is the Python documentation that ships with the standard library
(``pydoc_data.topics``), cut into paragraph-aligned passages, so the tools work offline with
nothing to download.
"""
from __future__ import annotations

import os
import random
from typing import Iterator

import torch

from .errors import UserError

__all__ = ["builtin_texts", "load_texts", "tokenize_texts", "pack_texts", "load_prompts", "iter_batches"]


def builtin_texts(min_chars: int = 400) -> list[str]:
    """Paragraph-aligned passages of English prose from ``pydoc_data.topics`` (stable order)."""
    from pydoc_data.topics import topics

    passages: list[str] = []
    for key in sorted(topics):
        paragraphs = [p.strip() for p in topics[key].split("\n\n") if p.strip()]
        current: list[str] = []
        for paragraph in paragraphs:
            current.append(paragraph)
            if sum(len(p) for p in current) >= min_chars:
                passages.append("\n\n".join(current))
                current = []
        if current and sum(len(p) for p in current) >= min_chars // 2:
            passages.append("\n\n".join(current))
    return passages


def _dataset_texts(name: str, split: str, column: str | None) -> list[str]:
    try:
        import datasets
    except ImportError as error:  # pragma: no cover - datasets is a dependency
        raise UserError(f"the datasets package is needed for --prompts {name}") from error
    config = None
    if ":" in name:
        name, config = name.split(":", 1)
    try:
        data = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # datasets raises many types for "not found"/offline
        raise UserError(
            f"could not load prompts from dataset {name!r} (split {split!r}): "
            f"{str(error).splitlines()[0][:200]}"
        ) from None
    columns = list(data.column_names)
    if column is None:
        candidates = [c for c in ("text", "content", "question", "prompt", "sentence") if c in columns]
        if not candidates:
            raise UserError(f"dataset {name!r} has no text column among {columns}; pass text_column")
        column = candidates[0]
    elif column not in columns:
        raise UserError(f"dataset {name!r} has no column {column!r}; columns: {columns}")
    return [str(t) for t in data[column] if isinstance(t, str) and t.strip()]


def load_texts(
    source: str | None = None,
    *,
    num_prompts: int | None = None,
    split: str = "train",
    text_column: str | None = None,
    seed: int = 0,
) -> list[str]:
    """Prompt texts from ``source``: ``None``/``"builtin"``, a text file, or a datasets name.

    A text file holds one prompt per blank-line-separated block. The built-in passages are
    shuffled with ``seed`` so a small ``num_prompts`` still covers many topics.
    """
    if source in (None, "", "builtin"):
        texts = builtin_texts()
        random.Random(seed).shuffle(texts)
    elif os.path.isfile(source):
        with open(source, encoding="utf-8") as handle:
            texts = [block.strip() for block in handle.read().split("\n\n") if block.strip()]
        if not texts:
            raise UserError(f"prompt file {source} is empty")
    elif source.endswith((".txt", ".md", ".text")) or source.startswith(("/", "./", "../")):
        raise UserError(f"prompt file not found: {source}")
    else:
        texts = _dataset_texts(source, split, text_column)
    if num_prompts is not None:
        if num_prompts < 1:
            raise UserError("num_prompts must be at least 1")
        texts = texts[:num_prompts]
    return texts


def tokenize_texts(tokenizer, texts: list[str], max_tokens: int, min_tokens: int = 2) -> list[torch.Tensor]:
    """Token ids (1-D LongTensors), each cut to ``max_tokens``; too-short prompts are dropped."""
    if max_tokens < min_tokens:
        raise UserError(f"max_tokens must be at least {min_tokens}")
    prompts = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"][:max_tokens]
        if len(ids) >= min_tokens:
            prompts.append(torch.tensor(ids, dtype=torch.long))
    if not prompts:
        raise UserError(f"no prompt has at least {min_tokens} tokens")
    return prompts


def load_prompts(
    tokenizer,
    source: str | None = None,
    *,
    num_prompts: int = 16,
    max_tokens: int = 256,
    min_tokens: int = 8,
    split: str = "train",
    text_column: str | None = None,
    seed: int = 0,
    pack: bool = True,
) -> list[torch.Tensor]:
    """``num_prompts`` tokenized prompts of ``max_tokens`` tokens (``pack``: consecutive texts
    are joined so that every prompt is full length; otherwise each text is cut to length)."""
    texts = load_texts(source, split=split, text_column=text_column, seed=seed)
    if pack:
        texts = pack_texts(tokenizer, texts, max_tokens, num_prompts)
    prompts = tokenize_texts(tokenizer, texts[: max(num_prompts * 2, num_prompts)], max_tokens,
                             min_tokens=min(min_tokens, max_tokens))
    return prompts[:num_prompts]


def pack_texts(tokenizer, texts: list[str], max_tokens: int, limit: int | None = None) -> list[str]:
    """Join consecutive texts (blank line between) until each has at least ``max_tokens`` tokens,
    so every prompt is full length; the last, shorter one is kept only if nothing else is."""
    packed: list[str] = []
    current = ""
    for text in texts:
        current = f"{current}\n\n{text}" if current else text
        if len(tokenizer(current, add_special_tokens=True)["input_ids"]) >= max_tokens:
            packed.append(current)
            current = ""
            if limit is not None and len(packed) >= limit:
                break
    if current and not packed:
        packed.append(current)
    return packed


def iter_batches(prompts: list[torch.Tensor], batch_size: int, pad_id: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded ``(input_ids, attention_mask)`` batches, in order."""
    if batch_size < 1:
        raise UserError("batch_size must be at least 1")
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        length = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), length), dtype=torch.long)
        for row, prompt in enumerate(chunk):
            ids[row, : len(prompt)] = prompt
            mask[row, : len(prompt)] = 1
        yield ids, mask
