"""ROCKET (Dempster et al. 2020, sktime's implementation) as the non-recurrent peer of the
recurrent baselines (docs/FINDINGS.md E1/E3): the same splits as experiments/rnn/common.py,
random convolution kernels → StandardScaler → RidgeClassifierCV (alphas 10^-3..10^3, the
ROCKET paper's classifier), one run per seed (the kernels' random_state).

sktime is a peer (bench extra, with numba and scikit-base); it runs only here, never in zoo.
Sequences of unequal length (JapaneseVowels, Reber) are fed zero-padded to the longest, as
the zoo data sets store them (sktime's Rocket needs equal lengths).

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_rnn_rocket.py --seeds 0 1 2 3 4

Writes benchmarks/results/rnn_rocket.json (per data set: accuracy per seed, mean ± std, the
CPU seconds of transform + fit); a data set already there with the same settings is kept, so
a run can be extended (--datasets, --seeds).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

from zoo import data

# the splits of experiments/rnn/common.py's DATASETS (same names, same arguments)
SPLITS = {
    "basic_motions": ("basic_motions", {}),
    "japanese_vowels": ("japanese_vowels", {}),
    "embedded_reber": ("reber", dict(embedded=True, n_train=1000, n_test=500, max_length=40)),
    "fashion_mnist_rows": ("fashion_mnist_rows", dict(limit_train=10000, limit_test=2000)),
}


def arrays(key: str):
    name, kwargs = SPLITS[key]
    dd = data.load(name, **kwargs)
    out = []
    for split in ("train", "test"):
        table = dd[split].with_format("numpy", columns=["input_features", "labels"])[:]
        out.append((np.ascontiguousarray(table["input_features"].transpose(0, 2, 1), dtype=np.float64), table["labels"]))
    return out


def run_rocket(train, test, num_kernels: int, seed: int) -> dict:
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sktime.transformations.panel.rocket import Rocket

    start = time.process_time()
    rocket = Rocket(num_kernels=num_kernels, random_state=seed)
    features = rocket.fit_transform(train[0])
    classifier = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
    classifier.fit(np.asarray(features), train[1])
    accuracy = float((classifier.predict(np.asarray(rocket.transform(test[0]))) == test[1]).mean())
    return {"seed": seed, "test_accuracy": accuracy, "cpu_s": time.process_time() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--num-kernels", type=int, default=10000)
    parser.add_argument("--out", default="benchmarks/results/rnn_rocket.json")
    args = parser.parse_args(argv)
    try:
        import sktime  # noqa: F401
    except ImportError as error:
        raise SystemExit(f"ROCKET needs sktime with numba and scikit-base (the bench extra): {error}")
    result = json.load(open(args.out)) if os.path.exists(args.out) else {"datasets": {}}
    from tqdm.auto import tqdm

    for key in tqdm(args.datasets, desc="rocket"):
        previous = result["datasets"].get(key, {})
        runs = {r["seed"]: r for r in previous.get("runs", []) if previous.get("num_kernels") == args.num_kernels}
        train, test = arrays(key)
        for seed in args.seeds:
            if seed not in runs:
                runs[seed] = run_rocket(train, test, args.num_kernels, seed)
        accuracies = [r["test_accuracy"] for r in sorted(runs.values(), key=lambda r: r["seed"])]
        result["datasets"][key] = {
            "num_kernels": args.num_kernels, "n_train": len(train[1]), "n_test": len(test[1]),
            "channels": train[0].shape[1], "steps": train[0].shape[2], "split": SPLITS[key][1],
            "runs": sorted(runs.values(), key=lambda r: r["seed"]),
            "accuracy": {"mean": statistics.mean(accuracies), "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                         "n": len(accuracies)},
        }
    import sktime

    result["machine"] = {"platform": platform.platform(), "sktime": sktime.__version__, "threads": 1, "cpus": os.cpu_count()}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(json.dumps({k: v["accuracy"] for k, v in result["datasets"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
