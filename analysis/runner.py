"""The one runner behind every ``zoo-analysis`` tool: common options, validation, atomic ``--out``,
the error path.

A tool module joins the CLI with an ``add_cli(subparsers)`` that calls :func:`add_tool`::

    from analysis import runner

    def add_cli(subparsers):
        parser = runner.add_tool(subparsers, "depth", run=_run, validate=_validate,
                                 help="...", description="...", device_map=True)
        parser.add_argument("--num-prompts", type=int, default=16)   # the tool's own options

    def _validate(args):            # cheap checks: nothing loaded, nothing written yet
        runner.check_at_least(args, "num_prompts", "batch_size")

    def _run(args, run: runner.Run) -> int:
        loaded = run.load(args.model)             # --dtype/--device/--trust-remote-code/...
        report = compute(loaded, progress=run.progress)
        with run.staging() as folder:             # a fresh folder beside --out ...
            report.write(folder)                  # ... renamed to --out only if this block succeeds
        run.print_files(f"depth probes for {args.model} written to")
        return 0

What :func:`add_tool` gives every tool:

* options (in a "common options" group): ``--model`` (``models="one"``; ``"many"`` gives
  ``--models M [M ...]``; ``None`` none), ``--out`` (``out="required"`` / ``"optional"`` /
  ``None``), ``--dtype``, ``--device``, ``--threads``, ``--quiet``, ``--trust-remote-code``, and
  on request ``--device-map`` (``device_map=True``) and ``--revision`` (``revision=True``);
* validation before anything is loaded: ``--out`` must be a new or empty folder, ``--threads``
  at least 1, ``--dtype`` a known dtype; then the tool's own ``validate(args)``;
* the runtime settings: ``torch.set_num_threads(--threads)``; ``--quiet`` also silences
  transformers' progress bars (``Run.progress`` is ``not --quiet``);
* :meth:`Run.staging`: atomic ``--out``: everything is written into a staging folder beside
  ``--out`` (same file system) that is renamed to ``--out`` at the end; any failure removes it,
  so a failed run never leaves a half-written ``--out``;
* the error path (:func:`run_cli`): an ``AnalysisError`` / ``UserError`` is printed as one line,
  ``PROG COMMAND: error: MESSAGE``, on stderr, and the exit code is 2; Ctrl-C exits 130;
  anything else is a bug and keeps its traceback.

Plain helpers for ``validate`` functions: :func:`check_at_least`, :func:`check_out`,
:func:`available_memory_bytes`, :func:`check_memory`, and for decoder LMs (a DecoderAdapter)
:func:`max_positions`, :func:`check_max_tokens`, :func:`resolve_max_tokens`.

This module imports no torch or transformers at import time, so ``zoo-analysis --help`` stays fast.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import AnalysisError

__all__ = [
    "Run",
    "add_tool",
    "add_common_options",
    "check_at_least",
    "check_out",
    "check_memory",
    "available_memory_bytes",
    "max_positions",
    "check_max_tokens",
    "resolve_max_tokens",
    "load_options",
    "apply_runtime",
    "staged_folder",
    "run_cli",
    "add_token_inputs",
    "check_token_inputs",
    "token_inputs",
]

MODELS_CHOICES = ("one", "many", None)
OUT_CHOICES = ("required", "optional", None)


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------


def add_common_options(parser: argparse.ArgumentParser, *, models: str | None = "one",
                       out: str | None = "required", device_map: bool = False,
                       revision: bool = False, out_help: str = "new output folder") -> argparse.ArgumentParser:
    """Add the options every tool shares to ``parser`` (in a "common options" group)."""
    if models not in MODELS_CHOICES:
        raise ValueError(f"models must be one of {MODELS_CHOICES}, not {models!r}")
    if out not in OUT_CHOICES:
        raise ValueError(f"out must be one of {OUT_CHOICES}, not {out!r}")
    group = parser.add_argument_group("common options")
    if models == "one":
        group.add_argument("--model", required=True, help="Hub id, local folder, .gguf file or zoo id")
    elif models == "many":
        group.add_argument("--models", nargs="+", default=[], help="zoo ids, Hub ids, folders or .gguf files")
    if out is not None:
        group.add_argument("--out", required=out == "required", default=None, help=out_help)
    if revision:
        group.add_argument("--revision", default=None,
                           help="Hub revision (branch, tag or commit) of the model(s); a pinned commit also "
                                "settles remote-code trust")
    group.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto")
    group.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default cpu)")
    if device_map:
        group.add_argument("--device-map", default=None, help="accelerate device map, e.g. auto")
    group.add_argument("--trust-remote-code", action="store_true", help="allow a non-zooscope repo's own code")
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    group.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def check_at_least(args: argparse.Namespace, *options: str, minimum: int = 1) -> None:
    """``--option must be at least MINIMUM`` for each named option that is set (None = unset)."""
    for option in options:
        value = getattr(args, option)
        if value is not None and value < minimum:
            raise AnalysisError(f"--{option.replace('_', '-')} must be at least {minimum}")


def check_out(path: str, option: str = "--out") -> str:
    """The absolute ``--out`` path, refused (before anything runs) unless it is a new or empty folder."""
    out = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise AnalysisError(f"{option} {path} exists and is not an empty folder")
    parent = os.path.dirname(out)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise AnalysisError(f"{option} {path}: {parent} is a file, not a folder")
    return out


def _check_common(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise AnalysisError("--threads must be at least 1")
    dtype = getattr(args, "dtype", None)
    if dtype is not None:
        from .models import _parse_dtype  # imports torch; only when a dtype was given

        _parse_dtype(dtype)


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`analysis.models.load_model` that the common options set."""
    options: dict[str, Any] = {
        "dtype": getattr(args, "dtype", None),
        "device": getattr(args, "device", None),
        # the flag only ever widens trust; without it load_model decides (zooscope repos)
        "trust_remote_code": True if getattr(args, "trust_remote_code", False) else None,
    }
    if getattr(args, "device_map", None) is not None:
        options["device_map"] = args.device_map
    if getattr(args, "revision", None) is not None:
        options["revision"] = args.revision
    return options


