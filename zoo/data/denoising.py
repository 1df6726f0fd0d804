"""Image denoising data: Fashion-MNIST images with additive Gaussian noise, the clean image as the target.

The generative (image-to-image) task of the Hourglass-MLP comparison: the model sees the noisy
image (`pixel_values`, (1, 28, 28)) and regresses the clean one (`labels`, its 784 pixels
flattened, float32): a regressor's problem_type, so the loop's eval_loss is the mean squared
error per pixel (its training loss). The noise is drawn once from `seed` (per split, different seeds), so the data
set is deterministic and the test split is the same for every model.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from datasets import Array3D, Dataset, DatasetDict, DatasetInfo, Features, Sequence, Value
from datasets.table import table_cast

from ..errors import UserError
from . import register_dataset
from .images import fashion_mnist


def noisy_pairs(clean: np.ndarray, noise_std: float, seed: int, clip: bool) -> Dataset:
    """(N, C, H, W) clean images in [0, 1] → a Dataset of (noisy pixel_values, flattened clean labels)."""
    rng = np.random.default_rng(seed)
    noisy = clean + rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(noise_std)
    if clip:
        noisy = np.clip(noisy, 0.0, 1.0)
    n, c, h, w = clean.shape
    column = pa.array(np.ascontiguousarray(noisy, dtype=np.float32).reshape(-1), pa.float32())
    for size in (w, h, c):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    target = pa.FixedSizeListArray.from_arrays(pa.array(clean.reshape(-1).astype(np.float32), pa.float32()), c * h * w)
    features = Features({"pixel_values": Array3D((c, h, w), "float32"),
                         "labels": Sequence(Value("float32"), length=c * h * w)})
    table = table_cast(pa.table({"pixel_values": column, "labels": target}), features.arrow_schema)
    return Dataset(table, info=DatasetInfo(features=features))


@register_dataset("fashion_mnist_denoising")
def fashion_mnist_denoising(noise_std: float = 0.5, clip: bool = False, seed: int = 0,
                            limit_train: int | None = None, limit_test: int | None = None) -> DatasetDict:
    """Fashion-MNIST denoising: x + N(0, noise_std²) (clipped to [0, 1] with `clip`) → x."""
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not noise_std > 0:
        raise UserError(f"noise_std must be a positive number, got {noise_std!r}")
    source = fashion_mnist(limit_train=limit_train, limit_test=limit_test)
    out = {}
    for offset, split in enumerate(("train", "test")):
        clean = source[split].with_format("numpy", columns=["pixel_values"])[:]["pixel_values"]
        out[split] = noisy_pairs(np.asarray(clean, dtype=np.float32), float(noise_std), seed * 2 + offset, bool(clip))
    return DatasetDict(out)
