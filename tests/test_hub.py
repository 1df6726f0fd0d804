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
    from zoo import get_architecture

    code = {p.name for p in get_architecture("mlp").code_files}  # the architecture's import closure
    assert {"configuration_mlp.py", "modeling_mlp.py"} <= code
    names = {p.name for p in repo.iterdir()} - {"preprocessor_config.json"}  # the models area adds that one
    assert names == code | {"README.md", "config.json", "model.safetensors", "metrics.json", "recipe.yaml",
                            "training_curves.png", "circuit_diagram.png"}
    config = json.loads((repo / "config.json").read_text())
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
    assert config["auto_map"]["AutoModelForImageClassification"] == "modeling_mlp.MLPForImageClassification"
    card = ModelCard.load(repo / "README.md")
    assert card.data.library_name == "transformers" and card.data.license == "apache-2.0"
    assert "zooscope" in card.data.tags and card.data.pipeline_tag == "image-classification"
    final = json.loads((out / "metrics.json").read_text())["final"]
    reported = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert reported["eval_accuracy"] == pytest.approx(final["eval_accuracy"], abs=1e-4)
    sha = hashlib.sha256((repo / "model.safetensors").read_bytes()).hexdigest()
    assert sha in card.text
    assert 'AutoModelForImageClassification.from_pretrained("zooscope/tiny-mlp-digits", trust_remote_code=True)' in card.text
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

    # the task class: AutoModel gives the backbone once the models area has split one off
    from transformers import AutoModelForImageClassification

    local = AutoModelForImageClassification.from_pretrained(out).eval()
    x = torch.rand(3, 1, 8, 8)
    torch.save({"x": x}, tmp_path / "x.pt")
    code = f"""
import json, torch
from transformers import AutoModelForImageClassification
model = AutoModelForImageClassification.from_pretrained("zooscope/tiny-mlp-digits", trust_remote_code=True).eval()
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


# ---------------------------------------------------------------------------------------------
# Round 2: the card describes the run, atomic cache swaps, trust, fast offline misses, damaged caches
# ---------------------------------------------------------------------------------------------

OVERRIDES = ["training.epochs=1", "config.hidden_sizes=[64]"]


@pytest.fixture(scope="module")
def trained_with_overrides(tmp_path_factory):
    """The tiny recipe (2 epochs, hidden [16]) trained with overrides: 1 epoch, hidden [64]."""
    folder = tmp_path_factory.mktemp("overridden")
    recipe = folder / f"{TINY_RECIPE['id']}.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_RECIPE, "card": {"expected": {"eval_accuracy": 0.999}}}))
    proc = run([sys.executable, "train.py", str(recipe), *OVERRIDES, f"output_dir={folder / 'out'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe, folder / "out"


def _usage_snippets(readme: str) -> list[str]:
    usage = readme.split("## Usage", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", usage, flags=re.S)


def test_publish_describes_the_run_that_made_the_weights(trained_with_overrides, tmp_path, hf_env):
    from huggingface_hub import ModelCard

    recipe, out = trained_with_overrides
    assert yaml.safe_load(recipe.read_text())["training"]["epochs"] == 2  # the named recipe says 2 epochs, [16]
    result = publish(recipe, repo_dir=tmp_path / "repo", output_dir=out)
    published = yaml.safe_load((result.repo_dir / "recipe.yaml").read_text())
    assert published["training"]["epochs"] == 1 and published["config"]["hidden_sizes"] == [64]
    assert json.loads((result.repo_dir / "config.json").read_text())["hidden_sizes"] == [64]
    assert sorted(result.overrides) == sorted(OVERRIDES)
    text = ModelCard.load(result.repo_dir / "README.md").text
    assert "Trained with overrides" in text
    assert "`training.epochs` = 1 (recipe: 2)" in text and "`config.hidden_sizes` = [64] (recipe: [16])" in text
    command = re.search(r"`accelerate launch train.py [^`]*`", text).group(0)
    assert all(o in command for o in OVERRIDES)
    assert "epochs: 2" not in text.split("## Training recipe", 1)[1]
    # the CLI says so too
    proc = run(["zoo", "publish", str(recipe), "--output-dir", str(out), "--repo-dir", str(tmp_path / "repo2")],
               env=hf_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "overrides" in proc.stdout and "config.hidden_sizes=[64]" in proc.stdout


def test_publish_refuses_weights_that_do_not_match_the_recipe(trained_with_overrides, tmp_path):
    import shutil

    recipe, out = trained_with_overrides
    # config.json disagrees with the run's own recipe.yaml: the folder is inconsistent
    broken = tmp_path / "broken"
    shutil.copytree(out, broken, ignore=shutil.ignore_patterns("checkpoints"))
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "hidden_sizes": [32]}))
    with pytest.raises(UserError, match=r"hidden_sizes: config.json \[32\] vs recipe \[64\]"):
        export_repo(recipe, repo_dir=tmp_path / "repo", output_dir=broken)
    # no recipe.yaml in the run (an old output): the named recipe must match config.json
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "recipe.yaml").unlink()
    with pytest.raises(UserError, match="was not trained with"):
        export_repo(recipe, repo_dir=tmp_path / "repo", output_dir=broken)
    assert not (tmp_path / "repo").exists()


def test_card_usage_snippet_runs_without_zoo_and_shows_the_real_input(trained, tmp_path, hf_env):
    recipe, out = trained
    result = publish(recipe, repo_dir=tmp_path / "repo", output_dir=out)
    readme = (result.repo_dir / "README.md").read_text()
    assert "`pixel_values`: a float32 tensor of shape `(batch, 1, 8, 8)`, values in [0, 1]" in readme
    snippets = _usage_snippets(readme)
    assert snippets and "torch.rand(4, 1, 8, 8)" in snippets[0]
    if (result.repo_dir / "preprocessor_config.json").exists():  # an image processor: pipeline() works, the card shows it
        assert any('pipeline("image-classification", model="zooscope/tiny-mlp-digits"' in s for s in snippets)
    for snippet in snippets:
        proc = run_python(snippet, env=hf_env, block_zoo=True, cwd=tmp_path)
        assert proc.returncode == 0, f"{snippet}\n{proc.stderr[-3000:]}"
    assert "torch.Size([4, 10])" in run_python(snippets[0], env=hf_env, block_zoo=True, cwd=tmp_path).stdout
    assert "## Limitations" in readme


def test_card_has_paper_citation_and_warns_below_expected(trained_with_overrides, tmp_path):
    recipe, out = trained_with_overrides
    paper = {"title": "A Paper", "citation": "Someone et al. 2024", "url": "https://arxiv.org/abs/2401.00001",
             "bibtex": "@article{someone2024, title={A Paper}}", "claim": "test accuracy on digits",
             "metric": "eval_accuracy", "value": 0.97, "reproduced": "partly"}
    final = json.loads((out / "metrics.json").read_text())["final"]
    for expected, warned in ((0.999, True), (round(final["eval_accuracy"] - 0.05, 3), False)):
        named = tmp_path / f"{expected}" / recipe.name
        named.parent.mkdir()
        named.write_text(yaml.safe_dump({**yaml.safe_load(recipe.read_text()), "paper": paper,
                                         "card": {"expected": {"eval_accuracy": expected}}}))
        text = (export_repo(named, repo_dir=tmp_path / f"repo{expected}", output_dir=out) / "README.md").read_text()
        assert ("[!WARNING]" in text and "Below the recipe's expected result" in text) is warned
        if warned:
            assert f"eval_accuracy {final['eval_accuracy']:.4f} measured, the recipe expects at least 0.999" in text
        assert "[Someone et al. 2024: *A Paper*](https://arxiv.org/abs/2401.00001)" in text
        assert "```bibtex\n@article{someone2024, title={A Paper}}\n```" in text
        assert f"| eval_accuracy | {final['eval_accuracy']:.4f} | {expected} | 0.97 |" in text
        assert "reproduced only partly" in text


def test_card_embeds_the_curve_plot(trained, tmp_path):
    import shutil

    from zoo.card import _curve_rows, plot_curves

    recipe, out = trained
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("checkpoints"))
    metrics = json.loads((copy / "metrics.json").read_text())
    curves = [{"step": s, "epoch": s / 22, "train_loss": 2.3 / (1 + s), "eval_loss": 2.3 / (1 + s) + 0.1,
               "eval_accuracy": min(1.0, 0.1 + s / 25)} for s in range(1, 23)]
    (copy / "metrics.json").write_text(json.dumps({**metrics, "curves": curves}))
    assert _curve_rows({**metrics, "curves": curves}) == (curves, "per evaluation step")
    assert _curve_rows(metrics)[1] == "per epoch"  # no curves: the per-epoch history
    repo = export_repo(recipe, repo_dir=tmp_path / "repo", output_dir=copy)
    png = repo / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (repo / "README.md").read_text()
    assert "![training curves](training_curves.png)" in readme
    assert hashlib.sha256(png.read_bytes()).hexdigest() in readme
    # the architecture's circuit diagram, drawn from the repo's own config (tests/test_diagram.py checks its content)
    diagram = repo / "circuit_diagram.png"
    assert diagram.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "![neural circuit diagram](circuit_diagram.png)" in readme
    assert hashlib.sha256(diagram.read_bytes()).hexdigest() in readme
    # the plot is drawn from the curves: per-epoch history alone gives another picture
    plot_curves(metrics, tmp_path / "history.png")
    assert (tmp_path / "history.png").read_bytes() != png.read_bytes()


def _fake_repo(folder: Path, marker: str) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "mlp", "marker": marker}))
    (folder / "README.md").write_text(f"# {marker}\n")
    save_file({"w": torch.full((64, 64), float(len(marker)))}, str(folder / "model.safetensors"))
    return folder


def _assert_ref_points_at_a_complete_snapshot(storage: Path, repos: dict[str, Path]) -> str:
    """refs/main names a snapshot whose files are exactly one of `repos`' and all readable; returns which."""
    from safetensors.torch import load_file

    revision = (storage / "refs" / "main").read_text()
    snapshot = storage / "snapshots" / revision
    names = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_symlink() or p.is_file())
    for which, repo in repos.items():
        if names == sorted(p.name for p in repo.iterdir()) and all(
                (snapshot / n).read_bytes() == (repo / n).read_bytes() for n in names):
            load_file(str(snapshot / "model.safetensors"))
            return which
    raise AssertionError(f"refs/main -> {revision}: {names} is no complete published repo")


