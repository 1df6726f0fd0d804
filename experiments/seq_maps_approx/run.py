"""Approximation error of the single-layer transformer on the seq_maps maps, against the
feed-forward width and the number of heads, with a two-layer transformer at equal parameters.

One JSON per finished cell (map, layers, ffn width, heads, seed) under
experiments/results/seq_maps_approx/; finished cells are skipped. Error: relative L2 error on
the test set, ‖ŷ − y‖ / ‖y‖ over all test sequences. `--aggregate` writes summary.json and a
figure under docs/figures/seq_maps_approx/.

    python experiments/seq_maps_approx/run.py --widths 8 32 128 --heads 1 2 4 --steps 1200
    python experiments/seq_maps_approx/run.py --aggregate
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import zoo
from zoo import data
from zoo.data.seq_maps import SEQ_MAPS

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "seq_maps_approx"
FIGURES = ROOT / "docs" / "figures" / "seq_maps_approx"


def config(args, layers: int, ffn: int, heads: int) -> dict:
    return dict(num_labels=args.seq_len, hidden_size=args.hidden_size, num_heads=heads, ffn_size=ffn,
                num_layers=layers, positional="learned", norm="post", problem_type="regression")


def n_params(cfg: dict) -> int:
    return sum(p.numel() for p in zoo.create_model("one_layer_transformer", **cfg).parameters())


def matched_two_layer_ffn(args, ffn: int, heads: int) -> int:
    """The FF width at which a two-layer transformer has (about) the parameters of a one-layer one of width `ffn`."""
    target = n_params(config(args, 1, ffn, heads))
    return min(range(1, ffn + 1), key=lambda f: abs(n_params(config(args, 2, f, heads)) - target))


def relative_error(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(x).logits
    model.train()
    return float(torch.linalg.norm(pred - y) / torch.linalg.norm(y))


def run_cell(map_name, layers, ffn, heads, seed, args) -> dict:
    d = data.load("seq_maps", map=map_name, seq_len=args.seq_len, n_train=args.n_train, n_test=args.n_test, seed=seed)
    xtr, ytr = d["train"]["input_features"][:], d["train"]["labels"][:]
    xte, yte = d["test"]["input_features"][:], d["test"]["labels"][:]
    torch.manual_seed(seed)
    cfg = config(args, layers, ffn, heads)
    model = zoo.create_model("one_layer_transformer", **cfg).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(args.steps):
        idx = torch.randint(0, len(xtr), (args.batch_size,), generator=generator)
        loss = model(xtr[idx], labels=ytr[idx]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return {"map": map_name, "layers": layers, "ffn_size": ffn, "heads": heads, "seed": seed, "config": cfg,
            "parameters": sum(p.numel() for p in model.parameters()), "steps": args.steps, "lr": args.lr,
            "train_relative_error": relative_error(model, xtr, ytr), "test_relative_error": relative_error(model, xte, yte)}


def aggregate() -> dict:
    cells = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("cell_*.json"))]
    summary = {}
    for c in cells:
        key = f"{c['map']}/L{c['layers']}/ffn{c['ffn_size']}/h{c['heads']}"
        summary.setdefault(key, {"map": c["map"], "layers": c["layers"], "ffn_size": c["ffn_size"], "heads": c["heads"],
                                 "parameters": c["parameters"], "test_relative_error": []})["test_relative_error"].append(c["test_relative_error"])
    for row in summary.values():
        row["test_relative_error_mean"] = float(np.mean(row.pop("test_relative_error")))
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name in SEQ_MAPS:
        rows = sorted((r for r in summary.values() if r["map"] == name and r["layers"] == 1 and r["heads"] == 2),
                      key=lambda r: r["ffn_size"])
        if rows:
            ax.plot([r["ffn_size"] for r in rows], [r["test_relative_error_mean"] for r in rows], "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("feed-forward width (1 layer, 2 heads)")
    ax.set_ylabel("test relative L2 error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "error_vs_width.png", dpi=120)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=list(SEQ_MAPS), choices=list(SEQ_MAPS))
    parser.add_argument("--widths", nargs="+", type=int, default=[8, 32, 128], help="FF widths (1 layer, 2 heads)")
    parser.add_argument("--heads", nargs="+", type=int, default=[1, 2, 4], help="head counts at --head-width")
    parser.add_argument("--head-width", type=int, default=32)
    parser.add_argument("--no-two-layer", action="store_true", help="skip the two-layer model at the largest width's parameters")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--seq-len", type=int, default=6)
    parser.add_argument("--hidden-size", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=4096)
    parser.add_argument("--n-test", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--aggregate", action="store_true")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.aggregate:
        plan = {(1, w, 2) for w in args.widths} | {(1, args.head_width, h) for h in args.heads}
        if not args.no_two_layer:
            plan.add((2, matched_two_layer_ffn(args, max(args.widths), 2), 2))
        cells = [(m, *p, s) for s in args.seeds for m in args.maps for p in sorted(plan)]
        for map_name, layers, ffn, heads, seed in tqdm(cells, desc="cells"):
            path = RESULTS / f"cell_{map_name}_L{layers}_ffn{ffn}_h{heads}_n{args.seq_len}_seed{seed}.json"
            if path.exists():
                continue
            result = run_cell(map_name, layers, ffn, heads, seed, args)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            os.replace(tmp, path)
            tqdm.write(f"{map_name} L{layers} ffn{ffn} h{heads}: test rel. error {result['test_relative_error']:.4f}")
    print(json.dumps(aggregate(), indent=1))
    print(f"cells: {RESULTS}; figure: {FIGURES / 'error_vs_width.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
