#!/usr/bin/env python
"""Per-process memory of one process, DDP and FSDP2 on 2 CPU processes (accelerate launch with
the configs in zoo/training/launch/), for a model large enough that sharding shows.

    python benchmarks/bench_scaleout.py [--hidden 4096 --layers 3] [--out benchmarks/results/scaleout.json]

The model is the zoo's `mlp` on the digits data (64 → hidden × layers → 10, AdamW): with the
defaults, 33.9M parameters, 135 MB of float32 weights and 271 MB of Adam state; the data set is
small so that the model, not the data, decides the peak memory. Each launch trains
one epoch of digits (22 steps of a global batch of 64, split between the processes) and reports, per process, what
metrics.json's `memory_per_process` records: the bytes of weights and optimizer state the
process holds (its shard under FSDP2) and its peak resident memory (ru_maxrss, which includes
the ~0.5 GB of the Python + torch + transformers import that every process pays). The weight
and state bytes are exact; peak RSS is what a user sees. The launches run one after another,
each 1 thread per process; the step times are on a shared machine and only indicative.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "zoo" / "training" / "launch"
CONFIGS = {"one process": "cpu-1.yaml", "DDP, 2 processes": "cpu-ddp.yaml", "FSDP2, 2 processes": "cpu-fsdp2.yaml"}


def recipe(hidden: int, layers: int) -> dict:
    batch = 64
    return {
        "id": "bench-scaleout-mlp",
        "architecture": "mlp",
        "config": {"image_size": 8, "hidden_sizes": [hidden] * layers, "num_labels": 10},
        "data": {"name": "digits"},
        "training": {"epochs": 1, "batch_size": batch, "lr": 1e-3, "seed": 0, "checkpoint_every": "never"},
    }


def launch(config: str, recipe_path: Path, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(LAUNCH / config),
               str(ROOT / "train.py"), str(recipe_path), f"output_dir={out}"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{config} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "config": f"zoo/training/launch/{config}",
        "num_processes": metrics["num_processes"],
        "sharding": metrics["sharding"],
        "steps": metrics["step"],
        "train_time_s": metrics["train_time_s"],
        "finished": metrics["finished"],
        "memory_per_process": metrics["memory_per_process"],
        "held_mb_per_process": [round((m["parameter_bytes"] + m["optimizer_state_bytes"]) / 2**20, 2)
                                for m in metrics["memory_per_process"]],
        "peak_rss_mb_max": max(m["peak_rss_mb"] for m in metrics["memory_per_process"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=4096, help="width of each hidden layer (default: %(default)s)")
    parser.add_argument("--layers", type=int, default=3, help="number of hidden layers (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scaleout.json")
    args = parser.parse_args(argv)
    spec = recipe(args.hidden, args.layers)
    hidden = [64] + spec["config"]["hidden_sizes"] + [10]
    parameters = sum(a * b + b for a, b in zip(hidden, hidden[1:]))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        recipe_path = Path(tmp) / "recipe.yaml"
        recipe_path.write_text(yaml.safe_dump(spec))
        for label, config in CONFIGS.items():
            print(f"{label} ({config}) ...", flush=True)
            runs[label] = launch(config, recipe_path, Path(tmp) / config.removesuffix(".yaml"))
            print(f"  held per process: {runs[label]['held_mb_per_process']} MB, "
                  f"peak RSS {runs[label]['peak_rss_mb_max']} MB", flush=True)
    ddp, fsdp = runs["DDP, 2 processes"], runs["FSDP2, 2 processes"]
    result = {
        "model": {"architecture": "mlp", "widths": hidden, "parameters": parameters, "optimizer": "adamw"},
        "steps": runs["one process"]["steps"],
        "command": "python benchmarks/bench_scaleout.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": runs,
        "fsdp2_over_ddp_held": round(max(fsdp["held_mb_per_process"]) / max(ddp["held_mb_per_process"]), 4),
        "fsdp2_over_ddp_peak_rss": round(fsdp["peak_rss_mb_max"] / ddp["peak_rss_mb_max"], 4),
        "fsdp2_peak_rss_saving_mb": round(ddp["peak_rss_mb_max"] - fsdp["peak_rss_mb_max"], 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.startswith("fsdp2")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
