#!/usr/bin/env python
"""FinalMLP: the zoo's `finalmlp` against FuxiCTR's own FinalMLP (the paper authors' library), on
exactly our movielens_100k split and fields, in one run: test AUC / log loss and training throughput.

    python benchmarks/bench_finalmlp.py --fuxictr-path /path/to/FuxiCTR [--seeds 0 1 2] [--epochs 5]
    python benchmarks/bench_finalmlp.py --models ours --gate-init random --out benchmarks/results/finalmlp_random_gates.json
    python benchmarks/bench_finalmlp.py --models ours --max-grad-norm 10 --out benchmarks/results/finalmlp_clip10.json

FuxiCTR's FinalMLP is not in its PyPI wheel (fuxictr 2.3.10): it lives in the GitHub repository's
model_zoo/FinalMLP/src/. Point --fuxictr-path (or $FUXICTR_PATH) at a checkout of
https://github.com/reczoo/FuxiCTR; it is imported from there (its `fuxictr` package and
model_zoo/FinalMLP/src/FinalMLP.py), never copied. Its imports need `polars` and
`keras_preprocessing` (pip install polars; pip install --no-deps keras_preprocessing).

Both models get the same fields (seven categorical: user, item, age group, gender, occupation,
zip prefix, genre), the same widths (streams 128-128-128 and 256, gates 128, 4 fusion heads,
embeddings 10, dropout 0.2, batch norm, learned-vector gate contexts), Adam lr 1e-3, batch 1024,
the same batches in the same order per seed. Each takes its own training step: ours
forward/backward/step, FuxiCTR's `train_step` (which also clips the gradient norm at 10, as its
fit() does). Epochs alternate between the two models so machine load falls on both alike;
reported: test metrics at the epoch of best validation AUC, and examples/s of the training steps
(wall and CPU time).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import log_loss, roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "finalmlp_fuxictr.json"
WIDTHS = dict(embedding_dim=10, mlp1_hidden_units=[128, 128, 128], mlp2_hidden_units=[256], fs_hidden_units=[128],
              num_heads=4)


def load_fuxictr(path: str | None):
    """FuxiCTR's FinalMLP class and FeatureMap from a checkout, or a one-line error saying how to get it."""
    if not path:
        raise SystemExit("bench_finalmlp: give --fuxictr-path (or $FUXICTR_PATH): a checkout of "
                         "https://github.com/reczoo/FuxiCTR (its FinalMLP is in model_zoo/, not in the PyPI wheel)")
    source = Path(path) / "model_zoo" / "FinalMLP" / "src" / "FinalMLP.py"
    if not (Path(path) / "fuxictr").is_dir() or not source.exists():
        raise SystemExit(f"bench_finalmlp: {path} is not a FuxiCTR checkout (needs fuxictr/ and {source.relative_to(path)})")
    try:
        # the checkout's package, ahead of any installed fuxictr (the PyPI wheel has no FinalMLP)
        package = importlib.util.spec_from_file_location("fuxictr", Path(path) / "fuxictr" / "__init__.py",
                                                         submodule_search_locations=[str(Path(path) / "fuxictr")])
        sys.modules["fuxictr"] = importlib.util.module_from_spec(package)
        package.loader.exec_module(sys.modules["fuxictr"])
        from fuxictr.features import FeatureMap
        spec = importlib.util.spec_from_file_location("fuxictr_finalmlp", source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ImportError as error:
        raise SystemExit(f"bench_finalmlp: FuxiCTR does not import ({error}); it needs: pip install polars; "
                         "pip install --no-deps keras_preprocessing") from None
    return module.FinalMLP, FeatureMap


def splits_and_vocab():
    from zoo import data

    splits = {s: d[:] for s, d in data.load("movielens_100k").items()}
    vocab = torch.stack([s["input_ids"].max(0).values for s in splits.values()]).max(0).values + 1
    return splits, [int(v) for v in vocab]


def ours(vocab: list[int], seed: int, gate_init: str = "identity"):
    import zoo

    torch.manual_seed(seed)
    return zoo.create_model("finalmlp", field_vocab_sizes=vocab, dropout=0.2, batch_norm=True, fs1_context=[],
                            fs2_context=[], num_labels=2, mode="finalmlp", gate_init=gate_init, **WIDTHS).train()


def peer(FinalMLP, FeatureMap, vocab: list[int], fields: list[str], seed: int, root: str):
    feature_map = FeatureMap("movielens_100k", root)
    feature_map.features = OrderedDict((f, {"type": "categorical", "vocab_size": v, "source": ""}) for f, v in zip(fields, vocab))
    feature_map.labels = ["label"]
    feature_map.num_fields = len(fields)
    torch.manual_seed(seed)
    model = FinalMLP(feature_map, gpu=-1, learning_rate=1e-3, mlp1_dropout=0.2, mlp2_dropout=0.2, mlp1_batch_norm=True,
                     mlp2_batch_norm=True, fs1_context=[], fs2_context=[], optimizer="adam", loss="binary_crossentropy",
                     task="binary_classification", model_root=root, verbose=0, metrics=["AUC", "logloss"], **WIDTHS)
    model._max_gradient_norm = 10.0  # what its fit() sets (max_gradient_norm=10.) before calling train_step
    return model.train()


def peer_batch(ids: torch.Tensor, labels: torch.Tensor | None, fields: list[str]) -> dict:
    batch = {f: ids[:, j] for j, f in enumerate(fields)}
    if labels is not None:
        batch["label"] = labels
    return batch


@torch.no_grad()
def probabilities(kind: str, model, ids: torch.Tensor, fields: list[str], batch: int = 8192) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(ids), batch):
        if kind == "ours":
            out.append(torch.sigmoid(model(ids[i:i + batch]).logits[:, 1]))
        else:
            out.append(model(peer_batch(ids[i:i + batch], None, fields))["y_pred"][:, 0])
    model.train()
    return torch.cat(out).double().numpy()


