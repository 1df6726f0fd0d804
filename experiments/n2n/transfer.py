#!/usr/bin/env python
"""C3, the second claim: N2N policies transfer from a small teacher to a larger one (Ashok et al. 2017).

    OMP_NUM_THREADS=1 python experiments/n2n/transfer.py --seeds 0,1,2     # the cells
    python experiments/n2n/transfer.py --seeds 0,1,2 --summary              # summary.json + the figure

Per seed, three searches of the `mlp-n2n-fashion-mnist` recipe through the zoo's `n2n` trainer
(sized down as experiments/n2n/run.py: --limit-train / --limit-test images, --teacher-epochs,
--student-steps; no random-search baseline):

- small:    a smaller teacher (--small widths, default three hidden layers 256-256-128), a
            fresh pair of policies, --episodes-small episodes; its policies are kept;
- fresh:    the recipe's five-layer teacher (512-512-256-256-128), fresh policies,
            --episodes-large episodes;
- transfer: the same teacher (same seed, so the same weights), the policies the small search
            ended with (`policies_from`), the same episodes.

The policies read relative widths and positions, so the small teacher's policies apply to the
larger one unchanged. The question: does the transferred pair start better (reward in its
first episodes) and find a good student in fewer episodes than a fresh pair? Each cell is
experiments/results/n2n/transfer/<tag>/seed<s>-<arm>.json (the small arm also keeps its
policies, policies-seed<s>.safetensors); finished cells are skipped.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import tempfile
from pathlib import Path

try:  # imported as a package module or run as a script from its folder
    from experiments.n2n.run import add_size_arguments, size_overrides
except ImportError:
    from run import add_size_arguments, size_overrides

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "n2n" / "transfer"
FIGURES = ROOT / "docs" / "figures" / "n2n"
RECIPE = ROOT / "hub_configs" / "mlp-n2n-fashion-mnist.yaml"
ARMS = ("small", "fresh", "transfer")
EARLY = 3  # "the first episodes": the mean reward of episodes 0..EARLY-1


def tag(args) -> str:
    small = "-".join(str(w) for w in args.small_widths)
    return (f"n{args.limit_train or 'all'}-t{args.teacher_epochs}-s{args.student_steps}"
            f"-small{small}-ep{args.episodes_small}-{args.episodes_large}")


def overrides(args, seed: int, arm: str, policies: Path | None) -> list[str]:
    episodes = args.episodes_small if arm == "small" else args.episodes_large
    extra = ["training.trainer_options.random_search=false"]
    if arm == "small":
        extra.append("config.hidden_sizes=[" + ",".join(str(w) for w in args.small_widths) + "]")
    if arm == "transfer":
        extra.append(f"training.trainer_options.policies_from={policies}")
    return size_overrides(args, seed, episodes, tuple(extra))


def run_cells(args) -> None:
    from tqdm.auto import tqdm

    from zoo.training import train
    from zoo.training.n2n import POLICIES_FILE

    out_dir = RESULTS / tag(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed, arm in tqdm(list(itertools.product(args.seed_list, ARMS)), desc="C3 transfer cells"):
        cell = out_dir / f"seed{seed}-{arm}.json"
        if cell.exists():
            continue
        policies = out_dir / f"policies-seed{seed}.safetensors"
        if arm == "transfer" and not policies.exists():
            raise SystemExit(f"{policies} is missing: the small arm of seed {seed} did not finish")
        with tempfile.TemporaryDirectory() as tmp:
            result = train(RECIPE, overrides(args, seed, arm, policies), output_dir=Path(tmp) / "out")
            if arm == "small":
                shutil.copyfile(Path(tmp) / "out" / POLICIES_FILE, policies)
        n2n = result.metrics["n2n"]
        cell.write_text(json.dumps({"seed": seed, "arm": arm, "overrides": overrides(args, seed, arm, policies),
                                    "n2n": n2n, "teacher_train_time_s": result.metrics["train_time_s"]}, indent=2))


def describe(cell: dict) -> dict:
    n = cell["n2n"]
    rewards = [c["reward"] for c in n["curve"]]
    best = list(itertools.accumulate(rewards, max))
    return {"seed": cell["seed"], "arm": cell["arm"], "teacher_hidden_sizes": n["teacher"]["hidden_sizes"],
            "teacher_accuracy": n["teacher"]["accuracy"], "episodes": n["episodes"],
            "early_mean_reward": statistics.mean(rewards[:EARLY]), "best_reward": best[-1],
            "best_so_far": best, "rewards": rewards,
            "first_keep_probs": n["curve"][0]["keep_probs"],
            "episodes_to_95pct_of_final_best": next(i + 1 for i, b in enumerate(best) if b >= 0.95 * best[-1]),
            "best_hidden_sizes": n["best"]["hidden_sizes"], "best_accuracy": n["best"]["accuracy"],
            "compression": n["compression"], "evaluated_students": n["evaluated_students"],
            "search_wall_s": n["search_wall_s"]}


def summarise(args) -> None:
    out_dir = RESULTS / tag(args)
    rows = [describe(json.loads(p.read_text())) for p in sorted(out_dir.glob("seed*-*.json"))]
    by = {(r["seed"], r["arm"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows if (r["seed"], "fresh") in by and (r["seed"], "transfer") in by})
    if not seeds:
        raise SystemExit(f"no seed in {out_dir} has both large-teacher arms")
    pairs = [{"seed": s,
              "early_gain": by[s, "transfer"]["early_mean_reward"] - by[s, "fresh"]["early_mean_reward"],
              "best_gain": by[s, "transfer"]["best_reward"] - by[s, "fresh"]["best_reward"],
              "episodes_to_95pct": [by[s, "fresh"]["episodes_to_95pct_of_final_best"],
                                    by[s, "transfer"]["episodes_to_95pct_of_final_best"]]} for s in seeds]
    mean_curve = {arm: [statistics.mean(by[s, arm]["best_so_far"][i] for s in seeds)
                        for i in range(min(len(by[s, arm]["best_so_far"]) for s in seeds))] for arm in ("fresh", "transfer")}
    summary = {"tag": tag(args), "seeds": seeds, "early_episodes": EARLY, "rows": rows, "pairs": pairs,
               "transfer_starts_better": sum(p["early_gain"] > 0 for p in pairs),
               "transfer_ends_better": sum(p["best_gain"] > 0 for p in pairs),
               "transfer_ties_at_the_end": sum(p["best_gain"] == 0 for p in pairs),
               "mean_early_gain": statistics.mean(p["early_gain"] for p in pairs),
               "mean_best_gain": statistics.mean(p["best_gain"] for p in pairs),
               "mean_best_so_far": mean_curve,
               "mean_by_arm": {arm: {field: statistics.mean(by[s, arm][field] for s in seeds)
                                     for field in ("early_mean_reward", "best_reward", "evaluated_students",
                                                   "compression", "best_accuracy", "teacher_accuracy")}
                               for arm in ARMS if all((s, arm) in by for s in seeds)},
               "total_search_wall_s": sum(r["search_wall_s"] for r in rows)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    columns = (len(seeds) + 2) // 2
    figure = Figure(figsize=(4.2 * columns, 6.6), dpi=100)
    colours = {"fresh": "C0", "transfer": "C3"}
    for i, s in enumerate(seeds):
        axes = figure.add_subplot(2, columns, i + 1)
        for arm, style in (("fresh", "--"), ("transfer", "-")):
            r = by[s, arm]
            axes.plot(range(1, r["episodes"] + 1), r["rewards"], ".", alpha=0.5, color=colours[arm])
            axes.plot(range(1, r["episodes"] + 1), r["best_so_far"], style, color=colours[arm],
                      label=f"{arm}: reward (dots), best so far")
        axes.set_xlabel("episode on the larger teacher")
        axes.set_ylabel("reward (acc_s/acc_t)·C(2−C)")
        axes.set_title(f"seed {s}", fontsize=9)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    axes = figure.add_subplot(2, columns, len(seeds) + 1)
    for arm, style in (("fresh", "--"), ("transfer", "-")):
        axes.plot(range(1, len(mean_curve[arm]) + 1), mean_curve[arm], style, marker=".", color=colours[arm], label=arm)
    axes.set_xlabel("episode on the larger teacher")
    axes.set_ylabel("best reward so far, mean over seeds")
    axes.set_title(f"{len(seeds)} seeds: fresh policies vs the small teacher's", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    figure.savefig(FIGURES / f"transfer-{tag(args)}.png", format="png", metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_arguments(parser)
    parser.add_argument("--small", default="256,256,128", help="the small teacher's hidden widths")
    parser.add_argument("--episodes-small", type=int, default=20)
    parser.add_argument("--episodes-large", type=int, default=12)
    args = parser.parse_args()
    args.seed_list = [int(s) for s in args.seeds.split(",")]
    args.small_widths = [int(w) for w in args.small.split(",")]
    summarise(args) if args.summary else run_cells(args)


if __name__ == "__main__":
    main()
