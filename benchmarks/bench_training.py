#!/usr/bin/env python
"""Training-loop overhead: zoo.training (accelerate) against a plain PyTorch loop, and 1 vs 2 processes.

    python benchmarks/bench_training.py [--recipe mlp-fashion-mnist] [--epochs 1] [--repeats 3]

Both loops train the same model on the same in-memory data with the same optimizer and
schedule; each run is a fresh process, and the runs are interleaved so that load on the
machine affects both alike. Reported: the median training time (steps only, no evaluation
or checkpointing) and the ratio zoo / plain. Then the same recipe on 1 process with 2 threads
against 2 processes (torchrun) with 1 thread each: the throughput of each.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def plain_loop(recipe_name: str, epochs: int) -> tuple[float, float]:
    """The textbook loop: tensors in memory, randperm batches, forward, backward, step."""
    import torch
    from transformers import get_scheduler

    from zoo import create_model, data
    from zoo.recipes import load_recipe

    recipe = load_recipe(recipe_name)
    t = recipe.training
    torch.manual_seed(t["seed"])
    model = create_model(recipe.architecture, **recipe.config).train()
    train = data.load(recipe.data_name, split="train", **recipe.data_params)
    x, y = train[model.main_input_name][:], train["labels"][:]
    steps_per_epoch = len(y) // t["batch_size"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    scheduler = get_scheduler(t["scheduler"], optimizer, num_warmup_steps=t["warmup_steps"],
                              num_training_steps=steps_per_epoch * epochs)
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for step in range(steps_per_epoch):
            index = order[step * t["batch_size"] : (step + 1) * t["batch_size"]]
            loss = model(**{model.main_input_name: x[index]}, labels=y[index]).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started, time.process_time() - started_cpu


def zoo_loop(recipe_name: str, epochs: int, processes: int, threads: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as out:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)] if processes > 1 else [sys.executable]
        cmd = [*launcher, str(ROOT / "train.py"), recipe_name, f"training.epochs={epochs}", f"output_dir={out}",
               "training.checkpoint_every=0", "training.keep_checkpoints=1"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
        metrics = json.loads((Path(out) / "metrics.json").read_text())
        return metrics["train_time_s"], metrics["train_cpu_time_s"], sum(p["examples"] for p in metrics["examples_per_process"])


def run_plain_subprocess(recipe_name: str, epochs: int, threads: int) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--plain", "--recipe", recipe_name, "--epochs", str(epochs)],
                         check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="mlp-fashion-mnist")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of a single process")
    parser.add_argument("--skip-processes", action="store_true", help="only the overhead comparison")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training.json"))
    args = parser.parse_args()
    if args.plain:
        print(*plain_loop(args.recipe, args.epochs))
        return

    plain, zoo, plain_cpu, zoo_cpu, one, two = [], [], [], [], [], []
    for repeat in range(args.repeats):
        wall, cpu = run_plain_subprocess(args.recipe, args.epochs, args.threads)
        plain.append(wall)
        plain_cpu.append(cpu)
        wall, cpu, examples = zoo_loop(args.recipe, args.epochs, 1, args.threads)
        zoo.append(wall)
        zoo_cpu.append(cpu)
        one.append(examples / wall)
        if not args.skip_processes:
            two_wall, _, two_examples = zoo_loop(args.recipe, args.epochs, 2, max(1, args.threads // 2))
            two.append(two_examples / two_wall)
        print(f"repeat {repeat + 1}: plain {plain[-1]:.2f} s ({plain_cpu[-1]:.2f} s CPU), zoo {zoo[-1]:.2f} s "
              f"({zoo_cpu[-1]:.2f} s CPU), 1 process {one[-1]:.0f} ex/s"
              + (f", 2 processes {two[-1]:.0f} ex/s" if two else ""), flush=True)
    median = statistics.median
    result = {
        "recipe": args.recipe, "epochs": args.epochs, "repeats": args.repeats, "threads": args.threads,
        "plain_s": plain, "zoo_s": zoo, "plain_cpu_s": plain_cpu, "zoo_cpu_s": zoo_cpu,
        "overhead_ratio_wall": median(zoo) / median(plain),
        # CPU time is what the loop itself costs; unlike wall time it barely moves when other
        # processes load the machine (with one thread per process).
        "overhead_ratio_cpu": median(zoo_cpu) / median(plain_cpu),
        "examples_per_s_1_process": median(one),
        "examples_per_s_2_processes": median(two) if two else None,
        "speedup_2_over_1": median(two) / median(one) if two else None,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
