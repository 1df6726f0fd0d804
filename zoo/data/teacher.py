"""A planted two-layer ReLU teacher on Gaussian inputs (the problem of the convex-training issue)."""
from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from ..errors import UserError
from . import register_dataset


@register_dataset("relu_teacher")
def relu_teacher(dim: int = 20, n_train: int = 500, n_test: int = 2000, teacher_width: int = 10,
                 label_noise: float = 0.05, seed: int = 0) -> DatasetDict:
    """x ~ N(0, I_dim); class 1 where the teacher f(x) = Σ_j a_j relu(t_j·x) (t_j ~ N(0, I/dim),
    a_j = ±1) exceeds its median (balanced classes), else class 0. A `label_noise` fraction of the
    *training* labels is flipped (exactly round(label_noise·n_train)); test labels are clean.
    Columns: input_features, labels, clean_labels, flipped."""
    for name, value, low in (("dim", dim, 1), ("n_train", n_train, 2), ("n_test", n_test, 1), ("teacher_width", teacher_width, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(label_noise, bool) or not isinstance(label_noise, (int, float)) or not 0 <= label_noise < 0.5:
        raise UserError(f"label_noise must be in [0, 0.5), got {label_noise!r}")
    rng = np.random.default_rng(seed)
    T = rng.standard_normal((teacher_width, dim)) / np.sqrt(dim)
    a = np.where(np.arange(teacher_width) % 2 == 0, 1.0, -1.0)

    def teacher(x):
        return np.maximum(x @ T.T, 0.0) @ a

    threshold = float(np.median(teacher(rng.standard_normal((20000, dim)))))
    features = Features({
        "input_features": Sequence(Value("float32"), length=dim),
        "labels": ClassLabel(names=["below", "above"]),
        "clean_labels": ClassLabel(names=["below", "above"]),
        "flipped": Value("bool"),
    })

    def sample(n, noise):
        x = rng.standard_normal((n, dim))
        clean = (teacher(x) > threshold).astype(np.int64)
        flipped = np.zeros(n, dtype=bool)
        flipped[rng.choice(n, size=int(round(noise * n)), replace=False)] = True
        return Dataset.from_dict({"input_features": x.astype(np.float32), "labels": np.where(flipped, 1 - clean, clean),
                                  "clean_labels": clean, "flipped": flipped}, features=features)

    train = sample(n_train, label_noise)
    return DatasetDict({"train": train, "test": sample(n_test, 0.0)})
