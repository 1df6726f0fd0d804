"""Golden JSON of the three analysis tools (depth, drop, convergent) on the tiny test models.

Issue 10 item 5 splits ``analysis/depth.py``, ``drop.py`` and ``convergent.py`` into packages and
puts their CLIs on one shared runner; the refactored tools must give *bit-identical* JSON to the
round-1 code. ``tests/golden/<tool>.json`` holds each case's JSON as the round-1 code wrote it
(generated from the commit recorded in its ``_meta``, before any refactoring); this test
recomputes every case and asserts exact equality of the parsed JSON (floats compared as the
exact doubles ``repr`` round-trips; NaN equals NaN, since the tools write it as ``NaN``).

Excluded fields, and only these: wall-clock durations, which differ on every run —
``timings_s`` (depth, seconds per analysis) and ``seconds`` (convergent, statistics / analysis
time). Drop runs with ``speed=False`` (its speed and per-module time fields measure the clock
too; with ``speed=False`` they are ``null`` and compared like everything else). Paths to
temporary folders in CLI outputs are replaced by ``<tmp>``.

Everything runs on one torch and one BLAS thread (a different reduction split could change a
last bit). The goldens are platform-specific (CPU kernels, torch / numpy versions, in ``_meta``):
on another platform regenerate them from the pre-refactor commit named in ``_meta.commit``::

    git worktree add /tmp/golden-base <commit>
    cd /tmp/golden-base && PYTHONPATH=$PWD OMP_NUM_THREADS=1 python -m tests.test_golden --regenerate \
        --out-dir <this checkout>/tests/golden

``python -m tests.test_golden --regenerate`` (from the repo root) rewrites tests/golden/*.json
from the code in the current tree: do that only to record a deliberate change of results, and
say so in the commit.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
TOOLS = ("depth", "drop", "convergent")
# wall-clock fields, per tool (see the module docstring)
VOLATILE = {"depth": ("timings_s",), "drop": (), "convergent": ("seconds",)}

TINY_MLP = dict(image_size=8, num_channels=1, hidden_sizes=[24, 16], num_labels=10, activation="tanh")


def _fixtures():
    from analysis import testing

    return testing


def _strip(tool: str, data: dict) -> dict:
    for key in VOLATILE[tool]:
        data.pop(key, None)
    return data


# --- the cases ---------------------------------------------------------------------------------
# Each returns the tool's JSON as parsed by json.loads (what a reader of its output file gets).


def _depth_cases() -> dict:
    from analysis.depth import run_depth

    fx = _fixtures()
    tok = fx.make_tokenizer()
    cases = {}
    model, other = fx.make_tiny("llama", seed=0, num_layers=3), fx.make_tiny("llama", seed=1, num_layers=3)
    report = run_depth(model, tok, name="tiny-llama", compare=other, compare_tokenizer=tok, compare_name="tiny-llama-1",
                       num_prompts=4, max_tokens=24, batch_size=2, skip_positions=2, map_tokens=64, progress=False)
    cases["llama_all"] = _strip("depth", json.loads(report.to_json()))
    # another adapter path (GPT-2 names, fused attention) and a skip mode other than the default
    report = run_depth(fx.make_tiny("gpt2", seed=2, num_layers=3), tok, name="tiny-gpt2", num_prompts=3,
                       max_tokens=20, batch_size=3, exclude_positions=(), analyses=("contributions", "skip", "lens"),
                       skip_positions=3, skip_mode="future", progress=False)
    cases["gpt2_future"] = _strip("depth", json.loads(report.to_json()))
    return cases


def _drop_cases() -> dict:
    from analysis.drop import run_drop

    fx = _fixtures()
    tok = fx.make_tokenizer()
    cases = {}
    for name, family, kind, mode, n, eval_ks in (("llama_attn_oneshot", "llama", "attn", "one-shot", 2, (1, 3)),
                                                  ("qwen2_block_iterative", "qwen2", "block", "iterative", 2, (1,)),
                                                  ("qwen3_mlp_oneshot", "qwen3", "mlp", "one-shot", 1, ())):
        model = fx.make_tiny(family, seed=3, num_layers=4)
        report, _ = run_drop(model, tok, kind=kind, n=n, mode=mode, name=f"tiny-{family}", num_prompts=4,
                             eval_prompts=2, max_tokens=24, batch_size=2, eval_ks=eval_ks, speed=False)
        cases[name] = _strip("drop", json.loads(report.to_json()))
    return cases


def _tiny_mlp(seed: int):
    import zoo

    torch.manual_seed(seed)
    return zoo.create_model("mlp", **TINY_MLP).eval()


def _convergent_cases() -> dict:
    from analysis import convergent as cv

    fx = _fixtures()
    cases = {}
    layers = ["layers.0.act", "layers.1.act"]
    models = [_tiny_mlp(0), _tiny_mlp(1), _tiny_mlp(2)]
    total, batches = cv.image_batches("digits", split="train", limit=300, batch_size=100)
    report = cv.compare_models(models, layers, batches, names=["a", "b", "c"], total=total, progress=False,
                               mi_bins=6, clusters=4, inputs={"kind": "pixel_values", "examples": total})
    cases["mlp_three_nets_all"] = _strip("convergent", json.loads(json.dumps(report.to_json())))
    total, batches = cv.image_batches("digits", split="train", limit=200, batch_size=64)
    report = cv.compare_models(models[:2], layers, batches, total=total, progress=False, rotations=0, sparse=False,
                               clusters=0)
    cases["mlp_cross_only"] = _strip("convergent", json.loads(json.dumps(report.to_json())))
    report = cv.compare_models(models[:2], layers, cv.image_batches("digits", limit=150, batch_size=50)[1],
                               progress=False, clusters=3, compute_dtype=torch.float64)
    cases["mlp_float64"] = _strip("convergent", json.loads(json.dumps(report.to_json())))
    tok = fx.make_tokenizer()
    total, batches = cv.text_batches([tok, tok], ["a", "b"], num_prompts=5, max_tokens=20, batch_size=2)
    lms = [fx.make_tiny("llama", seed=s, num_layers=2) for s in (0, 1)]
    report = cv.compare_models(lms, ["model.layers.0.mlp.act_fn", "model.layers.1.mlp.act_fn"], batches,
                               total=total, progress=False, clusters=4)
    cases["llama_text"] = _strip("convergent", json.loads(json.dumps(report.to_json())))
    return cases


def _convergent_cli_case(tmp: str) -> dict:
    """``zoo-analysis match`` end to end (the CLI's input plumbing and results.json)."""
    from analysis.cli import main

    a, b = os.path.join(tmp, "net-a"), os.path.join(tmp, "net-b")
    _tiny_mlp(0).save_pretrained(a)
    _tiny_mlp(1).save_pretrained(b)
    out = os.path.join(tmp, "out")
    code = main(["match", "--models", a, b, "--data", "digits", "--split", "train", "--limit", "250",
                 "--batch-size", "100", "--layers", "layers.0.act", "layers.1.act", "--out", out, "--mi-bins", "5",
                 "--clusters", "3", "--no-plots", "--quiet"])
    assert code == 0
    with open(os.path.join(out, "results.json")) as fh:
        text = fh.read().replace(tmp, "<tmp>")
    with open(os.path.join(out, "summary.md")) as fh:
        summary = fh.read().replace(tmp, "<tmp>")
    return {"results": _strip("convergent", json.loads(text)), "summary_md": summary}


def compute(tool: str, tmp: str) -> dict:
    """Every case of one tool, single-threaded."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            if tool == "depth":
                return _depth_cases()
            if tool == "drop":
                return _drop_cases()
            cases = _convergent_cases()
            cases["cli_match"] = _convergent_cli_case(tmp)
            return cases
    finally:
        torch.set_num_threads(threads)


# --- comparison --------------------------------------------------------------------------------


def differences(expected, got, path="$", limit=10) -> list[str]:
    """Where two parsed JSON values differ (exactly; NaN == NaN), at most ``limit`` paths."""
    out: list[str] = []

    def walk(e, g, p):
        if len(out) >= limit:
            return
        if isinstance(e, dict) and isinstance(g, dict):
            if e.keys() != g.keys():
                out.append(f"{p}: keys {sorted(set(e) ^ set(g))} only on one side")
            for k in e.keys() & g.keys():
                walk(e[k], g[k], f"{p}.{k}")
        elif isinstance(e, list) and isinstance(g, list):
            if len(e) != len(g):
                out.append(f"{p}: length {len(e)} != {len(g)}")
            for i, (x, y) in enumerate(zip(e, g)):
                walk(x, y, f"{p}[{i}]")
        elif isinstance(e, float) and isinstance(g, float) and math.isnan(e) and math.isnan(g):
            return
        elif type(e) is not type(g) or e != g:
            out.append(f"{p}: expected {e!r}, got {g!r}")

    walk(expected, got, path)
    return out


def _meta() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=GOLDEN_DIR.parent.parent).stdout.strip()
    except OSError:
        commit = ""
    import platform

    import transformers

    return {"commit": commit, "torch": torch.__version__, "numpy": np.__version__,
            "transformers": transformers.__version__, "machine": platform.machine(),
            "note": "generated by `python -m tests.test_golden --regenerate`; see tests/test_golden.py"}


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_json_is_bit_identical_to_the_golden(tool, tmp_path, hf_env):
    golden = json.loads((GOLDEN_DIR / f"{tool}.json").read_text())
    cases = golden["cases"]
    got = compute(tool, str(tmp_path))
    assert sorted(got) == sorted(cases)
    for name, expected in cases.items():
        diff = differences(expected, got[name], path=f"{tool}.{name}")
        assert not diff, "\n".join(diff)


def test_the_comparison_sees_a_last_bit():
    # the check that the golden test relies on: one ulp, a NaN, a missing key are differences
    x = 0.1 + 0.2
    assert differences({"a": [x]}, {"a": [math.nextafter(x, 1.0)]})
    assert not differences({"a": [float("nan")]}, {"a": [float("nan")]})
    assert differences({"a": 1, "b": 2}, {"a": 1})
    assert differences({"a": 1}, {"a": 1.0})  # an int turned float is a change of output too


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate tests/golden/*.json from the code in this tree.")
    parser.add_argument("--regenerate", action="store_true", required=True)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--out-dir", default=str(GOLDEN_DIR))
    args = parser.parse_args(argv)
    # the same isolated, offline cache the tests use
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(HF_HUB_CACHE=os.path.join(tmp, "hf-cache"), HF_MODULES_CACHE=os.path.join(tmp, "hf-modules"),
                          HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
        os.makedirs(args.out_dir, exist_ok=True)
        for tool in args.tools:
            cases = compute(tool, tmp)
            path = os.path.join(args.out_dir, f"{tool}.json")
            with open(path, "w") as fh:
                json.dump({"_meta": _meta(), "cases": cases}, fh, indent=1, sort_keys=True)
                fh.write("\n")
            print(f"wrote {path}: {len(cases)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
