"""The docs say only what is true: the README's and docs' commands run as written, and every
figure in docs/BENCHMARKS.md and docs/FINDINGS.md equals the JSON its command wrote."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from benchmarks import check_docs

from . import doc_commands as dc
from .conftest import REPO_ROOT


def readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick_start)


def test_quick_start_has_exactly_two_commands():
    commands = readme_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    main_job, tests = commands
    assert "train.py hub_configs/" in main_job and "zoo publish" in main_job and "zoo evaluate" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_readme_recipe_exists():
    main_job = readme_commands()[0]
    recipe = re.search(r"train\.py (hub_configs/\S+\.yaml)", main_job).group(1)
    assert (REPO_ROOT / recipe).exists()


def test_readme_says_what_the_tests_and_offline_use_need():
    text = (REPO_ROOT / "README.md").read_text()
    assert "HF_HUB_OFFLINE=1" in text
    # the browser tests drive Debian's chromium: the README's install line must bring it
    main_job = readme_commands()[0]
    assert re.search(r"apt-get install[^&]*\bchromium\b[^&]*\bchromium-driver\b", main_job)


# --- every figure regenerates ---------------------------------------------------------------

def test_every_doc_figure_matches_its_json():
    figures, problems = check_docs.check()
    assert not problems, "\n".join(problems)
    # the markers cover the tables and headline figures of both docs, not a token few
    per_doc = {doc: sum(f.doc == doc for f in figures) for doc in check_docs.DEFAULT_DOCS}
    assert all(count >= 100 for count in per_doc.values()), per_doc


def test_check_docs_fails_on_a_changed_figure(tmp_path):
    """A figure edited by hand (or a JSON rerun that moved) fails with the doc line and the value."""
    text = (REPO_ROOT / "docs" / "BENCHMARKS.md").read_text()
    assert "| **15 attention** | ×1.22 |" in text
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(text.replace("| **15 attention** | ×1.22 |", "| **15 attention** | ×1.32 |"))
    _, problems = check_docs.check([str(doc)])
    line = next(i for i, ln in enumerate(doc.read_text().splitlines(), 1) if "×1.32" in ln)
    assert problems == [f"{doc}:{line}: the doc says 1.32 but the JSON gives "
                        f"{check_docs.load_json(REPO_ROOT / 'docs/figures/drop/bench-paired.json').runs[1].prefill_speedup!r} "
                        "(key.prefill_speedup in docs/figures/drop/bench-paired.json)"]


def test_check_docs_rounding_and_formats():
    parse = lambda s: [(t, v) for t, v, _ in check_docs.numbers_in(s)]  # noqa: E731
    assert parse("2 885 MB, ×1.05, (+4 %), −2 %, 1.2e-7, 0.10–1.10, layers 3-13") == [
        ("2 885", 2885.0), ("1.05", 1.05), ("+4", 4.0), ("−2", -2.0), ("1.2e-7", 1.2e-7), ("0.10", 0.10),
        ("1.10", 1.10), ("3", 3.0), ("13", 13.0)]
    fig = lambda text, expected: check_docs.Figure("d", 1, text, *check_docs.parse_number(  # noqa: E731
        check_docs.NUMBER.search(text)), expected, "")
    assert fig("0.34", 0.3449).ok() and not fig("0.34", 0.3451).ok()
    assert fig("2 885", 2884.6).ok() and not fig("2 885", 2886.0).ok()
    assert fig("1.2e-7", 1.23e-7).ok() and not fig("1.2e-7", 1.3e-7).ok()
    assert not fig("1.0", None).ok()


def test_a_table_without_a_marker_fails(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# T\n\n| a | b |\n|---|---|\n| x | 1.5 |\n")
    _, problems = check_docs.check([str(doc)])
    assert problems == [f"{doc}:3: table without a check-table or no-check marker"]


def test_doc_figures_come_from_committed_json():
    """Each JSON a marker names is in git, not a local leftover (CI checks out only git)."""
    paths = set()
    for doc in check_docs.DEFAULT_DOCS:
        for marker in check_docs.MARKER.finditer((REPO_ROOT / doc).read_text()):
            if marker.group(1) != "no-check":
                paths |= {item.rpartition("=")[2] for item in marker.group(2).strip().splitlines()[0].split()}
    assert len(paths) >= 15
    if (REPO_ROOT / ".git").exists():
        tracked = set(subprocess.run(["git", "ls-files", *sorted(paths)], cwd=REPO_ROOT, capture_output=True,
                                     text=True, check=True).stdout.split())
        assert paths == tracked, sorted(paths - tracked)
    assert all((REPO_ROOT / p).is_file() for p in paths)


def test_check_docs_cli():
    done = subprocess.run([sys.executable, "benchmarks/check_docs.py"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("all match")


# --- every documented command runs ----------------------------------------------------------

def test_every_doc_command_is_classified():
    """Each command not run has a stated reason; the docs carry commands that do run."""
    commands = [c for doc in dc.documented_files() for c in dc.doc_commands(doc)]
    assert all(c.mode == "run" or c.reason for c in commands)
    readme = [c for c in commands if c.doc == "README.md"]
    assert sum(c.mode == "run" for c in readme) >= 8, [(c.line, c.mode, c.text) for c in readme]
    # the README's own quick start runs (its install steps aside), not a parse check
    assert all(c.mode == "run" for c in readme if "zoo evaluate" in c.text)


def test_parse_only_mode_still_rejects_a_bad_flag(tmp_path):
    """The parse check is a real check: an unknown flag fails, a good command passes fast."""
    repo, env = dc.scratch_env(tmp_path)
    env["ZOO_DOCS_PARSE_ONLY"] = "1"
    good = subprocess.run(["zoo-analysis", "depth", "--model", "Qwen/Qwen2.5-0.5B", "--out", "runs/x"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    bad = subprocess.run(["zoo-analysis", "depth", "--model", "x", "--out", "runs/x", "--no-such-flag"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert good.returncode == 0 and "ZOO_DOCS_PARSED" in good.stderr, good.stderr[-2000:]
    assert bad.returncode == 2 and "--no-such-flag" in bad.stderr
    assert not (repo / "runs").exists()  # nothing ran


def test_install_steps_name_what_exists():
    for doc in dc.documented_files():
        for command in dc.doc_commands(doc):
            steps = [command.text] if command.mode == "install" else dc.without_installs(command.text)[1]
            for step in steps:
                assert not dc.check_install(step), (doc, command.line, step, dc.check_install(step))


def test_documented_scripts_and_recipes_exist():
    """Paths a command names (scripts, recipes, Spaces) exist, also in the commands not run."""
    for doc in dc.documented_files():
        for command in dc.doc_commands(doc):
            for token in re.findall(r"(?<![\w/.$-])((?:benchmarks|hub_configs|spaces|experiments)/[\w./-]+\.(?:py|yaml)"
                                    r"|train\.py)(?![\w$])", command.text):
                assert (REPO_ROOT / token).exists(), f"{doc}:{command.line}: {token} does not exist"


# docs whose run-as-written commands start process groups (torchrun / accelerate launch) on the
# fixed rendezvous port: they share an xdist worker with the other launching tests
LAUNCHING_DOCS = {"README.md", "docs/scaling.md"}


@pytest.mark.slow
@pytest.mark.parametrize("doc", [pytest.param(doc, marks=pytest.mark.xdist_group("launch")) if doc in LAUNCHING_DOCS
                                 else doc for doc in dc.documented_files()])
def test_doc_commands_run_as_written(doc, tmp_path):
    """Each command of the doc, in order, in a scratch copy with an empty offline HF cache."""
    outcomes = dc.run_doc(doc, tmp_path)
    failures = [f"{doc}:{o.command.line} [{o.command.mode}] exit {o.returncode}: {o.command.text}\n"
                + "\n".join(o.output.replace("\r", "\n").splitlines()[-15:]) for o in outcomes if o.returncode != 0]
    assert not failures, "\n\n".join(failures)


def test_readme_lists_every_architecture_and_data_set():
    import zoo
    from zoo import data

    text = (REPO_ROOT / "README.md").read_text()
    table = re.findall(r"^\| `(\w+)` \| Auto\w+", text, re.M)
    assert sorted(table) == sorted(zoo.list_models())
    assert [d for d in data.list_datasets() if f"`{d}`" not in text] == []
