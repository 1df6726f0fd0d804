"""The shell commands the README and docs/*.md show, and how tests/test_docs.py runs them.

Every fenced shell block (```bash, ```sh, ```shell, or an unlabelled fence whose first command
is one of ours) is split into commands: backslash-continued lines join, a `for ... done` loop
stays whole, and a top-level `a && b && c` chain is kept as one command whose install steps
(apt-get, pip: network, and what .ci/run already did) are left out. Each command is then:

  run      executed as written, in a scratch copy of the repo with an empty offline HF cache,
           after the commands before it in the same doc (as a reader following the doc would);
  parse    executed as written with ZOO_DOCS_PARSE_ONLY=1: every Python process (`python`,
           `zoo`, `zoo-analysis`, the scripts `accelerate launch`/`torchrun` start) parses its
           arguments with its own argparse parser and exits, so a renamed or removed flag still
           fails, without the minutes-to-hours run or the network the command needs (a `cp` of
           that run's output is skipped too; `VAR=$(...)` assignments always run);
  install  not executed (network); the packages and extras it names are checked to exist;
  server   not executed (starts a server that runs until stopped); its script must exist;
  suite    not executed: the test command itself (CI runs it).

PARSE_ONLY and the other rules below say which commands are not run, each with its reason.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGS = {"bash", "sh", "shell"}
# an unlabelled fence is a shell block when its first command starts with one of these
COMMAND_WORDS = {"zoo", "zoo-analysis", "python", "python3", "pip", "accelerate", "torchrun", "apt-get",
                 "for", "export", "OMP_NUM_THREADS=1", "GGUF", "HF_HUB_OFFLINE=1"}

# Commands that are not run, with the reason; (doc glob or None, regex on the command, reason).
PARSE_ONLY: list[tuple[str | None, str, str]] = [
    ("docs/BENCHMARKS.md", r".", "reproduction run (minutes to hours on 2 cores); benchmarks/check_docs.py "
                                 "checks every figure against the JSON it wrote"),
    ("docs/FINDINGS.md", r".", "reproduction run (trains 8 models / full analyses); benchmarks/check_docs.py "
                               "checks every figure against the JSON it wrote"),
    (None, r"--push\b", "uploads to the Hub: needs a network and a token"),
    ("docs/scaling.md", r"launch/gpu-", "needs GPUs (multi-GPU DDP, FSDP2); CI has none, and train.py refuses FSDP on CPU"),
    (None, r"--model[s]?\s+(?!zooscope/)[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?<!\.gguf)(\s|$)",
     "downloads a model from the Hub (no network in tests)"),
    (None, r"--compare\s+(?!zooscope/)[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", "downloads a model from the Hub"),
    (None, r"path/to/|\bRECIPE\.yaml\b|\bmy-folder\b|\bquestions\.jsonl\b",
     "a placeholder path the reader fills in: checked for parse only"),
    ("docs/depth.md", r"--num-prompts 16 --max-tokens 256", "a full-size run (~10 min on 2 cores)"),
    ("docs/convergent.md", r".", "needs four trained convnet replicas (~8 min of training on 2 cores); "
                                 "the README's two-replica example runs"),
]
SUITE = re.compile(r"\bpython3? -m pytest\b|^pytest\b")
ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=(\$\(.*\)|[^\s;]*)(\s*;\s*[A-Za-z_]\w*=[^\s;]*)*\s*(#.*)?$")
SERVER = re.compile(r"^(?:\w+=\S+\s+)*python3?\s+(spaces/[\w.-]+/app\.py)\s*(#.*)?$")
INSTALL = re.compile(r"^\s*(sudo\s+)?(apt-get|apt|pip|pip3|python3? -m pip)\s")


@dataclass
class Command:
    doc: str
    line: int
    text: str
    mode: str          # run | parse | install | server
    reason: str = ""


def shell_blocks(doc: str) -> list[tuple[int, str]]:
    """(first line, text) of every shell block in a doc."""
    text = (REPO_ROOT / doc).read_text()
    blocks = []
    for match in re.finditer(r"^```([\w-]*)[^\n]*\n(.*?)^```", text, re.S | re.M):
        lang, body = match.group(1).lower(), match.group(2)
        first = next((ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
        word = re.split(r"[\s=]", first, maxsplit=1)[0] if first else ""
        if lang in SHELL_LANGS or (lang == "" and (word in COMMAND_WORDS or first.split(" ")[0] in COMMAND_WORDS)):
            blocks.append((text[: match.start(2)].count("\n") + 1, body))
    return blocks


def split_commands(body: str, first_line: int) -> list[tuple[int, str]]:
    """Logical commands of a block: continuations joined, compound statements kept whole."""
    out, current, start, depth = [], [], None, 0
    for offset, raw in enumerate(body.splitlines()):
        line = raw.rstrip()
        if not current and (not line.strip() or line.strip().startswith("#")):
            continue
        if start is None:
            start = first_line + offset
        current.append(line)
        code = re.sub(r"#.*", "", line) if not line.rstrip().endswith("\\") else line
        depth += len(re.findall(r"(?:^|[;&|]\s*|\bdo\s+|\bthen\s+)\s*(?:for|while|until|if)\b", code))
        depth -= len(re.findall(r"\b(?:done|fi)\b", code))
        if line.endswith("\\") or depth > 0:
            continue
        out.append((start, "\n".join(current)))
        current, start, depth = [], None, 0
    if current:
        out.append((start, "\n".join(current)))
    return out


def classify(doc: str, text: str) -> Command:
    flat = " ".join(text.replace("\\\n", " ").split())
    if SERVER.match(flat):
        return Command(doc, 0, text, "server", "starts a Gradio server that runs until stopped "
                                               "(tests/test_spaces.py launches the Spaces)")
    if ASSIGNMENT.match(flat):
        return Command(doc, 0, text, "run", "")  # VAR=$(...) only computes a value the next commands use
    if SUITE.search(flat):
        return Command(doc, 0, text, "suite", "runs the test suite itself; .ci/run runs this line "
                                              "(test_ci_runs_the_readme_test_command)")
    if INSTALL.match(flat) and "&&" not in flat:
        return Command(doc, 0, text, "install", "installs from the network (.ci/run does these installs)")
    for doc_glob, pattern, reason in PARSE_ONLY:
        if (doc_glob is None or Path(doc).match(doc_glob)) and re.search(pattern, flat):
            return Command(doc, 0, text, "parse", reason)
    return Command(doc, 0, text, "run")


def doc_commands(doc: str) -> list[Command]:
    commands = []
    for first_line, body in shell_blocks(doc):
        for line, text in split_commands(body, first_line):
            command = classify(doc, text)
            command.line = line
            commands.append(command)
    return commands


def documented_files() -> list[str]:
    """README.md and every docs/*.md, read at test time so new docs are covered the day they land."""
    return ["README.md"] + sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "docs").glob("*.md"))


def without_installs(text: str) -> tuple[str, list[str]]:
    """A `a && b && c` chain without its install steps (network; CI installed them), and those steps."""
    flat = text.replace("\\\n", " ")
    if "&&" not in flat or "\n" in flat.strip():
        return text, []
    parts = [p.strip() for p in flat.split("&&")]
    installs = [p for p in parts if INSTALL.match(p)]
    return " && ".join(p for p in parts if not INSTALL.match(p)), installs


def check_install(step: str) -> list[str]:
    """What an install step names must exist: the project's extras, and the Debian packages
    .ci/run installs (so CI has what the README tells a reader to install)."""
    problems = []
    words = shlex.split(step)
    if words[0] in ("sudo",):
        words = words[1:]
    if words[0] in ("apt-get", "apt") and "install" in words:
        ci = (REPO_ROOT / ".ci" / "run").read_text()
        for package in [w for w in words[words.index("install") + 1:] if not w.startswith("-")]:
            if not re.search(rf"apt-get install[^\n]*\b{re.escape(package)}\b", ci):
                problems.append(f"{package!r} is not installed by .ci/run")
    if "pip" in words[0] or "pip" in words[:3]:
        pyproject = (REPO_ROOT / "pyproject.toml").read_text()
        for word in words:
            extras = re.fullmatch(r"\.\[([\w,-]+)\]", word)
            if extras:
                for extra in extras.group(1).split(","):
                    if not re.search(rf"^{re.escape(extra)}\s*=", pyproject, re.M):
                        problems.append(f"pyproject.toml has no extra {extra!r}")
    return problems


# Parse-only mode: a sitecustomize that makes every Python process parse its arguments and exit.
SITECUSTOMIZE = textwrap.dedent('''
    """ZOO_DOCS_PARSE_ONLY=1: parse the command line with the program's own argparse parser, exit."""
    import os, sys
    if os.environ.get("ZOO_DOCS_PARSE_ONLY") == "1":
        import argparse
        argv = getattr(sys, "orig_argv", [])
        if "-c" in argv[1:2]:  # python -c CODE: compile it, do not run it
            compile(argv[2], "<-c>", "exec")
            print("ZOO_DOCS_PARSED -c", file=sys.stderr, flush=True)
            os._exit(0)  # SystemExit is fatal while site is still importing
        _parse_args = argparse.ArgumentParser.parse_args
        _parse_known = argparse.ArgumentParser.parse_known_args
        _inside = []

        def _launcher(parser):
            # accelerate launch / torchrun parse their own options, then start the script,
            # which inherits this variable and parses its own: let the launcher go on
            prog = (parser.prog or "").split()[0]
            return prog in ("accelerate", "accelerate-launch", "torchrun") or "torch.distributed" in prog

        def parse_args(self, args=None, namespace=None):
            _inside.append(1)
            try:
                result = _parse_args(self, args, namespace)
            finally:
                _inside.pop()
            if _launcher(self):
                return result
            print("ZOO_DOCS_PARSED", self.prog, file=sys.stderr)
            sys.exit(0)

        def parse_known_args(self, args=None, namespace=None):
            result = _parse_known(self, args, namespace)
            if _inside or _launcher(self):
                return result
            print("ZOO_DOCS_PARSED", self.prog, file=sys.stderr)
            sys.exit(0)

        argparse.ArgumentParser.parse_args = parse_args
        argparse.ArgumentParser.parse_known_args = parse_known_args
''')

IGNORED = shutil.ignore_patterns(".git", "outputs", "hub_repos", "runs", "__pycache__", "*.egg-info",
                                 ".pytest_cache", ".venv", "node_modules", ".whl", ".gl")


def scratch_env(tmp: Path) -> tuple[Path, dict]:
    """A copy of the repo and an environment: empty offline HF cache, the copy's code first."""
    repo = tmp / "repo"
    shutil.copytree(REPO_ROOT, repo, ignore=IGNORED, symlinks=True)
    hook = tmp / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ)
    env.update(HF_HUB_CACHE=str(tmp / "hf-cache"), HF_HOME=str(tmp / "hf-home"),
               HF_MODULES_CACHE=str(tmp / "hf-modules"), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_DATASETS_OFFLINE="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(hook), str(repo)]))
    env.pop("ZOO_DOCS_PARSE_ONLY", None)
    # the interpreter running the tests is the one the docs' `python` means
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return repo, env


@dataclass
class Outcome:
    command: Command
    returncode: int
    output: str


def run_doc(doc: str, tmp: Path, timeout: int = 1500) -> list[Outcome]:
    """Run a doc's commands in order in one bash session (variables like `C=...` carry over; each
    command starts in the repo copy)."""
    repo, env = scratch_env(tmp)
    commands = doc_commands(doc)
    logs = tmp / "logs"
    logs.mkdir()
    script = ["set +e"]
    runnable = []
    for i, command in enumerate(commands):
        if command.mode in ("install", "server", "suite"):
            continue
        text, _ = without_installs(command.text)
        if not text.strip():
            continue
        runnable.append((i, command))
        # parse mode: Python programs parse and exit; a `cp` of what the skipped run would have
        # written is left out too (its source does not exist)
        prefix = "export ZOO_DOCS_PARSE_ONLY=1; cp() { :; }; " if command.mode == "parse" else ""
        script.append(f"{prefix}{{\n{text}\n}} > {logs}/{i}.out 2>&1 < /dev/null; echo $? > {logs}/{i}.rc; "
                      "unset ZOO_DOCS_PARSE_ONLY; unset -f cp; cd " + shlex.quote(str(repo)))
    # its own process group, so that a timeout stops the commands it started too
    shell = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        shell.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()  # the commands that did not finish are reported below with rc -1
    outcomes = []
    for i, command in runnable:
        rc_file, out_file = logs / f"{i}.rc", logs / f"{i}.out"
        rc = int(rc_file.read_text()) if rc_file.exists() else -1
        output = out_file.read_text(errors="replace") if out_file.exists() else "(never ran)"
        if not rc_file.exists() and out_file.exists():
            output += f"\n(still running when the doc's {timeout} s ran out)"
        outcomes.append(Outcome(command, rc, output))
    return outcomes
