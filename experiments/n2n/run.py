#!/usr/bin/env python
"""C3 finding: N2N compression (Ashok et al. 2017) of the mlp-n2n-fashion-mnist teacher, RL
search against random search with the same number of evaluated students.

    OMP_NUM_THREADS=1 python experiments/n2n/run.py                   # the sized-down run (FINDINGS C3)
    OMP_NUM_THREADS=1 python experiments/n2n/run.py --limit-train 0 --limit-test 0 --teacher-epochs 5 \\
        --episodes 30 --student-steps 300                              # the recipe as written
    python experiments/n2n/run.py --summary                            # summary.json + the figure

Each cell (one seed) trains hub_configs/mlp-n2n-fashion-mnist.yaml through the zoo's `n2n`
trainer with the overrides below, exports the best student as a Hub repo (its card plots the
search curve) and keeps metrics.json's "n2n" block in experiments/results/n2n/<tag>/seed<s>.json.
Finished cells are skipped. --summary writes summary.json there and
docs/figures/n2n/<tag>-reward.png: the RL reward per episode and its running best (top), and
the best reward so far of both searches per evaluated student (bottom).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "n2n"
FIGURES = ROOT / "docs" / "figures" / "n2n"
RECIPE = ROOT / "hub_configs" / "mlp-n2n-fashion-mnist.yaml"


def tag(args) -> str:
    return (f"n{args.limit_train or 'all'}-t{args.teacher_epochs}-ep{args.episodes}-s{args.student_steps}")


def add_size_arguments(parser) -> None:
    """The options that size a search down (shared with experiments/n2n/transfer.py)."""
    parser.add_argument("--limit-train", type=int, default=10000, help="0: all 60k")
    parser.add_argument("--limit-test", type=int, default=2000, help="0: all 10k")
    parser.add_argument("--teacher-epochs", type=int, default=4)
    parser.add_argument("--student-steps", type=int, default=150)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--summary", action="store_true")


def size_overrides(args, seed: int, episodes: int, extra: tuple[str, ...] = ()) -> list[str]:
    """The recipe overrides of one seeded search at the sizes of :func:`add_size_arguments`, with
    ``extra`` overrides before the data limits (the order the recorded cells keep)."""
    out = [f"training.epochs={args.teacher_epochs}", f"training.seed={seed}",
           f"training.trainer_options.episodes={episodes}",
           f"training.trainer_options.student_steps={args.student_steps}", f"training.trainer_options.seed={seed}",
           *extra]
    if args.limit_train:
        out.append(f"data.limit_train={args.limit_train}")
    if args.limit_test:
        out.append(f"data.limit_test={args.limit_test}")
    return out


def overrides(args, seed: int) -> list[str]:
    return size_overrides(args, seed, args.episodes)


def run_cells(args) -> None:
    from tqdm.auto import tqdm

    from zoo.hub import export_repo
    from zoo.recipes import load_recipe
    from zoo.training import train

    out_dir = RESULTS / tag(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed in tqdm(args.seed_list, desc="C3 seeds"):
        cell = out_dir / f"seed{seed}.json"
        if cell.exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            result = train(RECIPE, overrides(args, seed), output_dir=Path(tmp) / "out")
            recipe = load_recipe(RECIPE)  # the card names the overrides of the recipe file
            repo = export_repo(recipe, repo_dir=Path(tmp) / "repo", output_dir=Path(tmp) / "out")
            card = (repo / "README.md").read_text()
            has_curve = "![training curves](training_curves.png)" in card and (repo / "training_curves.png").exists()
        m = result.metrics
        cell.write_text(json.dumps({"seed": seed, "overrides": overrides(args, seed), "n2n": m["n2n"],
                                    "final": m["final"], "teacher_history": m["history"],
                                    "teacher_train_time_s": m["train_time_s"],
                                    "card_plots_search_curve": has_curve}, indent=2))


def running_max(values: list[float]) -> list[float]:
    out, best = [], float("-inf")
    for v in values:
        best = max(best, v)
        out.append(best)
    return out


def first_rewards(n2n: dict) -> list[float]:
    """The RL search's rewards per newly evaluated student (cache hits left out), in order."""
    seen, out = set(), []
    for r in n2n["curve"]:
        if tuple(r["hidden_sizes"]) not in seen:
            seen.add(tuple(r["hidden_sizes"]))
            out.append(r["reward"])
    return out


