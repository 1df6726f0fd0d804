"""What the recurrent experiments share: the data as tensors, a short Adam loop, evaluation, the
1-D CNN reference, and one JSON per finished cell (resumable)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from zoo import data

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"

# per data set: the zoo data set, its arguments, the training length (epochs, batch size, lr)
DATASETS = {
    "basic_motions": dict(name="basic_motions", args={}, epochs=60, batch_size=8, lr=3e-3),
    "japanese_vowels": dict(name="japanese_vowels", args={}, epochs=30, batch_size=16, lr=3e-3),
    "reber": dict(name="reber", args=dict(embedded=False, n_train=1000, n_test=500, max_length=30), epochs=10,
                  batch_size=32, lr=1e-2),
    "embedded_reber": dict(name="reber", args=dict(embedded=True, n_train=1000, n_test=500, max_length=40), epochs=10,
                           batch_size=32, lr=1e-2),
    "fashion_mnist_rows": dict(name="fashion_mnist_rows", args=dict(limit_train=10000, limit_test=2000), epochs=3,
                               batch_size=128, lr=2e-3),
}


def tensors(dataset_key: str) -> dict:
    """{"train": (x, mask, y), "test": (...), "classes": n, "features": C, "steps": T}."""
    spec = DATASETS[dataset_key]
    dd = data.load(spec["name"], **spec["args"])
    out = {}
    for split in ("train", "test"):
        table = dd[split].with_format("torch", columns=["input_features", "attention_mask", "labels"])[:]
        out[split] = (table["input_features"], table["attention_mask"], table["labels"])
    x = out["train"][0]
    out.update(classes=len(dd["train"].features["labels"].names), features=x.shape[-1], steps=x.shape[1])
    return out


class CNN1d(nn.Module):
    """The non-recurrent reference: two Conv1d(k=5) + ReLU layers, masked global average pooling, Linear."""

    def __init__(self, features: int, classes: int, channels: int = 64, kernel: int = 5):
        super().__init__()
        self.conv1 = nn.Conv1d(features, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.head = nn.Linear(channels, classes)

    def forward(self, input_features, attention_mask=None, labels=None):
        m = attention_mask.float()[:, None] if attention_mask is not None else torch.ones_like(input_features[:, None, :, 0])
        h = torch.relu(self.conv1(input_features.transpose(1, 2) * m)) * m
        h = torch.relu(self.conv2(h)) * m
        logits = self.head(h.sum(2) / m.sum(2).clamp(min=1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(logits=logits, loss=loss)


def accuracy(model, split, batch_size: int = 512) -> float:
    x, mask, y = split
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            logits = model(input_features=x[i:i + batch_size], attention_mask=mask[i:i + batch_size]).logits
            correct += (logits.argmax(-1) == y[i:i + batch_size]).sum().item()
    model.train()
    return correct / len(y)


def train_epochs(model, split, epochs: int, batch_size: int, lr: float, seed: int, after_step=None, each_epoch=None,
                 optimizer=None):
    """Adam, gradient norm clipped at 1, shuffled minibatches; `after_step()` after each step,
    `each_epoch(epoch)` after each epoch. Returns the optimiser (fine-tuning continues it)."""
    x, mask, y = split
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y) - batch_size + 1, batch_size):
            idx = order[i:i + batch_size]
            loss = model(input_features=x[idx], attention_mask=mask[idx], labels=y[idx]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if after_step is not None:
                after_step()
        if each_epoch is not None:
            each_epoch(epoch)
    return optimizer


def cell_path(topic: str, name: str) -> Path:
    return RESULTS / topic / f"{name}.json"


def write_cell(topic: str, name: str, payload: dict) -> None:
    path = cell_path(topic, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
    os.replace(tmp, path)


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall_s, self.cpu_s = time.perf_counter() - self.wall, time.process_time() - self.cpu