def apply_runtime(args: argparse.Namespace) -> None:
    """Apply ``--threads`` and ``--quiet`` to this process."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    if getattr(args, "quiet", False):
        import transformers

        transformers.utils.logging.disable_progress_bar()


# --------------------------------------------------------------------------------------------
# atomic output folders
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def staged_folder(out: str, prefix: str | None = None) -> Iterator[str]:
    """Yield a fresh staging folder beside ``out``; rename it to ``out`` when the block succeeds.

    ``out`` must not exist or be an empty folder (it is removed just before the rename). On any
    exception (KeyboardInterrupt included) the staging folder is deleted and ``out`` is left as
    it was. The rename is one ``os.replace`` on the same file system, so ``out`` appears whole.
    """
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=prefix or f".{os.path.basename(out)}-staging-", dir=parent)
    try:
        yield staging
        if os.path.isdir(out):
            if os.listdir(out):
                raise AnalysisError(f"output folder {out} was filled by something else during the run")
            os.rmdir(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What a tool's ``run(args, run)`` gets besides its arguments."""

    args: argparse.Namespace
    name: str
    out: str | None = None  # absolute --out (validated new or empty), None when the tool has no --out
    committed: bool = field(default=False, init=False)

    @property
    def progress(self) -> bool:
        return not getattr(self.args, "quiet", False)

    def load(self, name: str, **overrides):
        """:func:`analysis.models.load_model` with the common options (``overrides`` win)."""
        from .models import load_model

        return load_model(name, **{**load_options(self.args), **overrides})

    @contextlib.contextmanager
    def staging(self) -> Iterator[str]:
        """The staging folder for ``--out`` (see :func:`staged_folder`); ``--out`` exists whole
        after the ``with`` block, or not at all."""
        if self.out is None:
            raise AnalysisError(f"{self.name} needs --out (a new or empty folder)")
        with staged_folder(self.out, prefix=f".{self.name}-") as folder:
            yield folder
        self.committed = True

    def files(self) -> list[str]:
        """Every file now under ``--out``, sorted, as absolute paths."""
        found = []
        for root, _, names in sorted(os.walk(self.out)):
            found += [os.path.join(root, n) for n in sorted(names)]
        return found

    def print_files(self, header: str, files: list[str] | None = None) -> None:
        """``header OUT:`` and then one indented path per line."""
        print(f"{header} {self.out}:")
        for path in self.files() if files is None else files:
            print(f"  {path}")


