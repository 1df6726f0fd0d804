"""From a trained run to a Hub repo: export (code + safetensors + card), local publish, push, load, trust.

A published repo is loadable by name without zooscope installed:
``AutoModel.from_pretrained("zooscope/<id>", trust_remote_code=True)``. Offline, `publish_to_cache`
places it in the local Hugging Face cache exactly as a download would (blobs, a snapshot named
by a 40-hex revision, refs/main), so loading by name works the same way.

What a repo says is taken from the run that made its weights: the output folder's own
recipe.yaml (overrides included) and config.json, not the recipe file as it reads today.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .recipes import HUB_ORG, Recipe, load_recipe

AUTO_CLASS_TO_PIPELINE_TAG = {
    "AutoModelForImageClassification": "image-classification",
    "AutoModelForSequenceClassification": "text-classification",
    "AutoModelForCausalLM": "text-generation",
}
DEFAULT_REPO_ROOT = Path("hub_repos")
CURVES_PNG = "training_curves.png"
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
# Files an output folder may hold that the Hub repo carries besides the weights and the config.
EXTRA_REPO_FILES = ("preprocessor_config.json",)


@dataclass
class PublishResult:
    repo_id: str
    repo_dir: Path
    revision: str | None = None  # the local cache snapshot
    url: str | None = None  # after --push
    overrides: tuple[str, ...] = ()  # how the run differs from the named recipe (stated in the card)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The id git (and the Hub, as ETag) gives a regular file: sha1 of "blob <size>\\0" + content."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_safetensors(path: Path) -> dict:
    """Open and read every tensor of a safetensors file; a corrupt or truncated file is a UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise UserError(f"{path} is corrupt or truncated ({error}); train the recipe again") from None


def safetensors_size_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be whole (truncated, bad header), read from its header alone; None if it can.

    Cheap enough to run before every load: the header says where the last tensor ends, so a file
    cut short is caught without reading the tensors.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{size} bytes, shorter than a safetensors header"
            header_len = int.from_bytes(head, "little")
            if header_len > size - 8:
                return f"header claims {header_len} bytes but the file has {size}"
            header = json.loads(f.read(header_len))
    except (OSError, ValueError) as error:
        return f"unreadable header ({error})"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    expected = 8 + header_len + max(ends, default=0)
    if size < expected:
        return f"truncated: {size} bytes, the header needs {expected}"
    return None



def get_architecture(name: str):
    """zoo.registry's, imported on first use: listing what is published needs no torch."""
    from .registry import get_architecture as registry_get_architecture

    return registry_get_architecture(name)

# --------------------------------------------------------------------------------------------
# Network: probe once, then fail fast
# --------------------------------------------------------------------------------------------

