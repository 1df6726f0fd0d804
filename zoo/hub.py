"""From a trained recipe to a Hub repo: export (code + safetensors + card), local publish, push, load.

A published repo is loadable by name without zooscope installed:
``AutoModel.from_pretrained("zooscope/<id>", trust_remote_code=True)``. Offline, `publish_to_cache`
places it in the local Hugging Face cache exactly as a download would (blobs, a snapshot named
by a 40-hex revision, refs/main), so loading by name works the same way.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .recipes import Recipe, load_recipe
from .registry import get_architecture

AUTO_CLASS_TO_PIPELINE_TAG = {
    "AutoModelForImageClassification": "image-classification",
    "AutoModelForSequenceClassification": "text-classification",
    "AutoModelForCausalLM": "text-generation",
}
DEFAULT_REPO_ROOT = Path("hub_repos")


@dataclass
class PublishResult:
    repo_id: str
    repo_dir: Path
    revision: str | None = None  # the local cache snapshot
    url: str | None = None  # after --push


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


def _model_card(recipe: Recipe, arch, metrics: dict, weights_sha256: str) -> str:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    card = recipe.card
    task = card.get("task") or arch.task  # the registry's pipeline tag (two_layer_mlp: tabular-classification)
    final = metrics.get("final", {})
    datasets = card.get("datasets") or []
    eval_results = [
        EvalResult(
            task_type=task or "other", dataset_type=(datasets or [recipe.data_name])[0], dataset_name=recipe.data_name,
            dataset_split=recipe.data.get("eval_split", recipe.training["eval_split"]),
            metric_type=key.removeprefix("eval_"), metric_value=round(value, 4), metric_name=key,
        )
        for key, value in final.items() if key.startswith("eval_")
    ]
    data = ModelCardData(
        library_name="transformers", license=card.get("license", "apache-2.0"),
        tags=["zooscope", arch.name, *card.get("tags", [])], datasets=datasets or None,
        pipeline_tag=task, model_name=recipe.repo_id, eval_results=eval_results or None,
    )
    expected = card.get("expected", {})
    rows = "\n".join(
        f"| {key} | {value:.4f} | {expected.get(key, '—')} |" for key, value in final.items() if key.startswith("eval_")
    )
    paper = f"Paper: {card['paper']}." if card.get("paper") else ""
    body = f"""
# {recipe.repo_id}

{recipe.description or arch.description}

Architecture `{arch.name}` of the zooscope model zoo: {arch.description}. {paper}

## Usage

The modeling code ships with the repo, so zooscope need not be installed:

```python
from transformers import AutoModel

model = AutoModel.from_pretrained("{recipe.repo_id}", trust_remote_code=True)
```

## Results

Measured on `{recipe.data_name}` ({metrics.get('num_processes', 1)} process(es), {metrics.get('train_time_s', 0):.0f} s of training), beside the expected value:

| metric | measured | expected |
|---|---|---|
{rows}

{card.get('reference', '')}

## Training recipe

`accelerate launch train.py hub_configs/{recipe.id}.yaml`

```yaml
{recipe.to_yaml().rstrip()}
```

## Files

