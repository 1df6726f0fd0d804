"""Li₂ grokking (Tian 2025) at CPU scale: the three stages, Muon against Adam, the M log M law.

Each cell trains the zoo's `li2_mlp` (one-hot a ‖ one-hot b → Linear(2M → K, no bias) → x² →
Linear(K → M, no bias)) full-batch with cross-entropy on a random split of all M² pairs, and
writes one JSON under experiments/results/li2_grokking/ (cells already there are skipped):
curves every `--eval-every` steps — train/test loss and accuracy, and the share of hidden units
whose first-layer weights hold ≥ 90 % of their (non-constant) Fourier power in one frequency of
Z_M — and the first step with test accuracy ≥ 95 %.

    python experiments/li2_grokking/run.py stages                  # one long run per optimiser
    python experiments/li2_grokking/run.py optimizers --seeds 0 1 2 3 4
    python experiments/li2_grokking/run.py scaling --moduli 11 13 17 19 23
    python experiments/li2_grokking/run.py scaling --moduli 31 43 59 71 97 --search bracket --refine 1
    python experiments/li2_grokking/run.py optimizers --hidden 24 --arms muon --muon-lr 0.003 0.01 --muon-adjust match_rms_adamw
    python experiments/li2_grokking/run.py summary                 # summary.json + figures

Optimisers: "adam" (Adam lr 1e-3, weight decay 1e-4 on both layers, the reference's setting) and
"muon" (torch.optim.Muon on the first layer, Adam as above on the second; the same lr and weight
decay unless --muon-lr says otherwise; --muon-lr takes several values, one arm each, and
--muon-adjust picks torch.optim.Muon's adjust_lr_fn: "original" (its default, lr·√max(1, A/B))
or "match_rms_adamw" (lr·0.2·√max(A, B), an update of AdamW's typical RMS)).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "li2_grokking"
FIGURES = ROOT / "docs" / "figures" / "li2_grokking"
# Tian's reference code (luckmatters cogo/config/dyn_madd.yaml) sets the critical training-set
# size n = 2.7482 · M ln M (its "critical_ratio_multiplier").
PAPER_CRITICAL_MULTIPLIER = 2.7482


def folded_power(weights: torch.Tensor) -> torch.Tensor:
    """(K, ⌊M/2⌋) Fourier power of each hidden unit at frequencies f = 1, …, ⌊M/2⌋ of Z_M.

    `weights` is (K, num_operands, M): unit k's first-layer weights on each operand's one-hot.
    Power at f is |ŵ_f|² + |ŵ_{M−f}|² summed over the operands (a real signal's ± frequencies are
    one frequency); f = 0, the constant, is left out (it is the same for every element and
    carries no information about it).
    """
    spectrum = torch.fft.fft(weights.detach().double(), dim=-1).abs().pow(2).sum(dim=1)  # (K, M)
    m = weights.shape[-1]
    return torch.stack([spectrum[:, f] + (spectrum[:, m - f] if m - f != f else 0) for f in range(1, m // 2 + 1)], dim=1)


def fourier_concentration(weights: torch.Tensor) -> torch.Tensor:
    """Per hidden unit, the largest share of its (non-constant) Fourier power in one frequency, in (0, 1]."""
    power = folded_power(weights)
    return power.max(dim=1).values / power.sum(dim=1).clamp_min(1e-300)


def dominant_frequency(weights: torch.Tensor) -> torch.Tensor:
    """Per hidden unit, the frequency f ∈ {1, …, ⌊M/2⌋} holding the most power."""
    return folded_power(weights).argmax(dim=1) + 1


def discrete_log_order(modulus: int) -> list[int] | None:
    """For a prime M, the residues g⁰, g¹, …, g^(M−2) mod M of its smallest primitive root g: reading
    a unit's weights on 1…M−1 in this order turns multiplication (Z_M^× ≅ Z_(M−1)) into addition,
    so the Fourier measure of Z_(M−1) applies. None when M is not prime."""
    if modulus < 3 or any(modulus % d == 0 for d in range(2, int(modulus**0.5) + 1)):
        return None
    for g in range(2, modulus):
        powers = [pow(g, k, modulus) for k in range(modulus - 1)]
        if len(set(powers)) == modulus - 1:
            return powers
    return None


def feature_weights(model, task: str, order: int):
    """(K, operands, n) first-layer weights in the indexing where the group is cyclic: Z_M itself
    for add, the discrete-log order of 1…M−1 for mul (M prime; the absorbing 0 left out); None
    for other tasks."""
    weights = model.li2.operand_weights()
    if task == "add":
        return weights
    if task == "mul":
        logs = discrete_log_order(order)
        return weights[:, :, logs] if logs else None
    return None


def cell_name(task: str, modulus: int, fraction: float, optimizer: str, lr: float, hidden: int, seed: int,
              muon_adjust: str = "original") -> str:
    tag = "-rms" if optimizer == "muon" and muon_adjust == "match_rms_adamw" else ""
    return f"{task}_M{modulus}_f{fraction:.4f}_{optimizer}{tag}_lr{lr:g}_K{hidden}_s{seed}"


def make_optimizer(model, optimizer: str, lr: float, muon_lr: float, weight_decay: float, muon_adjust: str = "original"):
    from zoo.training.muon import CombinedOptimizer, split_muon_parameters

    if optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    muon, rest, _ = split_muon_parameters(list(model.named_parameters()), None)  # the first layer
    adjust = None if muon_adjust == "original" else muon_adjust
    return CombinedOptimizer([torch.optim.Muon(muon, lr=muon_lr, weight_decay=weight_decay, adjust_lr_fn=adjust),
                              torch.optim.Adam(rest, lr=lr, weight_decay=weight_decay)])


def load_split(task: str, modulus: int, fraction: float, seed: int):
    from zoo import data

    if task in ("add", "mul"):
        splits = data.load("modular_arithmetic", modulus=modulus, operation=task, train_fraction=fraction, seed=seed)
        order = modulus
    else:  # a named group, e.g. S4, D7
        splits = data.load("group_arithmetic", group=task, train_fraction=fraction, seed=seed)
        order = int(splits["train"].features["labels"].num_classes)
    tables = {name: splits[name][:] for name in ("train", "test")}
    return order, {name: (t["input_features"], t["labels"]) for name, t in tables.items()}


def run_cell(task, modulus, fraction, optimizer, lr, muon_lr, weight_decay, hidden, seed, max_steps, eval_every,
             stop_at_95, out: Path, muon_adjust: str = "original") -> dict:
    import zoo

    order, splits = load_split(task, modulus, fraction, seed)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    torch.manual_seed(seed)
    model = zoo.create_model("li2_mlp", group_order=order, hidden_dim=hidden)
    opt = make_optimizer(model, optimizer, lr, muon_lr, weight_decay, muon_adjust)
    curves, step_95, train_100 = [], None, None
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def measure(step):
        with torch.no_grad():
            train_logits, test_logits = model(input_features=x_train).logits, model(input_features=x_test).logits
        row = {"step": step,
               "train_loss": torch.nn.functional.cross_entropy(train_logits, y_train).item(),
               "train_accuracy": (train_logits.argmax(-1) == y_train).double().mean().item(),
               "test_loss": torch.nn.functional.cross_entropy(test_logits, y_test).item(),
               "test_accuracy": (test_logits.argmax(-1) == y_test).double().mean().item(),
               "first_layer_norm": model.li2.first_layer.weight.norm().item(),
               "second_layer_norm": model.output_layer.weight.norm().item()}
        cyclic = feature_weights(model, task, order)
        if cyclic is not None:  # Fourier features of Z_M (add) or Z_(M−1) after the discrete log (mul)
            conc = fourier_concentration(cyclic)
            row["fourier_share_90"] = (conc >= 0.9).double().mean().item()
            row["fourier_concentration_mean"] = conc.mean().item()
        return row

    for step in range(max_steps + 1):
        if step % eval_every == 0 or step == max_steps:
            row = measure(step)
            curves.append(row)
            if train_100 is None and row["train_accuracy"] == 1.0:
                train_100 = step
            if step_95 is None and row["test_accuracy"] >= 0.95:
                step_95 = step
                if stop_at_95:
                    break
        if step == max_steps:
            break
        loss = model(input_features=x_train, labels=y_train).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    result = {
        "task": task, "modulus": modulus, "group_order": order, "train_fraction": fraction,
        "n_train": len(y_train), "n_test": len(y_test), "optimizer": optimizer, "lr": lr,
        "muon_lr": muon_lr if optimizer == "muon" else None,
        "muon_adjust_lr_fn": muon_adjust if optimizer == "muon" else None, "weight_decay": weight_decay, "hidden_dim": hidden,
        "seed": seed, "max_steps": max_steps, "eval_every": eval_every, "stop_at_95": stop_at_95,
        "steps_to_95": step_95, "train_100_step": train_100, "grokked": step_95 is not None,
        "final": curves[-1], "curves": curves,
        "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
        "torch": torch.__version__,
    }
    cyclic = feature_weights(model, task, order)
    if cyclic is not None:
        result["final_dominant_frequencies"] = np.bincount(
            dominant_frequency(cyclic).numpy(), minlength=cyclic.shape[-1] // 2 + 1).tolist()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)
    return result


def cell(args, task, modulus, fraction, optimizer, seed, max_steps, stop_at_95, subdir, muon_lr=None):
    lr = args.lr
    muon_lr = args.muon_lr[0] if muon_lr is None else muon_lr
    name = cell_name(task, modulus, fraction, optimizer, muon_lr if optimizer == "muon" else lr, args.hidden, seed,
                     args.muon_adjust)
    out = RESULTS / subdir / f"{name}.json"
    if out.exists():
        return json.loads(out.read_text())
    result = run_cell(task, modulus, fraction, optimizer, lr, muon_lr, args.weight_decay, args.hidden, seed,
                      max_steps, args.eval_every, stop_at_95, out, args.muon_adjust)
    print(f"{subdir}/{name}: steps_to_95={result['steps_to_95']} final test acc "
          f"{result['final']['test_accuracy']:.3f} ({result['cpu_s']:.1f} CPU-s)", flush=True)
    return result


def fraction_for(modulus: int, multiplier: float) -> float:
    """Training fraction of the M² pairs holding n = multiplier · M ln M examples."""
    return round(multiplier * modulus * math.log(modulus) / modulus**2, 4)


def bracket_search(args, modulus: int, seed: int) -> None:
    """Walk the grid of multipliers from the one nearest --start: down while runs grok, up while
    they do not, until a failing c and a grokking c are neighbours (or the grid ends)."""
    grid = sorted(c for c in args.multipliers if 0 < fraction_for(modulus, c) < 1)
    i = min(range(len(grid)), key=lambda j: abs(grid[j] - args.start))
    seen: dict[int, bool] = {}
    while 0 <= i < len(grid):
        seen[i] = cell(args, "add", modulus, fraction_for(modulus, grid[i]), "adam", seed, args.max_steps, True,
                       "scaling")["grokked"]
        step = -1 if seen[i] else 1
        if seen.get(i + step) is not None and seen[i + step] != seen[i]:
            return
        i += step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["stages", "optimizers", "scaling", "groups", "summary"])
    parser.add_argument("--moduli", type=int, nargs="+", default=None)
    parser.add_argument("--fraction", type=float, default=0.6, help="training fraction (stages, optimizers)")
    parser.add_argument("--multipliers", type=float, nargs="+", default=[1.5, 2.0, 2.75, 3.5, 4.5, 6.0],
                        help="scaling: training sizes n = c · M ln M tried, smallest first")
    parser.add_argument("--search", choices=["up", "bracket"], default="up",
                        help="scaling: 'up' tries the multipliers smallest first until one groks; 'bracket' starts at "
                             "--start and walks down while runs grok, up while they fail")
    parser.add_argument("--start", type=float, default=4.0, help="scaling --search bracket: the multiplier tried first")
    parser.add_argument("--refine", type=int, default=0,
                        help="scaling: after the grid, this many bisections of each modulus's bracket (largest n that "
                             "failed, smallest that grokked)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--muon-lr", type=float, nargs="+", default=[1e-3], help="one arm per value")
    parser.add_argument("--muon-adjust", choices=["original", "match_rms_adamw"], default="original",
                        help="torch.optim.Muon's adjust_lr_fn")
    parser.add_argument("--arms", nargs="+", choices=["adam", "muon"], default=["adam", "muon"],
                        help="stages, optimizers: the optimisers run")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--groups", nargs="+", default=["mul", "S4"], help="groups: tasks beside add (mul mod M, S<n>, D<n>)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.what == "stages":
        for modulus in args.moduli or [23]:
            for optimizer in args.arms:
                for seed in args.seeds:
                    cell(args, "add", modulus, args.fraction, optimizer, seed, args.max_steps, False, "stages")
    elif args.what == "optimizers":
        for modulus in args.moduli or [23]:
            for seed in args.seeds:
                for optimizer in args.arms:
                    for muon_lr in (args.muon_lr if optimizer == "muon" else [None]):
                        cell(args, "add", modulus, args.fraction, optimizer, seed, args.max_steps, True, "optimizers",
                             muon_lr)
    elif args.what == "scaling":
        for modulus in args.moduli or [11, 13, 17, 19, 23]:
            for seed in args.seeds:
                if args.search == "bracket":
                    bracket_search(args, modulus, seed)
                else:
                    for multiplier in sorted(args.multipliers):  # smallest first; stop at the first that groks
                        fraction = fraction_for(modulus, multiplier)
                        if not 0 < fraction < 1:
                            continue
                        if cell(args, "add", modulus, fraction, "adam", seed, args.max_steps, True, "scaling")["grokked"]:
                            break
                for _ in range(args.refine):
                    pattern = f"add_M{modulus}_f*_adam_lr{args.lr:g}_K{args.hidden}_s{seed}.json"
                    runs = [json.loads(p.read_text()) for p in (RESULTS / "scaling").glob(pattern)]
                    done = [r["n_train"] for r in runs if r["grokked"]]
                    failed = [r["n_train"] for r in runs if not r["grokked"] and (not done or r["n_train"] < min(done))]
                    if not done or not failed or min(done) - max(failed) <= 1:
                        break
                    middle = (min(done) + max(failed)) / 2 / modulus**2  # a fraction between the two
                    cell(args, "add", modulus, round(middle, 4), "adam", seed, args.max_steps, True, "scaling")
    elif args.what == "groups":
        for task in args.groups:
            for seed in args.seeds:
                cell(args, task, (args.moduli or [23])[0], args.fraction, "adam", seed, args.max_steps, True, "groups")
    else:
        from summary import summarise  # experiments/li2_grokking/summary.py

        print(json.dumps(summarise(RESULTS, FIGURES), indent=1)[:3000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