_REACHABLE: dict[str, tuple[bool, float]] = {}  # endpoint -> (reachable, when probed)
_SWITCHED_OFFLINE = False  # whether this module (not the user) turned offline mode on
REPROBE_AFTER_S = 300.0  # a long-running process (a Space) notices the network coming back


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether the Hub can be reached: False under HF_HUB_OFFLINE, else one TCP probe per process.

    Without a network huggingface_hub retries every request for ~29 s before giving up. One
    probe (DNS + connect to the endpoint, or to the proxy when one is set) answers in well under
    a second; when it fails the process switches huggingface_hub and transformers to offline
    mode, so every later miss is a local-cache miss that returns at once. A failed probe is
    repeated after REPROBE_AFTER_S, and offline mode is lifted again if this module set it.
    """
    import time

    from huggingface_hub import constants

    global _SWITCHED_OFFLINE
    endpoint = constants.ENDPOINT
    known = _REACHABLE.get(endpoint)
    if known is not None and (known[0] or time.monotonic() - known[1] < REPROBE_AFTER_S):
        return known[0]
    if not _SWITCHED_OFFLINE and (constants.HF_HUB_OFFLINE or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")):
        return False  # the user's choice: no probe at all
    import socket
    from urllib.parse import urlparse

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or os.environ.get("ALL_PROXY")
    target = urlparse(proxy if proxy and "://" in proxy else (f"http://{proxy}" if proxy else endpoint))
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((target.hostname, port), timeout=timeout).close()
        reachable = True
    except (OSError, ValueError):
        reachable = False
    _REACHABLE[endpoint] = (reachable, time.monotonic())
    if not reachable and not _SWITCHED_OFFLINE:
        constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub and transformers
        os.environ["HF_HUB_OFFLINE"] = "1"  # and by subprocesses / code that reads the environment
        _SWITCHED_OFFLINE = True
    elif reachable and _SWITCHED_OFFLINE:
        constants.HF_HUB_OFFLINE = False
        os.environ.pop("HF_HUB_OFFLINE", None)
        _SWITCHED_OFFLINE = False
    return reachable


# --------------------------------------------------------------------------------------------
# The local cache
# --------------------------------------------------------------------------------------------


def _repo_id(name: str) -> str:
    return name if "/" in name else f"{HUB_ORG}/{name}"


def cache_storage(repo_id: str, cache_dir: str | Path | None = None) -> Path:
    from huggingface_hub import constants

    return Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def cached_snapshot(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> Path | None:
    """The cache snapshot `revision` (default: refs/main) points at, if it is there with config.json; else None."""
    storage = cache_storage(_repo_id(repo_id), cache_dir)
    if revision and COMMIT_RE.fullmatch(revision):
        commit = revision
    else:
        ref = storage / "refs" / (revision or "main")
        try:
            commit = ref.read_text().strip()
        except OSError:
            return None
    snapshot = storage / "snapshots" / commit
    if not (snapshot / "config.json").is_file():  # is_file follows the link: a dangling one is "missing"
        return None
    return snapshot


def published_ids(pattern: str | None = None, cache_dir: str | Path | None = None) -> list[str]:
    """Ids of the zooscope repos that are actually published: a complete snapshot in the local
    cache, or (when the Hub is reachable) a model of the org on the Hub."""
    import fnmatch

    from huggingface_hub import constants

    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    prefix = f"models--{HUB_ORG}--"
    ids = set()
    if cache.is_dir():
        for storage in cache.glob(prefix + "*"):
            repo_id = storage.name[len("models--"):].replace("--", "/", 1)
            snapshot = cached_snapshot(repo_id, cache_dir=cache)
            if snapshot is not None and (snapshot / "model.safetensors").is_file():
                ids.add(storage.name[len(prefix):])
    if cache_dir is None and hub_reachable():
        try:
            from huggingface_hub import HfApi

            ids.update(m.id.split("/", 1)[1] for m in HfApi().list_models(author=HUB_ORG))
        except Exception:  # noqa: BLE001 - the Hub answered badly: what the cache holds is still true
            pass
    return sorted(i for i in ids if pattern is None or fnmatch.fnmatch(i, pattern))


# --------------------------------------------------------------------------------------------
# Trust
# --------------------------------------------------------------------------------------------


def _code_folder(name: str, revision: str | None) -> tuple[Path | None, str]:
    """A folder holding the repo's config.json and code files, and where it came from."""
    if os.path.isdir(os.path.expanduser(name)):
        return Path(os.path.expanduser(name)), f"folder {name}"
    repo_id = _repo_id(name)
    snapshot = cached_snapshot(repo_id, revision)
    if snapshot is not None:
        return snapshot, f"the local cache ({repo_id}@{snapshot.name[:12]})"
    if not hub_reachable():
        return None, (f"{repo_id} is not in the local Hugging Face cache and the Hub is unreachable, "
                      "so its code cannot be compared with the installed package")
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, revision=revision, allow_patterns=["*.py", "config.json"])
    except Exception as error:  # noqa: BLE001 - any failure means: not verified
        return None, f"could not fetch {repo_id}'s code to compare it ({type(error).__name__})"
    return Path(folder), f"the Hub ({repo_id})"


