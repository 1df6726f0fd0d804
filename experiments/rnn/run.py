"""The recurrent-model experiments behind docs/FINDINGS.md (E1, E2), resumable, one JSON per cell.

    python experiments/rnn/run.py baselines --datasets basic_motions japanese_vowels --seeds 0
    python experiments/rnn/run.py segments --num-segments 1 2 3 4 6 --seeds 0 1 2 3 4
    python experiments/rnn/run.py pruning --cells tanh relu gru lstm --seeds 0 --recovery-epochs 3
    python experiments/rnn/run.py graphs --dataset embedded_reber --cell tanh --hidden 32 --epochs 5
    python experiments/rnn/run.py summary

baselines: rnn_classifier with each cell (tanh, relu, gru, lstm, and a bidirectional LSTM)
beside the 1-D CNN reference (common.CNN1d), ts_lstm (3 windows) and temporal_inception, same
split, same loop; results under
experiments/results/rnn_baselines/<data>__<model>__s<seed>.json.

segments (Ma et al. 2017, the segmentation ablation): ts_lstm with each num_segments;
experiments/results/rnn_segments/<data>__ts_lstm_k<segments>__s<seed>.json (num_segments 3:
the baselines' ts_lstm cells).

pruning (Darji 2024): train each cell dense on the Reber data, then for each sparsity prune the
recurrent layers' weight_ih / weight_hh by magnitude (zoo.training.magnitude_pruning, per
tensor), measure the accuracy right after pruning and after each fine-tuning epoch with the
masks re-applied; experiments/results/rnn_pruning/<data>__<cell>__s<seed>__p<sparsity>.json.

graphs (Darji 2024): sparse_rnn over 36 random graphs (graph_grid), accuracy beside each
graph's clustering, average path length and degree spread (networkx);
experiments/results/rnn_graphs/<data>__<cell>__h<hidden>__g<index>__s<seed>.json.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATASETS, CNN1d, Clock, accuracy, cell_path, tensors, train_epochs, write_cell  # noqa: E402

import zoo  # noqa: E402
from zoo.training.magnitude_pruning import apply_masks, magnitude_masks, prunable_parameters, sparsity_of  # noqa: E402

MODELS = ("tanh", "relu", "gru", "lstm", "bilstm", "cnn1d", "ts_lstm", "temporal_inception")
SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def build(kind: str, d: dict, hidden: int, seed: int, num_segments: int = 3):
    torch.manual_seed(seed)
    if kind == "cnn1d":
        return CNN1d(d["features"], d["classes"])
    if kind == "ts_lstm":  # Ma et al. 2017: 3 windows, states averaged (num_segments 1 is the plain LSTM)
        return zoo.create_model("ts_lstm", input_size=d["features"], hidden_size=hidden, num_segments=num_segments,
                                num_labels=d["classes"], max_steps=d["steps"])
    if kind == "temporal_inception":
        return zoo.create_model("temporal_inception", input_size=d["features"], channels=16, kernel_sizes=[1, 3, 5],
                                num_blocks=2, num_labels=d["classes"], max_steps=d["steps"])
    cell, bidirectional = ("lstm", True) if kind == "bilstm" else (kind, False)
    return zoo.create_model("rnn_classifier", input_size=d["features"], hidden_size=hidden, cell=cell,
                            bidirectional=bidirectional, num_labels=d["classes"], max_steps=d["steps"])


def train_cell(topic: str, name: str, ds: str, kind: str, seed: int, hidden: int, **extra) -> None:
    """Train one model on one data set with one seed and write its JSON."""
    d, spec = tensors(ds), DATASETS[ds]
    model = build(kind, d, hidden, seed, **extra)
    curve = []
    with Clock() as clock:
        train_epochs(model, d["train"], spec["epochs"], spec["batch_size"], spec["lr"], seed,
                     each_epoch=lambda e: curve.append(accuracy(model, d["test"])) if e % 5 == 0 or e == spec["epochs"] else None)
    write_cell(topic, name, {
        "dataset": ds, "model": kind, "seed": seed, "hidden_size": hidden, "data_args": spec["args"], **extra,
        "epochs": spec["epochs"], "batch_size": spec["batch_size"], "lr": spec["lr"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "test_accuracy": accuracy(model, d["test"]), "train_accuracy": accuracy(model, d["train"]),
        "test_accuracy_every_5_epochs": curve, "train_wall_s": clock.wall_s, "train_cpu_s": clock.cpu_s,
    })


def baselines(args) -> None:
    todo = [(ds, m, s) for ds in args.datasets for m in args.models for s in args.seeds
            if args.overwrite or not cell_path("rnn_baselines", f"{ds}__{m}__s{s}").exists()]
    for ds, kind, seed in tqdm(todo, desc="baselines"):
        train_cell("rnn_baselines", f"{ds}__{kind}__s{seed}", ds, kind, seed, args.hidden)


def segments(args) -> None:
    """The segmentation ablation (Ma et al. 2017: LSTMs need pre-segmented data): ts_lstm with
    each num_segments (1 = one window over the whole sequence, the plain LSTM's reading); the
    num_segments=3 cells are the baselines' ts_lstm cells (same settings), not rerun here."""
    todo = [(ds, k, s) for ds in args.datasets for k in args.num_segments for s in args.seeds if k != 3
            and (args.overwrite or not cell_path("rnn_segments", f"{ds}__ts_lstm_k{k}__s{s}").exists())]
    for ds, k, seed in tqdm(todo, desc="segments"):
        train_cell("rnn_segments", f"{ds}__ts_lstm_k{k}__s{seed}", ds, "ts_lstm", seed, args.hidden, num_segments=k)


def pruning(args) -> None:
    ds = args.dataset
    for cell in args.cells:
        for seed in args.seeds:
            names = {p: f"{ds}__{cell}__s{seed}__p{int(round(p * 100)):02d}" for p in args.sparsities}
            todo = [p for p, name in names.items() if args.overwrite or not cell_path("rnn_pruning", name).exists()]
            if not todo:
                continue
            d, spec = tensors(ds), DATASETS[ds]
            dense = build(cell, d, args.hidden, seed)
            train_epochs(dense, d["train"], spec["epochs"], spec["batch_size"], spec["lr"], seed)
            dense_accuracy = accuracy(dense, d["test"])
            for sparsity in tqdm(todo, desc=f"pruning {cell} s{seed}"):
                model = copy.deepcopy(dense)
                params = prunable_parameters(model)
                masks = magnitude_masks(params, sparsity)
                apply_masks(params, masks)
                after = accuracy(model, d["test"])
                per_epoch = []
                with Clock() as clock:
                    train_epochs(model, d["train"], args.recovery_epochs, spec["batch_size"], args.recovery_lr, seed + 1,
                                 after_step=lambda: apply_masks(params, masks),
                                 each_epoch=lambda e: per_epoch.append(accuracy(model, d["test"])))
                still_zero = all(not params[n][~m].any() for n, m in masks.items())
                write_cell("rnn_pruning", names[sparsity], {
                    "dataset": ds, "cell": cell, "seed": seed, "sparsity": sparsity, "hidden_size": args.hidden,
                    "data_args": spec["args"], "dense_epochs": spec["epochs"], "recovery_epochs": args.recovery_epochs,
                    "recovery_lr": args.recovery_lr, "dense_accuracy": dense_accuracy, "accuracy_after_pruning": after,
                    "accuracy_per_recovery_epoch": per_epoch, "measured_sparsity": sparsity_of(params),
                    "pruned_weights_stayed_zero": still_zero, "recovery_wall_s": clock.wall_s,
                })


def graph_grid() -> list[dict]:
    """The random graphs of the graph-property study: 36 configurations over the three generators."""
    grid = [dict(graph="watts_strogatz", graph_k=k, graph_p=p) for k in (2, 4, 8) for p in (0.0, 0.1, 0.3, 1.0)]
    grid += [dict(graph="barabasi_albert", graph_m=m, graph_seed=s) for m in (1, 2, 4, 8) for s in (0, 1, 2)]
    grid += [dict(graph="erdos_renyi", graph_p=p, graph_seed=s) for p in (0.05, 0.1, 0.2, 0.4) for s in (0, 1, 2)]
    return grid


def graph_properties(edges: list, n: int) -> dict:
    """Clustering, path length (largest component), degree spread, with networkx (a peer: bench extra)."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    degrees = [d for _, d in g.degree()]
    giant = g.subgraph(max(nx.connected_components(g), key=len))
    return {
        "edges": g.number_of_edges(), "density": nx.density(g), "clustering": nx.average_clustering(g),
        "average_path_length": nx.average_shortest_path_length(giant) if len(giant) > 1 else 0.0,
        "largest_component": len(giant) / n, "degree_std": float(torch.tensor(degrees, dtype=torch.float64).std(correction=0)),
        "mean_degree": sum(degrees) / n,
    }


def graphs(args) -> None:
    d, spec = tensors(args.dataset), DATASETS[args.dataset]
    for index, graph in enumerate(tqdm(graph_grid(), desc="graphs")):
        name = f"{args.dataset}__{args.cell}__h{args.hidden}__g{index:02d}__s{args.seed}"
        if cell_path("rnn_graphs", name).exists() and not args.overwrite:
            continue
        torch.manual_seed(args.seed)
        model = zoo.create_model("sparse_rnn", input_size=d["features"], hidden_size=args.hidden, cell=args.cell,
                                 num_labels=d["classes"], max_steps=d["steps"], **graph)
        edges = model.rnn.edges()
        with Clock() as clock:
            train_epochs(model, d["train"], args.epochs, spec["batch_size"], spec["lr"], args.seed)
        write_cell("rnn_graphs", name, {
            "dataset": args.dataset, "cell": args.cell, "hidden_size": args.hidden, "seed": args.seed,
            "epochs": args.epochs, "data_args": spec["args"], "graph": graph, "edge_list": edges,
            "properties": graph_properties(edges, args.hidden), "test_accuracy": accuracy(model, d["test"]),
            "train_accuracy": accuracy(model, d["train"]), "train_wall_s": clock.wall_s,
        })


def summary(args) -> None:
    from summary import summarise  # noqa: PLC0415 (the aggregation and figures)

    for path in summarise():
        print(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("baselines")
    p.add_argument("--datasets", nargs="+", default=["basic_motions", "japanese_vowels", "embedded_reber"], choices=list(DATASETS))
    p.add_argument("--models", nargs="+", default=list(MODELS[:6]), choices=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=baselines)
    p = sub.add_parser("segments")
    p.add_argument("--datasets", nargs="+", default=["basic_motions", "japanese_vowels", "embedded_reber"], choices=list(DATASETS))
    p.add_argument("--num-segments", nargs="+", type=int, default=[1, 2, 3, 4, 6])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=segments)
    p = sub.add_parser("pruning")
    p.add_argument("--dataset", default="reber", choices=list(DATASETS))
    p.add_argument("--cells", nargs="+", default=["tanh", "relu", "gru", "lstm"], choices=MODELS[:4])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--sparsities", nargs="+", type=float, default=list(SPARSITIES))
    p.add_argument("--recovery-epochs", type=int, default=3)
    p.add_argument("--recovery-lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=pruning)
    p = sub.add_parser("graphs")
    p.add_argument("--dataset", default="embedded_reber", choices=list(DATASETS))
    p.add_argument("--cell", default="tanh", choices=MODELS[:4])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=graphs)
    p = sub.add_parser("summary")
    p.set_defaults(func=summary)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