def scores(kind, model, split, fields) -> dict:
    p, y = probabilities(kind, model, split["input_ids"], fields), split["labels"].numpy()
    return {"auc": float(roc_auc_score(y, p)), "logloss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))}


def train_epoch(kind: str, model, optimizer, train: dict, order: torch.Tensor, batch_size: int, fields,
                max_grad_norm: float | None = None) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(order), batch_size):
        index = order[i:i + batch_size]
        if kind == "ours":
            loss = model(train["input_ids"][index], labels=train["labels"][index]).loss
            optimizer.zero_grad()
            loss.backward()
            if max_grad_norm is not None:  # what FuxiCTR's train_step does (at 10)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
        else:
            model.train_step(peer_batch(train["input_ids"][index], train["labels"][index], fields))
    return time.perf_counter() - wall, time.process_time() - cpu


def run_seed(seed: int, args, splits, vocab, FinalMLP, FeatureMap, fields, root) -> dict:
    models = {"ours": ours(vocab, seed, args.gate_init)}
    if "fuxictr" in args.models:
        models["fuxictr"] = peer(FinalMLP, FeatureMap, vocab, fields, seed, root)
    optimizers = {"ours": torch.optim.Adam(models["ours"].parameters(), lr=1e-3), "fuxictr": None}
    train = splits["train"]
    generator = torch.Generator().manual_seed(seed)
    history = {k: [] for k in models}
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(train["labels"]), generator=generator)
        kinds = ("ours", "fuxictr") if epoch % 2 else ("fuxictr", "ours")  # alternate who goes first
        for kind in (k for k in kinds if k in models):
            wall, cpu = train_epoch(kind, models[kind], optimizers[kind], train, order, args.batch_size, fields,
                                    args.max_grad_norm if kind == "ours" else None)
            history[kind].append({"epoch": epoch, "wall_s": wall, "cpu_s": cpu,
                                  "validation": scores(kind, models[kind], splits["validation"], fields),
                                  "test": scores(kind, models[kind], splits["test"], fields)})
    n = len(train["labels"])
    result = {"seed": seed}
    for kind, rows in history.items():
        best = max(rows, key=lambda r: r["validation"]["auc"])
        result[kind] = {"parameters": sum(p.numel() for p in models[kind].parameters()), "best_epoch": best["epoch"],
                        "test_auc": best["test"]["auc"], "test_logloss": best["test"]["logloss"],
                        "validation_auc": best["validation"]["auc"],
                        "examples_per_s_wall": n * len(rows) / sum(r["wall_s"] for r in rows),
                        "examples_per_s_cpu": n * len(rows) / sum(r["cpu_s"] for r in rows), "history": rows}
    return result