def remote_code_trust(name: str, revision: str | None = None) -> tuple[bool, str]:
    """Whether to run a repo's own code automatically, and why (or why not).

    Trusted when the revision is pinned to a commit (40 hex digits: the code cannot change
    under the caller), or when every code file of the repo is byte-identical (sha256) to the
    installed zooscope's copy of that architecture, compared before anything is loaded. Any
    other repo, including a changed one under ``zooscope/``, needs the caller's explicit
    ``trust_remote_code=True``; the reason says what differed.
    """
    if revision and COMMIT_RE.fullmatch(revision):
        return True, f"revision pinned to commit {revision}"
    folder, where = _code_folder(name, revision)
    if folder is None:
        return False, where
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        return False, f"{where}: config.json unreadable ({error})"
    auto_map = dict(config.get("auto_map") or {})
    try:  # an image processor's code is remote code too
        auto_map.update({f"processor:{k}": v for k, v in
                         (json.loads((folder / "preprocessor_config.json").read_text()).get("auto_map") or {}).items()})
    except (OSError, ValueError):
        pass
    if not auto_map:
        return False, f"{where}: config.json has no auto_map, so there is no code of its own to trust"
    refs = [v for value in auto_map.values() for v in (value if isinstance(value, (list, tuple)) else [value]) if v]
    foreign = [r for r in refs if "--" in r]
    if foreign:
        return False, f"{where}: auto_map points at code in another repo ({', '.join(foreign)})"
    model_type = config.get("model_type")
    try:
        arch = get_architecture(str(model_type))
    except UserError:
        return False, f"{where}: model_type {model_type!r} is not an architecture of the installed zooscope"
    installed = {p.name: file_sha256(p) for p in arch.code_files}
    present = {p.name: file_sha256(p) for p in folder.glob("*.py") if p.is_file()}
    needed = {r.split(".", 1)[0] + ".py" for r in refs}
    extra = sorted(set(present) - set(installed))
    if extra:
        return False, f"{where}: code file(s) {', '.join(extra)} are not part of the installed zooscope {arch.name}"
    missing = sorted((set(installed) | needed) - set(present))
    if missing:
        return False, f"{where}: code file(s) {', '.join(missing)} missing, so they would be fetched unverified"
    changed = sorted(n for n in installed if present[n] != installed[n])
    if changed:
        return False, (f"{where}: {', '.join(changed)} differ(s) from the installed zooscope's copy "
                       f"(sha256 {present[changed[0]][:12]} != {installed[changed[0]][:12]})")
    return True, f"code identical (sha256) to the installed zooscope {arch.name}: {', '.join(sorted(installed))}"


# --------------------------------------------------------------------------------------------
# The run that made the weights
# --------------------------------------------------------------------------------------------


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: list(value) if isinstance(value, tuple) else value}


def recipe_differences(named: Recipe, run: Recipe) -> list[tuple[str, object, object]]:
    """(dotted key, named recipe's value, run's value) wherever the run's training setup differs."""
    a = _flatten({"architecture": named.architecture, "config": named.config, "data": named.data, "training": named.training})
    b = _flatten({"architecture": run.architecture, "config": run.config, "data": run.data, "training": run.training})
    missing = object()
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k, missing) != b.get(k, missing)]


def _jsonable(value):
    return json.loads(json.dumps(value))


def run_recipe(named: Recipe, output_dir: Path) -> Recipe:
    """The recipe that made the weights in `output_dir`, checked against its config.json.

    The output folder's recipe.yaml (written by the training run, overrides applied) is the
    source of truth for the training setup; the named recipe supplies what describes the model
    (description, card, paper) when the run's copy predates them. A config.json that disagrees
    with the run's recipe, or a run of another recipe, is a UserError: the card would lie.
    """
    config = json.loads((output_dir / "config.json").read_text())
    recorded = output_dir / "recipe.yaml"
    if recorded.exists():
        run = load_recipe(recorded)
        if run.id != named.id:
            raise UserError(f"{output_dir} holds a run of recipe {run.id!r}, not {named.id!r}; "
                            f"publish {run.id} or point --output-dir at a run of {named.id}")
        run.description = named.description or run.description
        run.card = named.card or run.card
        run.paper = named.paper or run.paper
        run.source = named.source
        run.output_dir = None  # where it ran is no part of how it was trained
        origin = f"{recorded} (the run's own recipe)"
    else:
        run, origin = named, f"{named.source} (the run has no recipe.yaml)"
    if config.get("model_type") != run.architecture:
        raise UserError(f"{output_dir}/config.json is a {config.get('model_type')!r} model but {origin} "
                        f"names {run.architecture!r}")
    mismatched = [(k, v, config.get(k)) for k, v in run.config.items() if k in config and _jsonable(v) != config[k]]
    if mismatched:
        detail = ", ".join(f"{k}: config.json {c!r} vs recipe {v!r}" for k, v, c in mismatched)
        raise UserError(f"{output_dir} was not trained with {origin}: {detail}; publish the recipe that made "
                        "these weights (or train this one again)")
    return run


# --------------------------------------------------------------------------------------------
# The model card
# --------------------------------------------------------------------------------------------


def _curve_rows(metrics: dict) -> tuple[list[dict], str]:
    curves = [r for r in metrics.get("curves") or [] if isinstance(r, dict)]
    if curves:
        return curves, "per evaluation step"
    return [r for r in metrics.get("history") or [] if isinstance(r, dict)], "per epoch"


