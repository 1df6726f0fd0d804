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

from .card import CURVES_PNG, DIAGRAM_PNG, draw_card_diagram, input_spec, model_card, override_args, plot_curves
from .errors import UserError
from .recipes import HUB_ORG, Recipe, load_recipe

DEFAULT_REPO_ROOT = Path("hub_repos")
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
    with the run's recipe (but for the keys a trainer that saves another model lists in
    metrics.json's "saved_config_changes"), or a run of another recipe, is a UserError: the card would lie.
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
    # a trainer that saves another model than the recipe's (n2n: the best student) names what it changed
    metrics_path = output_dir / "metrics.json"
    changed = (json.loads(metrics_path.read_text()).get("saved_config_changes") or {}) if metrics_path.exists() else {}
    expected = {**run.config, **changed}
    mismatched = [(k, v, config.get(k)) for k, v in expected.items() if k in config and _jsonable(v) != config[k]]
    if mismatched:
        detail = ", ".join(f"{k}: config.json {c!r} vs recipe {v!r}" for k, v, c in mismatched)
        raise UserError(f"{output_dir} was not trained with {origin}: {detail}; publish the recipe that made "
                        "these weights (or train this one again)")
    return run


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
        has_diagram = draw_card_diagram(tmp, tmp / DIAGRAM_PNG)
        hashed = ["model.safetensors", "config.json", *(p.name for p in arch.code_files), *extras]
        hashed += [name for name, drawn in ((CURVES_PNG, has_curves), (DIAGRAM_PNG, has_diagram)) if drawn]
        (tmp / "README.md").write_text(model_card(
            run, arch, metrics, {name: file_sha256(tmp / name) for name in hashed}, differences=differences,
            spec=spec, has_curves=has_curves, has_image_processor="preprocessor_config.json" in extras, config=config,
            has_diagram=has_diagram,
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