@pytest.mark.parametrize("same_content", [False, True], ids=["new-revision", "same-revision"])
def test_a_killed_republish_never_leaves_refs_main_dangling(tmp_path, same_content):
    import os
    import signal

    from zoo.hub import PUBLISH_STEPS, publish_to_cache

    def leftovers():
        return [p for p in storage.rglob("*") if p.name.startswith((".staging-", ".main-")) or ".incomplete-" in p.name]

    cache = tmp_path / "cache"
    old = _fake_repo(tmp_path / "old", "old")
    new = old if same_content else _fake_repo(tmp_path / "new", "newer")
    storage = cache / "models--zooscope--x"
    publish_to_cache(old, "zooscope/x", cache)
    left_behind = set()
    for step in PUBLISH_STEPS:
        pid = os.fork()
        if pid == 0:  # the child publishes and is SIGKILLed at `step`: no finally, no cleanup runs
            os.environ["ZOO_PUBLISH_FAULT"] = step
            try:
                publish_to_cache(new, "zooscope/x", cache)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        # Republishing the same files writes no blob and no snapshot: those steps never come.
        skipped = same_content and step in ("blob-partial", "blob", "staging-partial", "staging")
        if skipped:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, step
        else:
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"publish not killed at {step!r}"
        which = _assert_ref_points_at_a_complete_snapshot(storage, {"old": old, "new": new})
        if not same_content:  # (with the same content both names are one repo)
            assert which == ("new" if step == "ref" else "old"), step
        if leftovers():
            left_behind.add(step)
        # the next publish clears what the killed one left behind, and puts the old repo back
        publish_to_cache(old, "zooscope/x", cache)
        assert not leftovers(), step
        assert _assert_ref_points_at_a_complete_snapshot(storage, {"old": old}) == "old"
    expected = {"ref-temp"} | (set() if same_content else {"blob-partial", "staging-partial", "staging"})
    assert left_behind == expected
    revision = publish_to_cache(new, "zooscope/x", cache)
    assert (storage / "refs" / "main").read_text() == revision
    assert _assert_ref_points_at_a_complete_snapshot(storage, {"new": new}) == "new"