def plot_curves(metrics: dict, path: Path) -> bool:
    """Draw metrics.json's curves (else its per-epoch history) to a PNG; False when there is nothing to draw."""
    rows, granularity = _curve_rows(metrics)
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    x_key = "step" if all("step" in r for r in rows) else "epoch"
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k not in ("step", "epoch")})
    losses = [k for k in keys if k.endswith("loss")]
    scores = [k for k in keys if not k.endswith("loss")]
    panels = [p for p in (("loss", losses), ("metric", scores)) if p[1]]
    if not panels:
        return False
    figure = Figure(figsize=(5 * len(panels), 3.4), dpi=100)
    for i, (label, names) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        for name in names:
            points = [(r[x_key], r[name]) for r in rows if isinstance(r.get(name), (int, float)) and x_key in r]
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 60 else None, label=name)
        axes.set_xlabel(x_key)
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(f"training curves ({granularity})", fontsize=10)
    figure.tight_layout()
    # No metadata: the same metrics give the same bytes, so republishing keeps the revision.
    figure.savefig(path, format="png", metadata={"Software": None})
    return True


@dataclass
class InputSpec:
    name: str  # the forward argument, e.g. pixel_values
    shape: tuple[int, ...]  # one example
    dtype: str
    low: float
    high: float
    mean: float
    std: float
    about: str  # the data set's own description of its preprocessing

    def describe(self) -> str:
        shape = ", ".join(str(s) for s in self.shape)
        return (f"`{self.name}`: a {self.dtype} tensor of shape `(batch, {shape})`, values in "
                f"[{self.low:.3g}, {self.high:.3g}] (mean {self.mean:.3g}, std {self.std:.3g} on the evaluation split)")