def summarize(runs: list[dict], args) -> dict:
    out = {"epochs": args.epochs, "batch_size": args.batch_size, "seeds": [r["seed"] for r in runs], "widths": WIDTHS,
           "ours_gate_init": args.gate_init, "ours_max_grad_norm": args.max_grad_norm,
           "fuxictr_source": "github.com/reczoo/FuxiCTR model_zoo/FinalMLP (fuxictr 2.3.10 package from the same checkout)",
           "runs": runs}
    kinds = [k for k in ("ours", "fuxictr") if k in runs[0]]
    for kind in kinds:
        for key in ("test_auc", "test_logloss", "examples_per_s_wall", "examples_per_s_cpu"):
            values = [r[kind][key] for r in runs]
            out[f"{kind}_{key}_mean"] = statistics.mean(values)
            out[f"{kind}_{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out[f"{kind}_parameters"] = runs[0][kind]["parameters"]
    if kinds != ["ours", "fuxictr"]:
        return out
    out["auc_difference"] = out["ours_test_auc_mean"] - out["fuxictr_test_auc_mean"]
    out["auc_within_0.003"] = abs(out["auc_difference"]) <= 0.003
    out["paired_auc_differences"] = [r["ours"]["test_auc"] - r["fuxictr"]["test_auc"] for r in runs]
    out["throughput_ratio_wall"] = out["ours_examples_per_s_wall_mean"] / out["fuxictr_examples_per_s_wall_mean"]
    out["throughput_ratio_cpu"] = out["ours_examples_per_s_cpu_mean"] / out["fuxictr_examples_per_s_cpu_mean"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuxictr-path", default=os.environ.get("FUXICTR_PATH"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--models", nargs="+", default=["ours", "fuxictr"], choices=["ours", "fuxictr"])
    parser.add_argument("--gate-init", default="identity", choices=["identity", "random"],
                        help="our gates' init: identity (g = 1 at init, our default) or random (as FuxiCTR's)")
    parser.add_argument("--max-grad-norm", type=float, default=None,
                        help="clip our gradient norm (FuxiCTR's train_step clips at 10; ours does not by default)")
    args = parser.parse_args(argv)
    FinalMLP, FeatureMap = load_fuxictr(args.fuxictr_path) if "fuxictr" in args.models else (None, None)
    torch.set_num_threads(1)
    from zoo.data.ctr import MOVIELENS_FIELDS

    splits, vocab = splits_and_vocab()
    fields = list(MOVIELENS_FIELDS)
    runs = []
    with tempfile.TemporaryDirectory() as root:  # FuxiCTR's model_root (its checkpoints; unused here)
        for seed in args.seeds:
            runs.append(run_seed(seed, args, splits, vocab, FinalMLP, FeatureMap, fields, root))
            r = runs[-1]
            print(f"seed {seed}: " + "; ".join(f"{k} AUC {r[k]['test_auc']:.4f}, {r[k]['examples_per_s_cpu']:.0f} examples/CPU-s"
                                               for k in args.models), flush=True)
    summary = summarize(runs, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