def test_remote_code_trust_compares_the_code_with_the_installed_package(trained, tmp_path, hf_env):
    import os

    from zoo.hub import load_pretrained, remote_code_trust

    recipe, out = trained
    result = publish(recipe, repo_dir=tmp_path / "repo", output_dir=out)
    trusted, why = remote_code_trust("zooscope/tiny-mlp-digits")
    assert trusted and "identical" in why
    assert type(load_pretrained("tiny-mlp-digits")).__name__ == "MLPForImageClassification"
    # tamper with the cached modeling file (as whoever can write to the org or the cache could)
    snapshot = Path(hf_env["HF_HUB_CACHE"]) / "models--zooscope--tiny-mlp-digits" / "snapshots" / result.revision
    modeling = snapshot / "modeling_mlp.py"
    text = modeling.read_text()
    modeling.unlink()
    modeling.write_text(text + "\nimport os  # anything could run here\n")
    trusted, why = remote_code_trust("zooscope/tiny-mlp-digits")
    assert not trusted and "modeling_mlp.py differ" in why
    with pytest.raises(UserError, match="not running the code of 'zooscope/tiny-mlp-digits' automatically: .*modeling_mlp.py differ"):
        load_pretrained("tiny-mlp-digits")
    # a pinned revision is the caller's explicit choice of exactly this code
    assert remote_code_trust("zooscope/tiny-mlp-digits", revision=result.revision)[0]
    # the CLI: one line saying why; the explicit flag runs it
    proc = run(["zoo", "evaluate", "tiny-mlp-digits"], env=hf_env, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "modeling_mlp.py differ" in proc.stderr
    proc = run(["zoo", "evaluate", "tiny-mlp-digits", "--trust-remote-code"], env=hf_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["model"] == "zooscope/tiny-mlp-digits"
    # a code file that is not ours, or one that is missing (it would be fetched unverified)
    modeling.unlink()
    modeling.symlink_to(os.path.relpath(Path(result.repo_dir) / "modeling_mlp.py", snapshot))
    assert remote_code_trust("zooscope/tiny-mlp-digits")[0]  # identical again
    (snapshot / "helpers.py").write_text("print('hello')\n")
    trusted, why = remote_code_trust("zooscope/tiny-mlp-digits")
    assert not trusted and "helpers.py are not part of the installed zooscope mlp" in why
    (snapshot / "helpers.py").unlink()
    modeling.unlink()
    modeling.symlink_to(snapshot / "nothing")  # dangling
    trusted, why = remote_code_trust("zooscope/tiny-mlp-digits")
    assert not trusted and "modeling_mlp.py missing" in why
    # analysis decides through the same function
    from analysis.models import resolve_model_name

    assert resolve_model_name("zooscope/tiny-mlp-digits").trusted is False


def test_an_offline_miss_fails_fast_without_hf_hub_offline(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HUB_CACHE=str(tmp_path / "cache"), HF_MODULES_CACHE=str(tmp_path / "modules"),
               HF_ENDPOINT="https://hub.invalid", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    code = """
import json, time
from zoo import UserError
from zoo.hub import load_pretrained
from analysis.models import load_model
from analysis.errors import UserError as AnalysisError
times = {}
for label, call in (("zoo", lambda: load_pretrained("no-such-model")), ("analysis", lambda: load_model("no-such-model", task="auto"))):
    start = time.perf_counter()
    try:
        call()
    except (UserError, AnalysisError) as error:
        times[label] = [time.perf_counter() - start, str(error)]
print(json.dumps(times))
"""
    proc = run([sys.executable, "-c", code], env=env, cwd=tmp_path, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    times = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(times) == {"zoo", "analysis"}
    for label, (seconds, message) in times.items():
        assert seconds < 3.0, (label, seconds, message)
    assert "no-such-model" in times["zoo"][1] and "not reachable" in times["zoo"][1]


def test_truncated_weights_in_the_cache_are_one_clear_line(trained, tmp_path, hf_env, monkeypatch):
    import zoo

    recipe, out = trained
    result = publish(recipe, repo_dir=tmp_path / "repo", output_dir=out)
    blob = (Path(hf_env["HF_HUB_CACHE"]) / "models--zooscope--tiny-mlp-digits" / "snapshots" / result.revision
            / "model.safetensors").resolve()
    data = blob.read_bytes()
    blob.write_bytes(data[: len(data) - 100])
    proc = run(["zoo", "evaluate", "tiny-mlp-digits"], env=hf_env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "corrupt" in lines[0] and "truncated" in lines[0] and "zoo publish tiny-mlp-digits" in lines[0]
    monkeypatch.setenv("ZOO_RECIPES_DIR", str(recipe.parent))
    with pytest.raises(UserError, match="model.safetensors in the local cache is corrupt"):
        zoo.create_model("tiny-mlp-digits", pretrained=True)


def test_list_models_pretrained_lists_only_published_ids(trained, tmp_path, hf_env):
    import zoo

    assert zoo.list_models(pretrained=True) == []  # nothing published in this empty cache
    recipes = zoo.list_models(recipes=True)
    assert "mlp-fashion-mnist" in recipes and "two-layer-mlp-xor-cluster" in recipes
    recipe, out = trained
    publish(recipe, repo_dir=tmp_path / "repo", output_dir=out)
    assert zoo.list_models(pretrained=True) == ["tiny-mlp-digits"]
    assert zoo.list_models("mlp-*", pretrained=True) == []
    # a ref pointing at a missing snapshot is not a published model
    storage = Path(hf_env["HF_HUB_CACHE"]) / "models--zooscope--tiny-mlp-digits"
    (storage / "refs" / "main").write_text("0" * 40)
    assert zoo.list_models(pretrained=True) == []


def test_the_network_probe_switches_offline_once_and_back(monkeypatch):
    """No network: one probe, then offline mode (no 29 s retries); the network back: it is lifted again."""
    import socket

    import huggingface_hub.constants as constants

    import zoo.hub as hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_REACHABLE", {})
    monkeypatch.setattr(hub, "_SWITCHED_OFFLINE", False)
    probes = []

    def no_network(address, timeout):
        probes.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", no_network)
    assert hub.hub_reachable() is False and hub.hub_reachable() is False
    assert len(probes) == 1 and probes[0][0] == "huggingface.co"  # once per process, not per call
    assert constants.HF_HUB_OFFLINE is True and hub.os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setattr(hub, "REPROBE_AFTER_S", 0.0)

    class Connection:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: Connection())
    assert hub.hub_reachable() is True
    assert constants.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in hub.os.environ
    # the user's own HF_HUB_OFFLINE=1 is never probed past
    monkeypatch.setattr(hub, "_REACHABLE", {})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert hub.hub_reachable() is False and len(probes) == 1