def input_spec(recipe: Recipe, arch) -> InputSpec | None:
    """What the model takes, measured on the recipe's own evaluation data (None if it cannot be loaded)."""
    from . import data as zoo_data

    name = getattr(arch.model_class, "main_input_name", None)
    split = recipe.data.get("eval_split", recipe.training.get("eval_split", "test"))
    try:
        dataset = zoo_data.load(recipe.data_name, split=split, **recipe.data_params)
    except UserError:
        return None
    if name not in dataset.column_names:
        name = next((c for c in dataset.column_names if c != "labels"), None)
        if name is None:
            return None
    sample = dataset[: min(len(dataset), 2048)][name].float()
    loader = zoo_data._get_loader(recipe.data_name)
    about = (loader.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    about = re.sub(r"\s+", " ", about)
    return InputSpec(name, tuple(sample.shape[1:]), str(dataset[0][name].dtype).replace("torch.", ""),
                     float(sample.min()), float(sample.max()), float(sample.mean()), float(sample.std()), about)


def _example_tensor(spec: InputSpec, batch: int) -> str:
    shape = ", ".join(str(s) for s in (batch, *spec.shape))
    if spec.low >= 0.0 and spec.high <= 1.0:
        return f"torch.rand({shape})  # uniform in [0, 1), the range of the recipe's data"
    sign = "+" if spec.mean >= 0 else "-"
    return f"torch.randn({shape}) * {spec.std:.3g} {sign} {abs(spec.mean):.3g}  # the evaluation data's mean and std"


def usage_snippets(repo_id: str, arch, spec: InputSpec | None, num_labels: int | None,
                   has_image_processor: bool) -> list[str]:
    """Python snippets for the card; each runs as it is with only torch + transformers installed."""
    auto = arch.task_auto_class or "AutoModel"
    batch = 4
    if spec is None:
        return [f'from transformers import {auto}\n\nmodel = {auto}.from_pretrained("{repo_id}", trust_remote_code=True).eval()\n']
    lines = [
        "import torch",
        f"from transformers import {auto}",
        "",
        f'model = {auto}.from_pretrained("{repo_id}", trust_remote_code=True).eval()',
        f"# {spec.name}: {spec.dtype}, shape (batch, {', '.join(map(str, spec.shape))}), "
        f"values in [{spec.low:.3g}, {spec.high:.3g}]",
        f"{spec.name} = {_example_tensor(spec, batch)}",
        "with torch.no_grad():",
        f"    outputs = model({spec.name}={spec.name})",
    ]
    if arch.task_auto_class and num_labels:
        lines += [
            f"print(outputs.logits.shape)  # torch.Size([{batch}, {num_labels}])",
            "print([model.config.id2label[i] for i in outputs.logits.argmax(-1).tolist()])",
        ]
    else:
        lines += ["print({k: tuple(v.shape) for k, v in outputs.items() if hasattr(v, 'shape')})"]
    snippets = ["\n".join(lines) + "\n"]
    task = AUTO_CLASS_TO_PIPELINE_TAG.get(arch.task_auto_class or "")
    if task == "image-classification" and has_image_processor and len(spec.shape) == 3:
        channels, height, width = spec.shape
        mode = {1: "L", 3: "RGB"}.get(channels)
        if mode:
            array = f"({height}, {width})" if channels == 1 else f"({height}, {width}, 3)"
            snippets.append("\n".join([
                "import numpy as np",
                "from PIL import Image",
                "from transformers import pipeline",
                "",
                f'classify = pipeline("image-classification", model="{repo_id}", trust_remote_code=True)',
                f"image = Image.fromarray((np.random.rand{array} * 255).astype(np.uint8))"
                f"  # {height}×{width} {'grey' if channels == 1 else 'colour'} pixels, like the training images",
                "print(classify(image, top_k=3))",
            ]) + "\n")
    return snippets


def _below_expected(final: dict, expected: dict) -> list[str]:
    warnings = []
    for key, target in expected.items():
        value = final.get(key)
        if not isinstance(target, (int, float)):
            continue
        if value is None:
            warnings.append(f"{key} was not measured (the recipe expects {target})")
        elif (value > target) if key.endswith("loss") else (value < target):
            warnings.append(f"{key} {value:.4f} measured, the recipe expects {'at most' if key.endswith('loss') else 'at least'} {target}")
    return warnings


def _fmt_value(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def recipe_path(recipe: Recipe) -> str:
    """How the card names the recipe file: relative to the working folder when it is inside it."""
    if recipe.source is not None:
        try:
            return Path(recipe.source).resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            pass
    return f"hub_configs/{recipe.id}.yaml"


def override_args(differences) -> list[str]:
    return [f"{key}={json.dumps(run_value, separators=(',', ':')) if not isinstance(run_value, str) else run_value}"
            for key, _, run_value in differences]


def model_card(recipe: Recipe, arch, metrics: dict, files_sha256: dict[str, str], differences=(),
               spec: InputSpec | None = None, has_curves: bool = False, has_image_processor: bool = False,
               config: dict | None = None) -> str:
    """The README.md of a repo: metadata, usage with the real input, results beside the expected and the
    paper's, curves, limitations, citation, the exact recipe of the run, and the files' hashes."""
    import transformers
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    card = recipe.card
    from .paper import paper_of

    paper = paper_of(recipe)
    task = card.get("task") or getattr(arch, "task", None) or AUTO_CLASS_TO_PIPELINE_TAG.get(arch.task_auto_class or "")
    final = metrics.get("final", {})
    datasets = card.get("datasets") or []
    split = recipe.data.get("eval_split", recipe.training["eval_split"])
    eval_results = [
        EvalResult(
            task_type=task or "other", dataset_type=(datasets or [recipe.data_name])[0], dataset_name=recipe.data_name,
            dataset_split=split, metric_type=key.removeprefix("eval_"), metric_value=round(value, 4), metric_name=key,
        )
        for key, value in final.items() if key.startswith("eval_") and isinstance(value, (int, float))
    ]
    data = ModelCardData(
        library_name="transformers", license=card.get("license", "apache-2.0"),
        tags=["zooscope", arch.name, *card.get("tags", [])], datasets=datasets or None,
        pipeline_tag=task, model_name=recipe.repo_id, eval_results=eval_results or None,
    )
    expected = card.get("expected", {})
    sections = [f"# {recipe.repo_id}", "", recipe.description or arch.description, ""]

    warnings = _below_expected(final, expected)
    if warnings:
        sections += ["> [!WARNING]", "> **Below the recipe's expected result**: " + "; ".join(warnings) + ".", ""]
    if differences:
        rows = "; ".join(f"`{k}` = {_fmt_value(r)} (recipe: {_fmt_value(n)})" for k, n, r in differences)
        sections += ["> [!NOTE]", f"> **Trained with overrides** of `{recipe_path(recipe)}`: {rows}. "
                     "Everything below describes this run, not the recipe file.", ""]

    cite = f"[{paper['citation']}: *{paper['title']}*]({paper['url']})" if paper else card.get("paper", "")
    sections += [f"Architecture `{arch.name}` of the zooscope model zoo: {arch.description}."
                 + (f" Paper: {cite}." if cite else ""), ""]

    num_labels = (config or {}).get("num_labels") or len((config or {}).get("id2label") or {}) or None
    requirement = getattr(arch, "requirement_note", None) or (
        "The modeling code ships with the repo, so zooscope need not be installed "
        f"(needs torch and transformers; published with transformers {transformers.__version__}).")
    sections += ["## Usage", "", requirement, ""]
    if spec is not None:
        sections += [f"Input: {spec.describe()}. Preprocessing: {spec.about}", ""]
    for snippet in usage_snippets(recipe.repo_id, arch, spec, num_labels, has_image_processor):
        sections += ["```python", snippet.rstrip(), "```", ""]

    sections += ["## Results", "",
                 f"Measured on the `{split}` split of `{recipe.data_name}` ({metrics.get('num_processes', 1)} "
                 f"process(es), {metrics.get('train_time_s', 0):.0f} s of training, step {metrics.get('step', '?')} "
                 f"of {metrics.get('total_steps', '?')}), beside the recipe's expected value and the paper's number:", "",
                 "| metric | measured | expected | paper |", "|---|---|---|---|"]
    for key, value in final.items():
        if key.startswith("eval_") and isinstance(value, (int, float)):
            theirs = paper.get("value") if paper and paper.get("metric") == key else None
            sections.append(f"| {key} | {value:.4f} | {expected.get(key, '—')} | {'—' if theirs is None else theirs} |")
    sections.append("")
    if paper:
        sections += [f"The paper's number measures: {paper['claim'].strip()} Reproduced here: **{paper['reproduced']}**"
                     + (f" (see {paper['findings']})." if paper.get("findings") else "."), ""]
    if card.get("reference"):
        sections += [card["reference"], ""]
    if has_curves:
        sections += ["### Training curves", "", f"![training curves]({CURVES_PNG})", ""]

    sections += ["## Limitations", ""]
    limitations = [
        f"Trained and measured on `{recipe.data_name}` only; it has not been tested on any other data.",
        "A research replica trained at CPU scale in the zooscope zoo, not a production model.",
    ]
    if spec is not None:
        limitations.append(f"It expects inputs prepared as its training data was ({spec.describe()}); "
                           "other scales or shapes give meaningless outputs.")
    if paper and paper.get("reproduced") in ("partly", "no"):
        limitations.append(f"The paper's result reproduced only {paper['reproduced'] == 'partly' and 'partly' or 'not at all'} "
                           "at this scale; read the findings before relying on it.")
    limitations += [str(x) for x in card.get("limitations", [])]
    sections += [f"- {x}" for x in limitations] + [""]

    command = " ".join([f"accelerate launch train.py {recipe_path(recipe)}", *override_args(differences)])
    sections += ["## Training recipe", "", f"`{command}`", "", "```yaml", recipe.to_yaml().rstrip(), "```", ""]
    if paper:
        sections += ["## Citation", "", f"{paper['citation']}, *{paper['title']}*, {paper['url']}", ""]
        if paper.get("bibtex"):
            sections += ["```bibtex", paper["bibtex"].strip(), "```", ""]
    sections += ["## Files", "", "| file | sha256 |", "|---|---|"]
    sections += [f"| {name} | `{digest}` |" for name, digest in files_sha256.items()]
    body = "\n".join(sections) + "\n"
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


# --------------------------------------------------------------------------------------------
# Export, publish, push
# --------------------------------------------------------------------------------------------


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` at `target`; an old `target` is moved aside first and deleted only after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_repo(recipe: Recipe | str | Path, repo_dir: str | Path | None = None, output_dir: str | Path | None = None,
                return_differences: bool = False):
    """Build a Hub-ready repo folder from a recipe's trained output.

    The folder gets config.json (with `auto_map`), the architecture's configuration/modeling
    files, model.safetensors, metrics.json, the run's recipe.yaml, the training-curve PNG and a
    README.md model card. It is assembled in a temporary folder and moved into place whole.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    output_dir = Path(output_dir or recipe.resolved_output_dir())
    weights = output_dir / "model.safetensors"
    if not weights.exists() or not (output_dir / "config.json").exists():
        source = recipe.source or f"hub_configs/{recipe.id}.yaml"
        raise UserError(f"no trained model in {output_dir}; train it first with: accelerate launch train.py {source}")
    check_safetensors(weights)
    run = run_recipe(recipe, output_dir)
    differences = recipe_differences(recipe, run)
    arch = get_architecture(run.architecture)
    config = json.loads((output_dir / "config.json").read_text())
    # zoo.registry (models area) may add the transformers requirement and an image-processor config
    export_config = getattr(arch, "export_config", None)
    config = export_config(config) if export_config else {**config, "auto_map": arch.auto_map}
    processor_config = arch.preprocessor_config(config) if hasattr(arch, "preprocessor_config") else None
    metrics_path = output_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    spec = input_spec(run, arch)

    repo_dir = Path(repo_dir or DEFAULT_REPO_ROOT / recipe.id)
    repo_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=repo_dir.parent, prefix=f".{repo_dir.name}-") as tmp:
        tmp = Path(tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for code_file in arch.code_files:
            shutil.copyfile(code_file, tmp / code_file.name)
        shutil.copyfile(weights, tmp / "model.safetensors")
        extras = [name for name in EXTRA_REPO_FILES if (output_dir / name).is_file()]
        for name in extras:
            shutil.copyfile(output_dir / name, tmp / name)
        if processor_config and "preprocessor_config.json" not in extras:
            (tmp / "preprocessor_config.json").write_text(json.dumps(processor_config, indent=2, sort_keys=True) + "\n")
            extras.append("preprocessor_config.json")
        if metrics:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (tmp / "recipe.yaml").write_text(run.to_yaml())
        has_curves = plot_curves(metrics, tmp / CURVES_PNG)
        hashed = ["model.safetensors", "config.json", *(p.name for p in arch.code_files), *extras]
        if has_curves:
            hashed.append(CURVES_PNG)
        (tmp / "README.md").write_text(model_card(
            run, arch, metrics, {name: file_sha256(tmp / name) for name in hashed}, differences=differences,
            spec=spec, has_curves=has_curves, has_image_processor="preprocessor_config.json" in extras, config=config,
        ))
        tmp.chmod(0o755)
        _replace_dir(tmp, repo_dir)
        tmp.mkdir()  # TemporaryDirectory cleans up the (now empty) name it made
    if return_differences:
        return repo_dir, differences
    return repo_dir


def _fault_point(step: str) -> None:
    """Test hook: ``ZOO_PUBLISH_FAULT=<step>`` kills the process (SIGKILL: no cleanup runs) at `step`."""
    if os.environ.get("ZOO_PUBLISH_FAULT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


PUBLISH_STEPS = ("start", "blob-partial", "blob", "staging-partial", "staging", "snapshot", "ref-temp", "ref")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_cache_leftovers(storage: Path) -> list[Path]:
    """Remove what a killed publish left: `.staging-<pid>-*` snapshots, `*.incomplete` blobs, ref temp files
    (only those of processes that are gone: a publish running beside this one keeps its own)."""
    removed = []
    for pattern in ("snapshots/.staging-*", "blobs/*.incomplete-*", "refs/.main-*"):
        for path in storage.glob(pattern):
            match = re.search(r"(?:staging|incomplete|main)-(\d+)-", path.name)
            if match and _pid_alive(int(match.group(1))) and int(match.group(1)) != os.getpid():
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def publish_to_cache(repo_dir: str | Path, repo_id: str, cache_dir: str | Path | None = None) -> str:
    """Place a repo folder in the local Hugging Face cache as the snapshot of `refs/main`.

    The layout is the Hub's documented one: blobs named by ETag (sha256 for LFS files such as
    weights, git's blob sha1 otherwise), `snapshots/<revision>/` with links to the blobs, and
    `refs/main` holding the revision. The revision is a 40-hex digest of the repo's content, so
    republishing the same files gives the same revision.

    Killed at any point, the cache stays usable: every blob and the new snapshot are complete
    before they get their final names (one rename each), the old snapshot is never touched, and
    refs/main changes by one atomic rename, last. Leftovers of a killed run are removed by the
    next one. Returns the revision.
    """
    repo_dir = Path(repo_dir)
    storage = cache_storage(repo_id, cache_dir)
    files = sorted(p for p in repo_dir.rglob("*") if p.is_file())
    etags = {p: (file_sha256(p) if p.suffix == ".safetensors" else git_blob_sha1(p)) for p in files}
    manifest = "\n".join(f"{p.relative_to(repo_dir).as_posix()} {etags[p]}" for p in files)
    revision = hashlib.sha1(manifest.encode()).hexdigest()
    for sub in ("blobs", "snapshots", "refs"):
        (storage / sub).mkdir(parents=True, exist_ok=True)
    clean_cache_leftovers(storage)
    _fault_point("start")
    snapshot = storage / "snapshots" / revision
    tag = f"{os.getpid()}-{os.urandom(4).hex()}"
    for path in files:
        blob = storage / "blobs" / etags[path]
        if not blob.exists():
            partial = blob.with_name(f"{blob.name}.incomplete-{tag}")
            with open(path, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
                _fault_point("blob-partial")
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(partial, blob)
            _fault_point("blob")
    if not snapshot.is_dir():  # an existing one was completed before its rename: same revision, same files
        staging = storage / "snapshots" / f".staging-{tag}"
        staging.mkdir(mode=0o755)
        for i, path in enumerate(files):
            blob = storage / "blobs" / etags[path]
            link = staging / path.relative_to(repo_dir)
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                link.symlink_to(os.path.relpath(blob, link.parent))
            except OSError:  # no symlinks (e.g. Windows without developer mode): copy, as huggingface_hub does
                shutil.copyfile(blob, link)
            if i == 0:
                _fault_point("staging-partial")
        _fault_point("staging")
        os.replace(staging, snapshot)
    _fault_point("snapshot")
    ref_tmp = storage / "refs" / f".main-{tag}"
    ref_tmp.write_text(revision)
    _fault_point("ref-temp")
    os.replace(ref_tmp, storage / "refs" / "main")
    _fault_point("ref")
    return revision


def push_to_hub(repo_dir: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload a repo folder with huggingface_hub (needs a token: `hf auth login` or $HF_TOKEN)."""
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        raise UserError("--push needs a Hugging Face token: run `hf auth login` or set $HF_TOKEN")
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    commit = api.upload_folder(folder_path=str(repo_dir), repo_id=repo_id, commit_message="Publish with zooscope")
    return commit.commit_url


def publish(recipe: Recipe | str | Path, push: bool = False, repo_dir: str | Path | None = None,
            output_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> PublishResult:
    """Export a trained run, place it in the local cache, and optionally push it to the Hub."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    folder, differences = export_repo(recipe, repo_dir=repo_dir, output_dir=output_dir, return_differences=True)
    result = PublishResult(recipe.repo_id, folder, revision=publish_to_cache(folder, recipe.repo_id, cache_dir),
                           overrides=tuple(override_args(differences)))
    if push:
        result.url = push_to_hub(folder, recipe.repo_id)
    return result


# --------------------------------------------------------------------------------------------
# Loading by name
# --------------------------------------------------------------------------------------------


def check_cached_weights(repo_id: str, revision: str | None = None) -> None:
    """A UserError when the cached snapshot's weights cannot be whole (a download or copy cut short)."""
    snapshot = cached_snapshot(repo_id, revision)
    if snapshot is None:
        return
    for weights in sorted(snapshot.glob("*.safetensors")):
        problem = safetensors_size_problem(weights)
        if problem:
            raise UserError(f"{repo_id}: {weights.name} in the local cache is corrupt ({problem}; {weights.resolve()}); "
                            f"publish it again (zoo publish {repo_id.split('/')[-1]}) or delete "
                            f"{cache_storage(repo_id)}")


def load_pretrained(name: str, trust_remote_code: bool | None = None, revision: str | None = None, **kwargs):
    """Load a zoo checkpoint by name ("zooscope/<id>" or "<id>") with transformers' AutoModel.

    The repo's own code runs only when `remote_code_trust` vouches for it (byte-identical to the
    installed architecture, or a pinned revision) or when the caller passes
    ``trust_remote_code=True``. Offline (or with no network, found by one quick probe) only the
    local cache is read, so a miss fails at once.
    """
    from transformers import AutoModel

    repo_id = _repo_id(name)
    short = repo_id.split("/")[-1]
    if cached_snapshot(repo_id, revision) is None and not hub_reachable():
        raise UserError(f"cannot load {repo_id!r}: not in the local Hugging Face cache, and the Hub is not "
                        f"reachable (publish it first: zoo publish {short})")
    if trust_remote_code is None:
        trusted, why = remote_code_trust(repo_id, revision)
        if not trusted:
            raise UserError(f"not running the code of {repo_id!r} automatically: {why}; pass "
                            "trust_remote_code=True (zoo evaluate --trust-remote-code) or a pinned 40-hex "
                            "revision if you trust it")
        trust_remote_code = True
    check_cached_weights(repo_id, revision)
    if not hub_reachable():
        kwargs.setdefault("local_files_only", True)
    factory = AutoModel
    snapshot = cached_snapshot(repo_id, revision)
    from . import registry

    auto_class_for = getattr(registry, "auto_class_for", None)  # the models area's, once merged
    if auto_class_for is not None and snapshot is not None:
        # AutoModel gives the backbone where the models area split one off; the task model has the head
        factory = auto_class_for(json.loads((snapshot / "config.json").read_text()))
    try:
        return factory.from_pretrained(repo_id, trust_remote_code=trust_remote_code, revision=revision, **kwargs)
    except OSError as error:
        raise UserError(f"cannot load {repo_id!r}: {str(error).splitlines()[0]} "
                        f"(publish it first: zoo publish {short})") from None
    except Exception as error:  # safetensors' own error types vary between versions; report the file, not a traceback
        if type(error).__name__ == "SafetensorError" or "safetensors" in type(error).__module__:
            raise UserError(f"{repo_id}: its weights cannot be read ({str(error).splitlines()[0]}); "
                            f"publish it again (zoo publish {short})") from None
        raise


def recipe_repo_prefix() -> str:
    return f"{HUB_ORG}/"
