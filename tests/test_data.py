"""Data sets: contents checked against independent computations; seeded and deterministic."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo import UserError, data

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def test_xor_cluster_geometry_and_label_noise():
    ds = data.load("xor_cluster", dim=30, n_train=1000, n_test=4000, label_noise=0.15, separation=4.0, seed=7)
    train, test = ds["train"], ds["test"]
    x, cluster = test["input_features"][:].numpy(), test["cluster"][:].numpy()
    centres = np.stack([x[cluster == c].mean(0) for c in range(4)])
    # ±μ pairs are opposite, μ₁ ⟂ μ₂, ‖μ‖ = separation (up to sampling noise of the means)
    np.testing.assert_allclose(centres[0], -centres[1], atol=0.25)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 4.0, atol=0.25)
    assert abs(centres[0] @ centres[2]) / 16 < 0.05
    # label = 1 exactly for the ±μ₂ clusters; the flipped fraction of the training set is exact
    assert torch.equal(test["labels"][:], (test["cluster"][:] >= 2).long())
    flipped = train["flipped"][:]
    assert flipped.sum().item() == 150
    assert torch.equal(train["labels"][:][flipped], 1 - train["clean_labels"][:][flipped])
    assert not test["flipped"][:].any()


def test_xor_cluster_is_not_linearly_separable():
    from sklearn.linear_model import LogisticRegression

    ds = data.load("xor_cluster", dim=10, n_train=2000, n_test=2000, label_noise=0.0, seed=1)
    clf = LogisticRegression(max_iter=1000).fit(ds["train"]["input_features"][:].numpy(), ds["train"]["labels"][:].numpy())
    assert clf.score(ds["test"]["input_features"][:].numpy(), ds["test"]["labels"][:].numpy()) < 0.6


@pytest.mark.parametrize("name, kwargs", [
    ("xor_cluster", dict(dim=8, n_train=50, n_test=20)),
    ("modular_arithmetic", dict(modulus=11)),
    ("digits", {}),
])
def test_seeded_and_deterministic(name, kwargs):
    a, b = data.load(name, seed=3, **kwargs), data.load(name, seed=3, **kwargs)
    c = data.load(name, seed=4, **kwargs)
    column = "pixel_values" if name == "digits" else "input_features"
    assert torch.equal(a["train"][column][:], b["train"][column][:])
    assert not torch.equal(a["train"][column][:], c["train"][column][:])


@pytest.mark.parametrize("operation", ["add", "sub", "mul", "div"])
def test_modular_arithmetic_labels(operation):
    m = 7
    ds = data.load("modular_arithmetic", modulus=m, operation=operation, train_fraction=0.6)
    rows = [row for split in ds.values() for row in split]
    assert len(rows) == (m * (m - 1) if operation == "div" else m * m)
    for row in rows:
        a, b, y = int(row["a"]), int(row["b"]), int(row["labels"])
        # independent check by brute force over Z_m
        if operation == "div":
            assert (y * b) % m == a
        else:
            assert y == {"add": a + b, "sub": a - b, "mul": a * b}[operation] % m
        one_hot = row["input_features"]
        assert one_hot.sum() == 2 and one_hot[a] == 1 and one_hot[m + b] == 1
    pairs = {(int(r["a"]), int(r["b"])) for r in rows}
    assert len(pairs) == len(rows)  # train and test partition the pairs


def test_digits_matches_sklearn():
    from sklearn.datasets import load_digits

    ds = data.load("digits")
    bunch = load_digits()
    assert len(ds["train"]) + len(ds["test"]) == len(bunch.images)
    image, label = ds["test"][0]["pixel_values"], int(ds["test"][0]["labels"])
    matches = np.where((np.abs(bunch.images / 16.0 - image[0].numpy()) < 1e-6).all(axis=(1, 2)))[0]
    assert len(matches) >= 1 and label in bunch.target[matches]


@pytest.mark.skipif(not FASHION_DIR.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_matches_the_raw_idx_files():
    ds = data.load("fashion_mnist")
    assert (len(ds["train"]), len(ds["test"])) == (60000, 10000)
    with gzip.open(FASHION_DIR / "t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read()[16:], np.uint8).reshape(10000, 28, 28)
    with gzip.open(FASHION_DIR / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read()[8:], np.uint8)
    sample = ds["test"].select([0, 1234, 9999])
    np.testing.assert_allclose(sample["pixel_values"][:].numpy()[:, 0], raw[[0, 1234, 9999]] / 255.0, atol=1e-7)
    assert sample["labels"][:].tolist() == labels[[0, 1234, 9999]].tolist()
    assert ds["train"].features["labels"].names[9] == "Ankle boot"
    assert len(data.load("fashion_mnist", split="train", limit_train=100)) == 100


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_FASHION_MNIST_DIR", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion_mnist")


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="fashion_mnst"), "did you mean fashion_mnist"),
    (dict(name="xor_cluster", dims=3), "no parameter dims"),
    (dict(name="xor_cluster", label_noise=0.5), "label_noise"),
    (dict(name="modular_arithmetic", modulus=8, operation="div"), "prime"),
    (dict(name="digits", split="validation"), "no split"),
])
def test_bad_input_is_a_clear_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        data.load(**kwargs)
