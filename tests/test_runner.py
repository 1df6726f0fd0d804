"""analysis.runner: the common options, atomic --out, the one-line error path, the memory check."""
from __future__ import annotations

import argparse
import os

import pytest

from analysis import runner
from analysis.errors import AnalysisError, UserError


def _parser(run, validate=None, **options):
    parser = argparse.ArgumentParser(prog="zoo-analysis")
    sub = parser.add_subparsers(dest="command")
    tool = runner.add_tool(sub, "toy", run=run, validate=validate, help="a toy tool", **options)
    tool.add_argument("--steps", type=int, default=3)
    return parser


def _writes_then(fail_at):
    """A tool that writes one file per step into the staging folder and fails at ``fail_at``."""
    def run(args, run):
        with run.staging() as folder:
            for step in range(args.steps):
                if step == fail_at:
                    raise RuntimeError("the tool broke mid-run")
                with open(os.path.join(folder, f"part{step}.txt"), "w") as handle:
                    handle.write(str(step))
        run.print_files("toy output written to")
        return 0
    return run


def test_success_renames_the_staging_folder_to_out(tmp_path, capsys):
    out = tmp_path / "out"
    assert runner.run_cli(_parser(_writes_then(None)), ["toy", "--model", "m", "--out", str(out), "--quiet"]) == 0
    assert sorted(os.listdir(out)) == ["part0.txt", "part1.txt", "part2.txt"]
    assert os.listdir(tmp_path) == ["out"]  # no staging folder left beside it
    printed = capsys.readouterr().out
    assert f"toy output written to {out}:" in printed and str(out / "part2.txt") in printed


@pytest.mark.parametrize("existing", [False, True])
def test_a_tool_failing_mid_run_leaves_no_out(tmp_path, existing):
    out = tmp_path / "out"
    if existing:
        out.mkdir()  # an empty --out is allowed, and stays as it was
    with pytest.raises(RuntimeError, match="broke mid-run"):
        runner.run_cli(_parser(_writes_then(1)), ["toy", "--model", "m", "--out", str(out)])
    assert os.listdir(tmp_path) == (["out"] if existing else [])
    if existing:
        assert os.listdir(out) == []


def test_ctrl_c_mid_run_leaves_no_out(tmp_path, capsys):
    def run(args, run):
        with run.staging() as folder:
            open(os.path.join(folder, "half.txt"), "w").close()
            raise KeyboardInterrupt

    assert runner.run_cli(_parser(run), ["toy", "--model", "m", "--out", str(tmp_path / "out")]) == 130
    assert os.listdir(tmp_path) == []


def test_user_error_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    def run(args, run):
        with run.staging() as folder:
            open(os.path.join(folder, "half.txt"), "w").close()
            raise AnalysisError("the model has 256 positions;\nlower --max-tokens")

    code = runner.run_cli(_parser(run), ["toy", "--model", "m", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err == "zoo-analysis toy: error: the model has 256 positions; lower --max-tokens\n"
    assert os.listdir(tmp_path) == []


def test_validation_runs_before_the_tool(tmp_path, capsys):
    calls = []

    def validate(args):
        runner.check_at_least(args, "steps")

    def run(args, run):
        calls.append(args)

    parser = _parser(run, validate)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        (["--out", str(tmp_path / "full")], "exists and is not an empty folder"),
        (["--out", str(tmp_path / "o"), "--steps", "0"], "--steps must be at least 1"),
        (["--out", str(tmp_path / "o"), "--threads", "0"], "--threads must be at least 1"),
        (["--out", str(tmp_path / "o"), "--dtype", "int9"], "unknown dtype 'int9'"),
    ]
    for extra, message in cases:
        assert runner.run_cli(parser, ["toy", "--model", "m", *extra]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and message in lines[0], (extra, lines)
    assert calls == [] and not (tmp_path / "o").exists()


def test_common_options_and_load_options():
    seen = {}

    def run(args, run):
        seen.update(runner.load_options(args), progress=run.progress, out=run.out)

    parser = _parser(run, device_map=True, revision=True, out="optional")
    assert runner.run_cli(parser, ["toy", "--model", "m", "--dtype", "bf16", "--device", "cpu", "--device-map", "auto",
                                   "--revision", "abc123", "--trust-remote-code", "--threads", "1"]) == 0
    assert seen == {"dtype": "bf16", "device": "cpu", "trust_remote_code": True, "device_map": "auto",
                    "revision": "abc123", "progress": True, "out": None}
    many = argparse.ArgumentParser(prog="p")
    runner.add_tool(many.add_subparsers(dest="command"), "m", run=run, models="many", out=None)
    args = many.parse_args(["m", "--models", "a", "b", "--quiet"])
    assert args.models == ["a", "b"] and not hasattr(args, "out") and not hasattr(args, "revision")
    assert runner.load_options(args)["trust_remote_code"] is None  # no flag: load_model decides


def test_staging_refuses_a_tool_without_out(capsys):
    def run(args, run):
        with run.staging():
            pass

    parser = argparse.ArgumentParser(prog="p")
    runner.add_tool(parser.add_subparsers(dest="command"), "t", run=run, out="optional")
    assert runner.run_cli(parser, ["t", "--model", "m"]) == 2
    assert "t needs --out" in capsys.readouterr().err


def test_available_memory_reads_proc_meminfo():
    with open("/proc/meminfo") as handle:
        listed = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable:"))
    found = runner.available_memory_bytes("cpu")
    assert found is not None and abs(found - listed) < 0.25 * listed  # it moves while we read


def test_check_memory_refuses_naming_the_option():
    runner.check_memory(10, what="the run", lower="--max-tokens", available=100)
    with pytest.raises(UserError, match=r"the run needs about 2\.0 GiB but only 1\.0 GiB .*lower --max-tokens"):
        runner.check_memory(2 * 2**30, what="the run", lower="--max-tokens", available=2**30)


def test_max_tokens_against_the_models_positions():
    from types import SimpleNamespace

    short = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=128))
    gpt2_like = SimpleNamespace(config=SimpleNamespace(n_positions=64))
    unknown = SimpleNamespace(config=SimpleNamespace())
    assert runner.max_positions(short) == 128 and runner.max_positions(gpt2_like) == 64
    assert runner.max_positions(unknown) is None
    # not given: the default, cut to the shortest model; given: checked, never changed
    assert runner.resolve_max_tokens(short, None, default=256) == 128
    assert runner.resolve_max_tokens([short, gpt2_like], None, default=256) == 64
    assert runner.resolve_max_tokens(unknown, None, default=256) == 256
    assert runner.resolve_max_tokens(short, 100, default=256) == 100
    with pytest.raises(AnalysisError, match=r"--max-tokens 100 is longer than b can take \(64 positions, "
                                            r"n_positions in its config\); use --max-tokens 64 or less"):
        runner.resolve_max_tokens([short, gpt2_like], 100, default=256, names=["a", "b"])
