"""analysis.geometry against peers: linear CKA (unbiased HSIC) against cka-pytorch's `hsic1`, RSA
(correlation RDMs compared by Spearman) against rsatoolbox, on the same random representations;
agreement (max |difference|) and time, alternating ours and the peer's --repeats times (median).

    OMP_NUM_THREADS=1 python benchmarks/bench_geometry.py --out benchmarks/results/geometry.json

Peers (the `bench` extra): rsatoolbox (pip install --no-deps rsatoolbox h5py scikit-image
lazy_loader) and cka-pytorch (pip install --no-deps cka-pytorch; its hsic.py is loaded on its own,
the package's __init__ needs lightning).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from analysis.geometry import metrics


def load_cka_pytorch_hsic():
    spec = importlib.util.find_spec("cka_pytorch")
    if spec is None:
        raise SystemExit("cka-pytorch is not installed: pip install --no-deps cka-pytorch")
    path = Path(spec.submodule_search_locations[0]) / "hsic.py"
    module_spec = importlib.util.spec_from_file_location("cka_pytorch_hsic", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.hsic1


def peer_cka(hsic1, x: np.ndarray, y: np.ndarray) -> float:
    x, y = torch.from_numpy(x - x.mean(0)), torch.from_numpy(y - y.mean(0))
    K, L = (x @ x.T)[None], (y @ y.T)[None]
    return float(hsic1(K, L) / torch.sqrt(hsic1(K, K) * hsic1(L, L)))


def peer_rsa(x: np.ndarray, y: np.ndarray) -> float:
    import rsatoolbox

    rdms = [rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(a), method="correlation") for a in (x, y)]
    return float(rsatoolbox.rdm.compare(rdms[0], rdms[1], method="spearman")[0, 0])


def timed(fn, *args) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500], help="examples n")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=3, help="random representation pairs per size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/geometry.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    hsic1 = load_cka_pytorch_hsic()
    rng = np.random.default_rng(0)
    warm = rng.standard_normal((20, 4))
    peer_rsa(warm, warm), peer_cka(hsic1, warm, warm), metrics.rsa(warm, warm)  # imports and first calls untimed
    rows = []
    for n in args.sizes:
        for pair in range(args.pairs):
            x = rng.standard_normal((n, args.units))
            y = np.tanh(x @ rng.standard_normal((args.units, args.units)) * (pair + 1) / args.pairs) + 0.5 * rng.standard_normal((n, args.units))
            times = {"ours_cka": [], "peer_cka": [], "ours_rsa": [], "peer_rsa": []}
            for _ in range(args.repeats):  # alternate ours and the peer's
                ours_cka, t = timed(metrics.linear_cka, x, y)
                times["ours_cka"].append(t)
                theirs_cka, t = timed(peer_cka, hsic1, x, y)
                times["peer_cka"].append(t)
                ours_rsa, t = timed(metrics.rsa, x, y)
                times["ours_rsa"].append(t)
                theirs_rsa, t = timed(peer_rsa, x, y)
                times["peer_rsa"].append(t)
            rows.append({"n": n, "units": args.units, "pair": pair, "cka": ours_cka, "cka_peer": theirs_cka,
                         "cka_abs_diff": abs(ours_cka - theirs_cka), "rsa": ours_rsa, "rsa_peer": theirs_rsa,
                         "rsa_abs_diff": abs(ours_rsa - theirs_rsa),
                         **{f"{k}_s": statistics.median(v) for k, v in times.items()}})
    result = {
        "rows": rows,
        "max_cka_abs_diff": max(r["cka_abs_diff"] for r in rows),
        "max_rsa_abs_diff": max(r["rsa_abs_diff"] for r in rows),
        "by_size": {str(n): {"cka_speed_ratio": statistics.median(r["peer_cka_s"] / r["ours_cka_s"] for r in rows if r["n"] == n),
                             "rsa_speed_ratio": statistics.median(r["peer_rsa_s"] / r["ours_rsa_s"] for r in rows if r["n"] == n)}
                    for n in args.sizes},
        "peers": {name: importlib.metadata.version(name) for name in ("rsatoolbox", "cka-pytorch")},
        "machine": platform.machine(), "python": platform.python_version(), "torch": torch.__version__,
        "settings": vars(args),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