| file | sha256 |
|---|---|
| model.safetensors | `{weights_sha256}` |
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def export_repo(recipe: Recipe | str | Path, repo_dir: str | Path | None = None, output_dir: str | Path | None = None) -> Path:
    """Build a Hub-ready repo folder from a recipe's trained output.

    The folder gets config.json (with `auto_map`), the architecture's configuration/modeling
    files, model.safetensors, metrics.json, recipe.yaml and a README.md model card. It is
    assembled in a temporary folder and moved into place whole.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    arch = get_architecture(recipe.architecture)
    output_dir = Path(output_dir or recipe.resolved_output_dir())
    weights = output_dir / "model.safetensors"
    if not weights.exists() or not (output_dir / "config.json").exists():
        source = recipe.source or f"hub_configs/{recipe.id}.yaml"
        raise UserError(f"no trained model in {output_dir}; train it first with: accelerate launch train.py {source}")
    check_safetensors(weights)
    config = json.loads((output_dir / "config.json").read_text())
    config = arch.export_config(config)  # + auto_map and min_transformers_version (zoo.registry)
    processor_config = arch.preprocessor_config(config)  # image classifiers: for pipeline()/AutoImageProcessor
    metrics_path = output_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}

    repo_dir = Path(repo_dir or DEFAULT_REPO_ROOT / recipe.id)
    repo_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=repo_dir.parent, prefix=f".{repo_dir.name}-") as tmp:
        tmp = Path(tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for code_file in arch.code_files:
            shutil.copyfile(code_file, tmp / code_file.name)
        if processor_config:
            (tmp / "preprocessor_config.json").write_text(json.dumps(processor_config, indent=2, sort_keys=True) + "\n")
        shutil.copyfile(weights, tmp / "model.safetensors")
        if metrics:
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (tmp / "recipe.yaml").write_text(recipe.to_yaml())
        (tmp / "README.md").write_text(_model_card(recipe, arch, metrics, file_sha256(tmp / "model.safetensors")))
        if repo_dir.exists():
            shutil.rmtree(repo_dir)
        tmp.chmod(0o755)
        os.replace(tmp, repo_dir)
        tmp.mkdir()  # TemporaryDirectory cleans up the (now empty) name it made
    return repo_dir


def publish_to_cache(repo_dir: str | Path, repo_id: str, cache_dir: str | Path | None = None) -> str:
    """Place a repo folder in the local Hugging Face cache as the snapshot of `refs/main`.

    The layout is the Hub's documented one: blobs named by ETag (sha256 for LFS files such as
    weights, git's blob sha1 otherwise), `snapshots/<revision>/` with links to the blobs, and
    `refs/main` holding the revision. The revision is a 40-hex digest of the repo's content, so
    republishing the same files gives the same revision. Returns the revision.
    """
    from huggingface_hub import constants

    repo_dir = Path(repo_dir)
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    files = sorted(p for p in repo_dir.rglob("*") if p.is_file())
    etags = {p: (file_sha256(p) if p.suffix == ".safetensors" else git_blob_sha1(p)) for p in files}
    manifest = "\n".join(f"{p.relative_to(repo_dir).as_posix()} {etags[p]}" for p in files)
    revision = hashlib.sha1(manifest.encode()).hexdigest()
    for sub in ("blobs", "snapshots", "refs"):
        (storage / sub).mkdir(parents=True, exist_ok=True)
    snapshot = storage / "snapshots" / revision
    staging = Path(tempfile.mkdtemp(dir=storage / "snapshots", prefix=".staging-"))
    staging.chmod(0o755)
    try:
        for path in files:
            blob = storage / "blobs" / etags[path]
            if not blob.exists():
                shutil.copyfile(path, blob.with_suffix(".incomplete"))
                os.replace(blob.with_suffix(".incomplete"), blob)
            link = staging / path.relative_to(repo_dir)
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                link.symlink_to(os.path.relpath(blob, link.parent))
            except OSError:  # no symlinks (e.g. Windows without developer mode): copy, as huggingface_hub does
                shutil.copyfile(blob, link)
        if snapshot.exists():
            shutil.rmtree(snapshot)
        os.replace(staging, snapshot)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (storage / "refs" / "main").write_text(revision)
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
    """Export a trained recipe, place it in the local cache, and optionally push it to the Hub."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    folder = export_repo(recipe, repo_dir=repo_dir, output_dir=output_dir)
    result = PublishResult(recipe.repo_id, folder, revision=publish_to_cache(folder, recipe.repo_id, cache_dir))
    if push:
        result.url = push_to_hub(folder, recipe.repo_id)
    return result


def load_pretrained(name: str, **kwargs):
    """Load a zoo checkpoint by name ("zooscope/<id>" or "<id>") with transformers' AutoModel.

    Our own repos carry our own modeling code, so trust_remote_code is on for them only.
    """
    from transformers import AutoConfig

    from .registry import auto_class_for

    repo_id = name if "/" in name else f"{recipe_repo_prefix()}{name}"
    trust = repo_id.startswith(recipe_repo_prefix())
    try:
        # AutoModel gives the backbone; the task model (with its head) comes from the task Auto class
        auto = auto_class_for(AutoConfig.from_pretrained(repo_id, trust_remote_code=trust))
        return auto.from_pretrained(repo_id, trust_remote_code=trust, **kwargs)
    except OSError as error:
        raise UserError(f"cannot load {repo_id!r}: {str(error).splitlines()[0]} "
                        f"(publish it first: zoo publish {repo_id.split('/')[-1]})") from None


def recipe_repo_prefix() -> str:
    from .recipes import HUB_ORG

    return f"{HUB_ORG}/"