def add_tool(subparsers, name: str, *, run: Callable[[argparse.Namespace, Run], int | None],
             validate: Callable[[argparse.Namespace], None] | None = None, help: str = "",
             description: str | None = None, models: str | None = "one", out: str | None = "required",
             device_map: bool = False, revision: bool = False,
             out_help: str = "new output folder") -> argparse.ArgumentParser:
    """Add sub-command ``name`` with the common options; returns its parser for the tool's own.

    ``validate(args)`` runs after the common checks, before anything is loaded or written;
    ``run(args, Run)`` does the work and returns the exit code (None = 0).
    """
    parser = subparsers.add_parser(name, help=help, description=description or help)
    add_common_options(parser, models=models, out=out, device_map=device_map, revision=revision,
                       out_help=out_help)

    def func(args: argparse.Namespace) -> int:
        _check_common(args)
        out_path = None
        if getattr(args, "out", None):
            out_path = check_out(args.out)
        if validate is not None:
            validate(args)
        apply_runtime(args)
        return int(run(args, Run(args, name, out_path)) or 0)

    parser.set_defaults(func=func)
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv``, call the chosen sub-command's ``func(args)``; the error path of every tool.

    zoo's own CLI runner (``zoo.errors.run_cli``): a ``UserError`` (``AnalysisError`` included)
    prints ``PROG COMMAND: error: MESSAGE`` as one line on stderr and returns 2; Ctrl-C returns
    130; anything else is a bug and propagates.
    """
    from zoo.errors import run_cli as zoo_run_cli

    return zoo_run_cli(parser, argv)


# --------------------------------------------------------------------------------------------
# lengths and memory
# --------------------------------------------------------------------------------------------

_POSITION_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx")


def _positions(adapter) -> tuple[str, int] | None:
    for name in _POSITION_FIELDS:
        value = getattr(adapter.config, name, None)
        if isinstance(value, int) and value > 0:
            return name, value
    return None


def max_positions(adapter) -> int | None:
    """The longest sequence a decoder LM was built for (its config's position field), or None."""
    found = _positions(adapter)
    return None if found is None else found[1]


def check_max_tokens(adapter, max_tokens: int, *, name: str = "the model", option: str = "--max-tokens") -> None:
    """Refuse ``max_tokens`` beyond the model's positions: learned position tables index out of
    range, rotary models run past the lengths they were trained on."""
    found = _positions(adapter)
    if found is not None and max_tokens > found[1]:
        field_name, limit = found
        raise AnalysisError(f"{option} {max_tokens} is longer than {name} can take ({limit} positions, "
                            f"{field_name} in its config); use {option} {limit} or less")


def resolve_max_tokens(adapters, requested: int | None, *, default: int, names=None,
                       option: str = "--max-tokens") -> int:
    """The tokens per prompt for a run on ``adapters`` (one or several models): ``requested`` when
    every model can take it (else the :func:`check_max_tokens` error), or when the option was not
    given, ``default`` cut to the shortest model's positions."""
    adapters = list(adapters) if isinstance(adapters, (list, tuple)) else [adapters]
    names = list(names) if names is not None else ["the model"] * len(adapters)
    if requested is not None:
        for adapter, name in zip(adapters, names):
            check_max_tokens(adapter, requested, name=name, option=option)
        return requested
    limits = [m for m in (max_positions(a) for a in adapters) if m is not None]
    return min([default] + limits)


def available_memory_bytes(device: Any = None) -> int | None:
    """Bytes a run can still allocate on ``device``: free GPU memory for CUDA, otherwise
    ``MemAvailable`` from /proc/meminfo (else free pages from ``os.sysconf``); None if unknown."""
    kind = str(device or "cpu").split(":")[0]
    if kind == "cuda":
        import torch

        if torch.cuda.is_available():
            index = torch.device(str(device)).index
            free, _ = torch.cuda.mem_get_info(torch.cuda.current_device() if index is None else index)
            return int(free)
        return None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(estimate_bytes: int, *, what: str, lower: str, device: Any = None,
                 available: int | None = None) -> None:
    """Refuse a run whose ``estimate_bytes`` exceed the memory available on ``device``:
    ``what`` names the run, ``lower`` the options that make it smaller."""
    if available is None:
        available = available_memory_bytes(device)
    if available is not None and estimate_bytes > available:
        raise AnalysisError(f"{what} needs about {_gib(estimate_bytes)} but only {_gib(available)} is available"
                            f" on {device or 'cpu'}; lower {lower}")


# --------------------------------------------------------------------------------------------
# exact token inputs (every language-model tool: depth, drop, match)
# --------------------------------------------------------------------------------------------


def add_token_inputs(parser: argparse.ArgumentParser, *, text_option: str = "--prompts") -> None:
    """``--text-stream``, ``--token-file`` and ``--add-special-tokens`` / ``--no-add-special-tokens``:
    exact token blocks instead of the tool's ``text_option`` (see :func:`token_inputs`)."""
    group = parser.add_argument_group("exact token inputs (instead of " + text_option + ")")
    group.add_argument("--text-stream", default=None,
                       help="a text file read as one stream, tokenized once and cut into consecutive blocks of "
                            "exactly --max-tokens tokens (the last partial block is dropped)")
    group.add_argument("--token-file", default=None,
                       help="pre-tokenised blocks used exactly as stored: a .safetensors file with an input_ids "
                            "tensor (one block per row) or a datasets file (.parquet/.arrow/.jsonl) or "
                            "save_to_disk folder with an input_ids column")
    group.add_argument("--add-special-tokens", action=argparse.BooleanOptionalAction, default=True,
                       help="let the tokenizer add its special tokens (e.g. BOS) to each text, or once at the "
                            "start of a --text-stream (default: yes; --token-file ids are never changed)")


def check_token_inputs(args: argparse.Namespace, text_dest: str = "prompts") -> None:
    """At most one input source; the files exist (before anything loads)."""
    given = [name for name, dest in ((f"--{text_dest.replace('_', '-')}", text_dest), ("--text-stream", "text_stream"),
                                     ("--token-file", "token_file")) if getattr(args, dest, None)]
    if len(given) > 1:
        raise AnalysisError(f"give only one input: {' or '.join(given)}")
    if getattr(args, "text_stream", None) and not os.path.isfile(args.text_stream):
        raise AnalysisError(f"--text-stream file not found: {args.text_stream}")
    if getattr(args, "token_file", None) and not os.path.exists(args.token_file):
        raise AnalysisError(f"--token-file not found: {args.token_file}")


def token_inputs(args: argparse.Namespace, tokenizer, *, num_blocks: int | None, max_tokens: int | None,
                 vocab_size: int | None = None):
    """``(blocks, description)`` from ``--text-stream`` / ``--token-file``, or ``(None, None)`` when
    neither is given (the tool then reads its text option). ``description`` is what the report
    records (:func:`analysis.prompts.describe_tokens`: source, kind, add_special_tokens, the token
    ids' sha256)."""
    from .prompts import describe_tokens, load_token_blocks, stream_blocks

    if getattr(args, "token_file", None):
        blocks = load_token_blocks(args.token_file, num_blocks=num_blocks, max_tokens=max_tokens, vocab_size=vocab_size)
        return blocks, describe_tokens(blocks, args.token_file, "token-file", None)
    if getattr(args, "text_stream", None):
        if tokenizer is None:
            raise AnalysisError("--text-stream needs a model with a tokenizer")
        blocks = stream_blocks(tokenizer, args.text_stream, max_tokens, num_blocks=num_blocks,
                               add_special_tokens=args.add_special_tokens)
        return blocks, describe_tokens(blocks, args.text_stream, "text-stream", args.add_special_tokens)
    return None, None
