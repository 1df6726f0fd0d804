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

__all__ = ["builtin_texts", "load_texts", "tokenize_texts", "pack_texts", "load_prompts", "iter_batches",
           "stream_blocks", "load_token_blocks", "token_hash", "describe_tokens"]


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


def tokenize_texts(tokenizer, texts: list[str], max_tokens: int, min_tokens: int = 2,
                   add_special_tokens: bool = True) -> list[torch.Tensor]:
    """Token ids (1-D LongTensors), each cut to ``max_tokens``; too-short prompts are dropped."""
    if max_tokens < min_tokens:
        raise UserError(f"max_tokens must be at least {min_tokens}")
    prompts = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"][:max_tokens]
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
    add_special_tokens: bool = True,
) -> list[torch.Tensor]:
    """``num_prompts`` tokenized prompts of ``max_tokens`` tokens (``pack``: consecutive texts
    are joined so that every prompt is full length; otherwise each text is cut to length)."""
    texts = load_texts(source, split=split, text_column=text_column, seed=seed)
    if pack:
        texts = pack_texts(tokenizer, texts, max_tokens, num_prompts, add_special_tokens=add_special_tokens)
    prompts = tokenize_texts(tokenizer, texts[: max(num_prompts * 2, num_prompts)], max_tokens,
                             min_tokens=min(min_tokens, max_tokens), add_special_tokens=add_special_tokens)
    return prompts[:num_prompts]


def pack_texts(tokenizer, texts: list[str], max_tokens: int, limit: int | None = None,
               add_special_tokens: bool = True) -> list[str]:
    """Join consecutive texts (blank line between) until each has at least ``max_tokens`` tokens,
    so every prompt is full length; the last, shorter one is kept only if nothing else is."""
    packed: list[str] = []
    current = ""
    for text in texts:
        current = f"{current}\n\n{text}" if current else text
        if len(tokenizer(current, add_special_tokens=add_special_tokens)["input_ids"]) >= max_tokens:
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


# --------------------------------------------------------------------------------------------
# exact token inputs: a text stream cut into fixed blocks, or pre-tokenised blocks
# --------------------------------------------------------------------------------------------

TOKEN_FILE_SUFFIXES = (".safetensors", ".parquet", ".arrow", ".jsonl", ".json")


def stream_blocks(tokenizer, path: str, block_tokens: int, *, num_blocks: int | None = None,
                  add_special_tokens: bool = True) -> list[torch.Tensor]:
    """The text file ``path`` read as one stream, tokenized once (``add_special_tokens``: the
    tokenizer's special tokens, e.g. BOS, at the start of the stream only) and cut into
    consecutive blocks of exactly ``block_tokens`` ids; the last partial block is dropped."""
    if not os.path.isfile(path):
        raise UserError(f"text file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    ids = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
    count = len(ids) // block_tokens
    if count < 1:
        raise UserError(f"{path} has {len(ids)} tokens, fewer than one block of {block_tokens}")
    if num_blocks is not None:
        count = min(count, num_blocks)
    flat = torch.tensor(ids[: count * block_tokens], dtype=torch.long)
    return list(flat.view(count, block_tokens))


def _ids_column(rows, path: str) -> list[torch.Tensor]:
    blocks = []
    for row in rows:
        block = torch.as_tensor(row, dtype=torch.long).reshape(-1)
        blocks.append(block)
    if not blocks:
        raise UserError(f"{path} holds no token blocks")
    return blocks


def load_token_blocks(path: str, *, num_blocks: int | None = None, max_tokens: int | None = None,
                      vocab_size: int | None = None, key: str = "input_ids") -> list[torch.Tensor]:
    """Pre-tokenised blocks from ``path``: a safetensors file with an ``input_ids`` tensor (2-D:
    one block per row; 1-D: one block), or a datasets file / ``save_to_disk`` folder with an
    ``input_ids`` column (.parquet, .arrow, .jsonl/.json). Blocks are used as they are: none is
    cut, padded or given special tokens; a block longer than ``max_tokens`` or an id outside
    ``vocab_size`` is refused."""
    if not os.path.exists(path):
        raise UserError(f"token file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(path, framework="pt") as handle:
                if key not in handle.keys():
                    raise UserError(f"{path} has no {key!r} tensor (it has: {', '.join(handle.keys()) or 'none'})")
                ids = handle.get_tensor(key)
        except SafetensorError as error:
            raise UserError(f"{path} is not a safetensors file: {error}") from None
        if ids.dim() not in (1, 2) or ids.is_floating_point():
            raise UserError(f"{path}: {key} must be a 1-D or 2-D integer tensor, not {ids.dim()}-D {ids.dtype}")
        blocks = _ids_column(ids if ids.dim() == 2 else ids[None], path)
    else:
        import datasets

        try:
            if os.path.isdir(path):
                data = datasets.load_from_disk(path)
            elif path.endswith(".arrow"):
                data = datasets.Dataset.from_file(path)
            elif path.endswith((".parquet", ".jsonl", ".json")):
                kind = "parquet" if path.endswith(".parquet") else "json"
                data = datasets.load_dataset(kind, data_files=path, split="train")
            else:
                raise UserError(f"token file {path}: use .safetensors, a datasets file "
                                f"({', '.join(TOKEN_FILE_SUFFIXES[1:])}) or a save_to_disk folder")
        except UserError:
            raise
        except Exception as error:  # datasets raises many types for unreadable files
            raise UserError(f"could not read token blocks from {path}: {str(error).splitlines()[0][:200]}") from None
        if isinstance(data, datasets.DatasetDict):
            data = data[next(iter(data))]
        if key not in data.column_names:
            raise UserError(f"{path} has no {key!r} column (columns: {', '.join(data.column_names)})")
        blocks = _ids_column(data[key], path)
    if num_blocks is not None:
        blocks = blocks[:num_blocks]
    for index, block in enumerate(blocks):
        if len(block) < 2:
            raise UserError(f"{path}: block {index} has {len(block)} token(s); at least 2 are needed")
        if max_tokens is not None and len(block) > max_tokens:
            raise UserError(f"{path}: block {index} has {len(block)} tokens, more than --max-tokens {max_tokens}")
        if int(block.min()) < 0 or (vocab_size is not None and int(block.max()) >= vocab_size):
            raise UserError(f"{path}: block {index} has token id {int(block.max()) if int(block.min()) >= 0 else int(block.min())} "
                            f"outside the vocabulary (0..{vocab_size - 1 if vocab_size else '?'})")
    return blocks


def token_hash(blocks) -> str:
    """sha256 of the exact token ids: for each block, its length as 8 little-endian bytes and
    then its ids as int64 little-endian (so the same ids in other blocks hash differently)."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for block in blocks:
        ids = np.asarray(torch.as_tensor(block, dtype=torch.long).reshape(-1).cpu(), dtype="<i8")
        digest.update(len(ids).to_bytes(8, "little"))
        digest.update(ids.tobytes())
    return digest.hexdigest()


def describe_tokens(blocks, source: str, kind: str, add_special_tokens: bool | None) -> dict:
    """What a report records about its inputs: where they came from and their exact ids' hash."""
    lengths = [len(b) for b in blocks]
    return {"source": source, "kind": kind, "add_special_tokens": add_special_tokens, "blocks": len(blocks),
            "tokens": int(sum(lengths)), "block_tokens": sorted(set(lengths)) if len(set(lengths)) > 1 else lengths[0],
            "token_ids_sha256": token_hash(blocks)}
