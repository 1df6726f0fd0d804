"""Publishing: repo contents, the local cache layout, loading by name offline, bad input."""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml

from zoo import UserError
from zoo.hub import export_repo, publish

from .conftest import TINY_RECIPE, run, run_python


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny recipe trained once (in-process would pin accelerate's state, so a subprocess)."""
    folder = tmp_path_factory.mktemp("trained")
    recipe = folder / f"{TINY_RECIPE['id']}.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_RECIPE, "training": {**TINY_RECIPE["training"], "epochs": 1}}))
    proc = run([sys.executable, "train.py", str(recipe), f"output_dir={folder / 'out'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe, folder / "out"


def test_repo_folder_and_model_card(trained, tmp_path):
    from huggingface_hub import ModelCard

    recipe, out = trained
    repo = export_repo(recipe, repo_dir=tmp_path / "repo", output_dir=out)
    assert sorted(p.name for p in repo.iterdir()) == sorted([
        "README.md", "config.json", "configuration_mlp.py", "modeling_mlp.py", "model.safetensors", "metrics.json", "recipe.yaml",
        "training_curves.png",
    ])
    config = json.loads((repo / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_mlp.MLPForImageClassification"
    assert config["auto_map"]["AutoModelForImageClassification"] == "modeling_mlp.MLPForImageClassification"
    card = ModelCard.load(repo / "README.md")
    assert card.data.library_name == "transformers" and card.data.license == "apache-2.0"
    assert "zooscope" in card.data.tags and card.data.pipeline_tag == "image-classification"
    final = json.loads((out / "metrics.json").read_text())["final"]
    reported = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert reported["eval_accuracy"] == pytest.approx(final["eval_accuracy"], abs=1e-4)
    sha = hashlib.sha256((repo / "model.safetensors").read_bytes()).hexdigest()
    assert sha in card.text
    assert 'AutoModel.from_pretrained("zooscope/tiny-mlp-digits", trust_remote_code=True)' in card.text
    # the architecture's files are copied verbatim: they are the remote code
    from zoo.models.mlp import modeling_mlp

    assert (repo / "modeling_mlp.py").read_text() == Path(modeling_mlp.__file__).read_text()


def test_publish_to_cache_and_load_by_name_offline(trained, tmp_path, hf_env):
    recipe, out = trained
    result = publish(recipe, repo_dir=tmp_path / "repo", output_dir=out)
    storage = Path(hf_env["HF_HUB_CACHE"]) / "models--zooscope--tiny-mlp-digits"
    assert re.fullmatch(r"[0-9a-f]{40}", result.revision)
    assert (storage / "refs" / "main").read_text() == result.revision
    snapshot = storage / "snapshots" / result.revision
    weights = snapshot / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().name == hashlib.sha256(weights.read_bytes()).hexdigest()
    # republishing the same files gives the same revision
    assert publish(recipe, repo_dir=tmp_path / "repo", output_dir=out).revision == result.revision

    from transformers import AutoModel

    local = AutoModel.from_pretrained(out).eval()
    x = torch.rand(3, 1, 8, 8)
    torch.save({"x": x}, tmp_path / "x.pt")
    code = f"""
import json, torch
from transformers import AutoModel
model = AutoModel.from_pretrained("zooscope/tiny-mlp-digits", trust_remote_code=True).eval()
x = torch.load(r"{tmp_path / 'x.pt'}", weights_only=True)["x"]
print(json.dumps({{"module": type(model).__module__, "logits": model(pixel_values=x).logits.tolist()}}))
"""
    proc = run_python(code, env=hf_env, block_zoo=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["module"].startswith("transformers_modules.") and result.revision in got["module"]  # remote code of that snapshot
    torch.testing.assert_close(torch.tensor(got["logits"]), local(pixel_values=x).logits, rtol=1e-6, atol=1e-6)


def test_zoo_evaluate_by_name_reproduces_the_training_metrics(trained, tmp_path, hf_env):
    recipe, out = trained
    publish(recipe, repo_dir=tmp_path / "repo", output_dir=out)
    proc = run(["zoo", "evaluate", "tiny-mlp-digits"], env=hf_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    measured = json.loads(proc.stdout)
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert measured["model"] == "zooscope/tiny-mlp-digits"
    assert measured["eval_accuracy"] == pytest.approx(final["eval_accuracy"], abs=1e-9)
    assert measured["eval_loss"] == pytest.approx(final["eval_loss"], rel=1e-5)


def test_publish_without_training_names_the_command(tiny_recipe, tmp_path):
    with pytest.raises(UserError, match="accelerate launch train.py"):
        export_repo(tiny_recipe(), repo_dir=tmp_path / "repo", output_dir=tmp_path / "nothing")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_weights_are_refused_and_nothing_is_written(trained, tmp_path, hf_env, damage):
    import shutil

    recipe, out = trained
    broken = tmp_path / "broken"
    shutil.copytree(out, broken, ignore=shutil.ignore_patterns("checkpoints"))
    data = (broken / "model.safetensors").read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = b"\x00\xff" * 8 + data[16:]  # overwrite the header length and start
    (broken / "model.safetensors").write_bytes(data)
    proc = run(["zoo", "publish", str(recipe), "--output-dir", str(broken), "--repo-dir", str(tmp_path / "repo")],
               env=hf_env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "corrupt or truncated" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "repo").exists()
    assert not (Path(hf_env["HF_HUB_CACHE"]) / "models--zooscope--tiny-mlp-digits").exists()


def test_loading_an_unpublished_name_is_a_clear_error(hf_env, tmp_path):
    proc = run(["zoo", "evaluate", "no-such-model"], env=hf_env, cwd=tmp_path)
    assert proc.returncode == 2 and "cannot load 'zooscope/no-such-model'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_push_without_token_is_a_clear_error(trained, tmp_path, monkeypatch):
    from zoo.hub import push_to_hub

    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(UserError, match="token"):
        push_to_hub(tmp_path, "zooscope/x")


def test_push_uploads_the_repo_folder_with_hf_api(trained, tmp_path, monkeypatch):
    """--push goes through huggingface_hub's HfApi (recorded here: the Hub is unreachable)."""
    import huggingface_hub

    calls = []

    class RecordingApi:
        def __init__(self, token):
            calls.append(("init", token))

        def create_repo(self, repo_id, exist_ok, private):
            calls.append(("create_repo", repo_id, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload_folder", sorted(p.name for p in Path(folder_path).iterdir()), repo_id))
            return type("Commit", (), {"commit_url": f"https://hub.example/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test_token")
    recipe, out = trained
    result = publish(recipe, push=True, repo_dir=tmp_path / "repo", output_dir=out, cache_dir=tmp_path / "cache")
    assert calls[0] == ("init", "hf_test_token")
    assert calls[1] == ("create_repo", "zooscope/tiny-mlp-digits", True)
    assert calls[2][0] == "upload_folder" and "model.safetensors" in calls[2][1] and "README.md" in calls[2][1]
    assert result.url.endswith("/commit/1")