def summarise(args) -> None:
    out_dir = RESULTS / tag(args)
    cells = [json.loads(p.read_text()) for p in sorted(out_dir.glob("seed*.json"))]
    if not cells:
        raise SystemExit(f"no cells in {out_dir}")
    rows = []
    for c in cells:
        n = c["n2n"]
        rows.append({"seed": c["seed"], "teacher_accuracy": n["teacher"]["accuracy"], "teacher_params": n["teacher"]["params"],
                     "best_hidden_sizes": n["best"]["hidden_sizes"], "best_accuracy": n["best"]["accuracy"],
                     "best_params": n["best"]["params"], "best_reward": n["best"]["reward"], "compression": n["compression"],
                     "accuracy_ratio": n["best"]["accuracy"] / n["teacher"]["accuracy"],
                     "random_best_reward": n["random_search"]["best"]["reward"],
                     "random_best_compression": n["teacher"]["params"] / n["random_search"]["best"]["params"],
                     "random_best_accuracy": n["random_search"]["best"]["accuracy"],
                     "evaluated_students": n["evaluated_students"],
                     "random_evaluated_students": n["random_search"]["evaluated_students"],
                     "episodes": n["episodes"], "search_wall_s": n["search_wall_s"],
                     "search_cpu_s": n.get("search_cpu_s"), "random_search_wall_s": n.get("random_search_wall_s"),
                     "rl_beats_random": n["rl_beats_random"],
                     "mean_reward_first_quarter": statistics.mean(r["reward"] for r in n["curve"][:max(1, n["episodes"] // 4)]),
                     "mean_reward_last_quarter": statistics.mean(r["reward"] for r in n["curve"][-max(1, n["episodes"] // 4):]),
                     "card_plots_search_curve": c["card_plots_search_curve"]})
    summary = {"tag": tag(args), "seeds": len(rows), "rows": rows,
               "rl_wins": sum(r["rl_beats_random"] for r in rows),
               "mean_best_reward": statistics.mean(r["best_reward"] for r in rows),
               "mean_random_best_reward": statistics.mean(r["random_best_reward"] for r in rows),
               "mean_compression": statistics.mean(r["compression"] for r in rows),
               "mean_accuracy_ratio": statistics.mean(r["accuracy_ratio"] for r in rows),
               "total_search_wall_s": sum(r["search_wall_s"] + (r["random_search_wall_s"] or 0) for r in rows)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.6 * len(cells), 6.4), dpi=100)
    for i, c in enumerate(cells):
        n = c["n2n"]
        rewards = [r["reward"] for r in n["curve"]]
        axes = figure.add_subplot(2, len(cells), i + 1)
        axes.plot(range(len(rewards)), rewards, ".", alpha=0.6, label="reward per episode")
        axes.plot(range(len(rewards)), running_max(rewards), label="best so far")
        axes.set_xlabel("RL episode")
        axes.set_ylabel("reward (acc_s/acc_t)·C(2−C)")
        axes.set_title(f"seed {c['seed']}: the RL search", fontsize=9)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
        axes = figure.add_subplot(2, len(cells), len(cells) + i + 1)
        axes.plot(range(1, len(first_rewards(n)) + 1), running_max(first_rewards(n)), marker=".", label="RL")
        random = n["random_search"]["rewards"]
        axes.plot(range(1, len(random) + 1), running_max(random), "--", marker=".", label="random search")
        axes.set_xlabel("evaluated (distinct) students")
        axes.set_ylabel("best reward so far")
        axes.set_title(f"seed {c['seed']}: RL vs random, same students", fontsize=9)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    figure.savefig(FIGURES / f"{tag(args)}-reward.png", format="png", metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser)
    parser.add_argument("--episodes", type=int, default=40)
    args = parser.parse_args()
    args.seed_list = [int(s) for s in args.seeds.split(",")]
    summarise(args) if args.summary else run_cells(args)


if __name__ == "__main__":
    main()
