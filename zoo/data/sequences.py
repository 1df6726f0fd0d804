"""Sequence classification data for the recurrent models: the UEA/UCR sets sktime bundles (read by
our own .ts parser), Fashion-MNIST read row by row, and (embedded) Reber grammar strings.

Every set has the same columns: ``input_features`` (length, features) float32, zero-padded to the
longest sequence of the set; ``attention_mask`` (length,) with 1 on real steps and 0 on padding;
``length`` (the number of real steps); ``labels``.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Sequence, Value
from datasets.table import table_cast

from ..errors import UserError, unknown_name_error
from . import register_dataset
from .ts_format import read_ts

TS_DATA_ENV = "ZOO_TS_DATA_DIR"


def sequences_to_dataset(x: np.ndarray, mask: np.ndarray, labels: np.ndarray, class_names: list[str]) -> Dataset:
    """(N, T, C) padded features, an (N, T) 0/1 mask and labels → a Dataset (built from Arrow arrays)."""
    n, steps, channels = x.shape
    column = pa.array(np.ascontiguousarray(x, dtype=np.float32).reshape(-1), pa.float32())
    for size in (channels, steps):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    mask_column = pa.FixedSizeListArray.from_arrays(pa.array(mask.astype(np.int64).reshape(-1)), steps)
    table = pa.table({"input_features": column, "attention_mask": mask_column,
                      "length": pa.array(mask.sum(1).astype(np.int64)), "labels": pa.array(labels.astype(np.int64))})
    features = Features({"input_features": Array2D((steps, channels), "float32"),
                         "attention_mask": Sequence(Value("int64"), length=steps),
                         "length": Value("int64"), "labels": ClassLabel(names=class_names)})
    return Dataset(table_cast(table, features.arrow_schema), info=DatasetInfo(features=features))


def pad(series: list[np.ndarray], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad (length_i, C) arrays at the end to `steps`; returns (N, steps, C) and the (N, steps) mask."""
    x = np.zeros((len(series), steps, series[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(series), steps), dtype=np.int64)
    for i, s in enumerate(series):
        x[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return x, mask


# ------------------------------------------------------------------------------------------
# the UEA / UCR sets sktime ships
# ------------------------------------------------------------------------------------------

def ts_data_dirs() -> list[Path]:
    """Where .ts problems are looked for: $ZOO_TS_DATA_DIR, then sktime's bundled data folder
    (found without importing sktime)."""
    dirs = [Path(os.environ[TS_DATA_ENV])] if os.environ.get(TS_DATA_ENV) else []
    spec = importlib.util.find_spec("sktime")
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data")
    return dirs


def available_ts_problems() -> list[str]:
    """The classification problems found: folders <Name>/ holding <Name>_TRAIN.ts and <Name>_TEST.ts."""
    found = set()
    for folder in ts_data_dirs():
        if folder.is_dir():
            found |= {p.name for p in folder.iterdir() if (p / f"{p.name}_TRAIN.ts").exists() and (p / f"{p.name}_TEST.ts").exists()}
    return sorted(found)


def _problem_dir(problem: str) -> Path:
    for folder in ts_data_dirs():
        if (folder / problem / f"{problem}_TRAIN.ts").exists():
            return folder / problem
    known = available_ts_problems()
    if not known:
        raise UserError(f"no .ts data found for {problem!r}: `pip install --no-deps sktime==1.2.0` ships the UEA/UCR "
                        f"sets it bundles, or point ${TS_DATA_ENV} at a folder of <Name>/<Name>_TRAIN.ts files")
    raise unknown_name_error("time-series problem", problem, known)


@register_dataset("ts_classification")
def ts_classification(problem: str = "BasicMotions", normalize: bool = True, max_length: int | None = None) -> DatasetDict:
    """A UEA/UCR classification problem from its <problem>_{TRAIN,TEST}.ts files.

    Variable-length series are zero-padded to the longest of both splits (or `max_length`; a
    longer series is an error) and masked. `normalize`: each channel standardised with the mean
    and standard deviation of the training set's real steps; missing values (``?``) become 0
    after that (the channel's mean).
    """
    folder = _problem_dir(problem)
    train, test = (read_ts(folder / f"{problem}_{split}.ts") for split in ("TRAIN", "TEST"))
    if train.dimensions != test.dimensions:
        raise UserError(f"{problem}: {train.dimensions} dimensions in TRAIN but {test.dimensions} in TEST")
    names = train.class_names
    longest = int(max(train.lengths.max(), test.lengths.max()))
    if max_length is not None:
        if not isinstance(max_length, int) or max_length < 1:
            raise UserError(f"max_length must be a positive integer, got {max_length!r}")
        if longest > max_length:
            raise UserError(f"{problem} has series of {longest} steps, longer than max_length={max_length}")
    steps = max_length or longest
    stats = np.concatenate(train.series)
    mean, std = np.nanmean(stats, 0), np.nanstd(stats, 0)
    std[~(std > 0)] = 1.0

    def build(ts) -> Dataset:
        series = [np.nan_to_num((s - mean) / std) if normalize else np.nan_to_num(s) for s in ts.series]
        x, mask = pad(series, steps)
        return sequences_to_dataset(x, mask, np.array([names.index(label) for label in ts.labels]), names)

    return DatasetDict({"train": build(train), "test": build(test)})


@register_dataset("basic_motions")
def basic_motions(normalize: bool = True) -> DatasetDict:
    """BasicMotions (UEA): 6-channel accelerometer/gyroscope series of 100 steps, 4 activities, 40/40."""
    return ts_classification("BasicMotions", normalize=normalize)


@register_dataset("japanese_vowels")
def japanese_vowels(normalize: bool = True) -> DatasetDict:
    """JapaneseVowels (UEA): 12 LPC cepstrum coefficients, 7..29 steps (variable, masked), 9 speakers, 270/370."""
    return ts_classification("JapaneseVowels", normalize=normalize)


@register_dataset("italy_power_demand")
def italy_power_demand(normalize: bool = True) -> DatasetDict:
    """ItalyPowerDemand (UCR): one channel of 24 hourly loads, 2 seasons, 67/1029 (sktime 1.2.0 bundles
    no third multivariate set; other UEA sets load through ts_classification and $ZOO_TS_DATA_DIR)."""
    return ts_classification("ItalyPowerDemand", normalize=normalize)


# ------------------------------------------------------------------------------------------
# Fashion-MNIST as a sequence: 28 steps of 28 features (one image row a step)
# ------------------------------------------------------------------------------------------

@register_dataset("fashion_mnist_rows")
def fashion_mnist_rows(limit_train: int | None = None, limit_test: int | None = None) -> DatasetDict:
    """Fashion-MNIST read row by row, top to bottom: step t is image row t (28 pixels in [0, 1])."""
    from .images import FASHION_MNIST_CLASSES, _fashion_mnist_dir, _read_idx, fashion_mnist

    folder = _fashion_mnist_dir()
    out = {}
    for split, prefix, limit in (("train", "train", limit_train), ("test", "t10k", limit_test)):
        if folder is not None:  # the IDX files: read only what the limit keeps
            stop = None if limit is None else int(limit)
            x = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")[:stop].astype(np.float32) / 255.0
            labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")[:stop]
        else:  # the Hub's copy, through the image data set
            table = fashion_mnist(limit_train=limit_train, limit_test=limit_test)[split].with_format("numpy")[:]
            x, labels = table["pixel_values"][:, 0], table["labels"]
        # (N, 28, 28): rows are the steps, columns the features
        out[split] = sequences_to_dataset(x, np.ones(x.shape[:2], np.int64), labels, FASHION_MNIST_CLASSES)
    return DatasetDict(out)


# ------------------------------------------------------------------------------------------
# the Reber grammar (Reber 1967) and its embedded form (Hochreiter & Schmidhuber 1997)
# ------------------------------------------------------------------------------------------

REBER_SYMBOLS = "BTSXPVE"
# state -> [(symbol, next state)]; state 5 ends with E
REBER_GRAPH = {0: [("T", 1), ("P", 2)], 1: [("S", 1), ("X", 3)], 2: [("T", 2), ("V", 4)],
               3: [("X", 2), ("S", 5)], 4: [("P", 3), ("V", 5)]}


def reber_string(rng: np.random.Generator) -> str:
    """A random string of the Reber grammar: B, a walk of the graph (each edge with probability 1/2), E."""
    out, state = ["B"], 0
    while state != 5:
        symbol, state = REBER_GRAPH[state][rng.integers(2)]
        out.append(symbol)
    return "".join(out) + "E"


def embedded_reber_string(rng: np.random.Generator) -> str:
    """B, T or P, a Reber string, the same T or P, E: the second and second-to-last symbols match."""
    wrap = "TP"[rng.integers(2)]
    return f"B{wrap}{reber_string(rng)}{wrap}E"


def is_reber(s: str) -> bool:
    if len(s) < 2 or s[0] != "B" or s[-1] != "E":
        return False
    state = 0
    for symbol in s[1:-1]:
        moves = dict(REBER_GRAPH.get(state, []))
        if symbol not in moves:
            return False
        state = moves[symbol]
    return state == 5


def is_embedded_reber(s: str) -> bool:
    return len(s) >= 4 and s[0] == "B" and s[-1] == "E" and s[1] in "TP" and s[-2] == s[1] and is_reber(s[2:-2])


def corrupt(s: str, embedded: bool, rng: np.random.Generator) -> str:
    """A string of the same length that is not in the grammar. Embedded: half the time the
    long-range dependency is broken (the second-to-last symbol swapped T <-> P), else one inner
    symbol replaced; plain: one symbol after B replaced, until the result is ungrammatical."""
    valid = is_embedded_reber if embedded else is_reber
    if embedded and rng.random() < 0.5:
        return s[:-2] + ("P" if s[-2] == "T" else "T") + s[-1]
    while True:
        i = int(rng.integers(1, len(s) - 1))
        out = s[:i] + REBER_SYMBOLS[rng.integers(1, 6)] + s[i + 1:]  # T S X P V
        if not valid(out):
            return out


@register_dataset("reber")
def reber(embedded: bool = True, n_train: int = 2000, n_test: int = 1000, max_length: int = 40, seed: int = 0) -> DatasetDict:
    """Grammatical (label 1) against corrupted (label 0) (embedded) Reber strings, balanced.

    Symbols are one-hot (B T S X P V E: 7 features); strings longer than `max_length` are redrawn,
    shorter ones are zero-padded and masked. Columns also hold the string itself (``text``).
    """
    for field, value in (("n_train", n_train), ("n_test", n_test), ("max_length", max_length)):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{field} must be a positive integer, got {value!r}")
    if max_length < (9 if embedded else 5):
        raise UserError(f"max_length={max_length} is shorter than the shortest {'embedded ' if embedded else ''}Reber string")
    rng = np.random.default_rng(seed)
    draw = embedded_reber_string if embedded else reber_string

    def sample(n: int) -> Dataset:
        strings, labels = [], rng.permutation(np.arange(n) % 2)
        for label in labels:
            s = draw(rng)
            while len(s) > max_length:
                s = draw(rng)
            strings.append(s if label else corrupt(s, embedded, rng))
        series = [np.eye(7, dtype=np.float32)[[REBER_SYMBOLS.index(c) for c in s]] for s in strings]
        x, mask = pad(series, max_length)
        dataset = sequences_to_dataset(x, mask, labels, ["ungrammatical", "grammatical"])
        return dataset.add_column("text", strings)

    return DatasetDict({"train": sample(n_train), "test": sample(n_test)})
