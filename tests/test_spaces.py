"""The Gradio Spaces, launched as real servers on 127.0.0.1 and driven two ways:

* gradio_client runs each Space's main actions on tiny models (trained and published into an
  isolated offline cache, or tiny random decoder LMs listed in $ZOOSCOPE_SPACE_MODELS) and
  checks the values that come back against independent computations;
* headless Chromium (Debian's, driven by Playwright; skipped when /usr/bin/chromium or
  playwright is absent) opens each Space, runs one action, waits for the plot, provokes a bad
  input's error message, keeps screenshots in the test's temporary folder, and asserts the page
  requested nothing beyond 127.0.0.1.

One server per Space for the whole module (they start together, in parallel).
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT

gradio = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

SPACES = ["zoo-explorer", "depth-probe", "layer-drop", "neuron-matching"]
CHROMIUM = "/usr/bin/chromium"
STARTUP_S = 240

# tiny recipes: a digits image classifier and an XOR-cluster two-layer net (seconds to train)
TINY_IMAGE = {
    "id": "tiny-mlp-digits",
    "architecture": "mlp",
    "config": {"image_size": 8, "hidden_sizes": [32], "num_labels": 10},
    "data": {"name": "digits"},
    "training": {"epochs": 3, "batch_size": 64, "lr": 0.01, "seed": 0},
}
TINY_XOR = {
    "id": "tiny-xor-cluster",
    "architecture": "two_layer_mlp",
    "config": {"input_dim": 10, "hidden_dim": 64, "num_labels": 2, "activation": "relu",
               "fixed_second_layer": True, "initializer_range": 0.01},
    "data": {"name": "xor_cluster", "dim": 10, "n_train": 128, "n_test": 400, "label_noise": 0.0,
             "separation": 6.0, "seed": 0},
    "training": {"epochs": 60, "batch_size": "full", "optimizer": "sgd", "lr": 0.5, "seed": 0},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _space_exists(name: str) -> bool:
    return (REPO_ROOT / "spaces" / name / "app.py").is_file()


class Server:
    def __init__(self, name: str, env: dict, log_dir: Path):
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(log_dir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "spaces" / name / "app.py")],
            env={**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port)},
            cwd=log_dir, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait(self, deadline: float) -> None:
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.read_log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not answer within {STARTUP_S} s:\n{self.read_log()[-3000:]}")

    def read_log(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def space_env(tmp_path_factory):
    """An isolated offline HF cache with the tiny zoo models published, tiny decoder LMs on disk,
    and the environment every server and the browser run with."""
    root = tmp_path_factory.mktemp("spaces")
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(root / "hf-cache"), "HF_MODULES_CACHE": str(root / "hf-modules"),
        "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
        "XDG_CONFIG_HOME": str(root / "xdg-config"), "XDG_CACHE_HOME": str(root / "xdg-cache"),
        "MPLCONFIGDIR": str(root / "mpl"), "GRADIO_TEMP_DIR": str(root / "gradio-tmp"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    # tiny decoder LMs (a word tokenizer over the built-in text) for the language-model tools
    from .analysis_fixtures import save_tiny

    lm = save_tiny(str(root / "tiny-llama"), family="llama", seed=0, num_layers=4)
    deep = save_tiny(str(root / "tiny-deep"), family="qwen2", seed=1, num_layers=6)
    env["ZOOSCOPE_SPACE_MODELS"] = os.pathsep.join([lm, deep])
    env["ZOOSCOPE_SPACE_LIMIT_LAYERS"] = "5"  # tiny-deep is "too deep" for the Spaces here
    return {"root": root, "env": env, "lm": lm, "deep": deep}


@pytest.fixture(scope="module")
def servers(space_env):
    """Every Space's server, started together while the tiny zoo models train (zoo-explorer reads
    the cache when a page opens)."""
    root, env = space_env["root"], space_env["env"]
    logs = root / "logs"
    logs.mkdir()
    started: dict[str, Server] = {}
    try:
        env["ZOO_RECIPES_DIR"] = str(root / "recipes")
        for name in SPACES:
            if _space_exists(name):
                started[name] = Server(name, env, logs)
        recipes = root / "recipes"
        recipes.mkdir()
        training = []
        for recipe in (TINY_IMAGE, TINY_XOR):
            path = recipes / f"{recipe['id']}.yaml"
            path.write_text(yaml.safe_dump(recipe))
            training.append((path, subprocess.Popen(
                [sys.executable, "train.py", str(path), f"output_dir={root / 'out' / recipe['id']}"],
                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        for path, proc in training:
            output, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, output[-3000:]
        from zoo.hub import publish

        for recipe in (TINY_IMAGE, TINY_XOR):
            publish(recipes / f"{recipe['id']}.yaml", repo_dir=root / "repos" / recipe["id"],
                    output_dir=root / "out" / recipe["id"], cache_dir=env["HF_HUB_CACHE"])
        deadline = time.time() + STARTUP_S
        for server in started.values():
            server.wait(deadline)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def client_for(servers):
    from gradio_client import Client

    clients = {}

    def get(name: str):
        if name not in servers:
            pytest.skip(f"spaces/{name}/app.py does not exist")
        if name not in clients:
            clients[name] = Client(servers[name].url, analytics_enabled=False, verbose=False)
        return clients[name]

    return get


def _app_error(fn, *args, **kwargs) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------
# every app builds (in this process: no server) and its README header is a valid Space card
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPACES)
def test_space_folder_and_card(name):
    folder = REPO_ROOT / "spaces" / name
    if not (folder / "app.py").is_file():
        pytest.skip(f"spaces/{name} not built yet")
    header = (folder / "README.md").read_text().split("---")[1]
    card = yaml.safe_load(header)
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py" and card["license"] == "apache-2.0"
    assert card["sdk_version"] == gradio.__version__ and card["title"] and card["tags"] and card["models"]
    requirements = (folder / "requirements.txt").read_text()
    assert "zooscope" in requirements


# ------------------------------------------------------------------------------------------
# zoo-explorer
# ------------------------------------------------------------------------------------------


def test_zoo_explorer_card_config_curves_and_boundary(client_for, space_env):
    client = client_for("zoo-explorer")
    result = client.predict("tiny-xor-cluster", api_name="/show_model")
    summary, card, config, curves, recipe, plane, plane_text = result[:7]
    assert "zooscope/tiny-xor-cluster" in summary and "two_layer_mlp" in summary and "xor_cluster" in summary
    assert "## Training recipe" in card and "sha256" not in summary
    config = config if isinstance(config, dict) else json.loads(Path(config).read_text())
    assert config["model_type"] == "two_layer_mlp" and config["input_dim"] == 10
    assert yaml.safe_load(recipe)["id"] == "tiny-xor-cluster"
    assert curves and plane  # matplotlib figures (serialised)
    # the boundary's test accuracy is the model's: recompute it here
    import torch

    import zoo
    from transformers import AutoModel

    accuracy = float(plane_text.split("**")[1])
    import zoo  # noqa: F401  (registers the architectures with AutoModel)
    model = AutoModel.from_pretrained(space_env["root"] / "out" / "tiny-xor-cluster").eval()
    data = zoo.data.load("xor_cluster", split="test", **{k: v for k, v in TINY_XOR["data"].items() if k != "name"})[:]
    with torch.no_grad():
        expected = float((model(input_features=data["input_features"]).logits.argmax(-1) == data["labels"]).float().mean())
    assert accuracy == pytest.approx(expected, abs=1e-4) and accuracy > 0.9


def test_zoo_explorer_classifies_a_test_image(client_for, space_env):
    from gradio_client import handle_file

    client = client_for("zoo-explorer")
    summary = client.predict("tiny-mlp-digits", api_name="/show_model")[0]
    assert "mlp" in summary and "digits" in summary
    image, text = client.predict("tiny-mlp-digits", api_name="/sample_image")
    true_label = text.split("**")[1]
    assert true_label in [str(i) for i in range(10)]
    scores, preview = client.predict("tiny-mlp-digits", handle_file(image), api_name="/classify_image")
    probabilities = {c["label"]: c["confidence"] for c in scores["confidences"]}
    assert scores["label"] in [str(i) for i in range(10)] and len(probabilities) == 5
    assert sum(probabilities.values()) <= 1.0 + 1e-6
    # the test image, round-tripped through the PNG and scaled back, gives the model's own answer
    import numpy as np
    import torch
    from PIL import Image

    import zoo
    from transformers import AutoModel

    index = int(text.split("#")[1].split(":")[0])
    pixels = zoo.data.load("digits", split="test")[index]["pixel_values"][None].float()
    model = AutoModel.from_pretrained(space_env["root"] / "out" / "tiny-mlp-digits").eval()
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits.softmax(-1)[0]
    assert scores["label"] == str(int(expected.argmax()))
    assert probabilities[scores["label"]] == pytest.approx(float(expected.max()), abs=0.05)
    seen = np.asarray(Image.open(preview).convert("L"), dtype=np.float32) / 255
    assert seen.shape == (8, 8) and np.abs(seen - pixels[0, 0].numpy()).max() < 0.05


def test_zoo_explorer_bad_input_is_a_message(client_for):
    client = client_for("zoo-explorer")
    message = _app_error(client.predict, "no-such-model", api_name="/show_model")
    assert "not published" in message and "Traceback" not in message
    message = _app_error(client.predict, "../../etc", api_name="/show_model")
    assert "not a zoo model" in message
    message = _app_error(client.predict, "tiny-mlp-digits", None, api_name="/classify_image")
    assert "no image" in message
    message = _app_error(client.predict, "tiny-xor-cluster", None, api_name="/classify_image")
    assert "not an image classifier" in message


# ------------------------------------------------------------------------------------------
# depth-probe
# ------------------------------------------------------------------------------------------


def test_depth_probe_runs_and_matches_the_python_api(client_for, space_env):
    client = client_for("depth-probe")
    figures, summary, report_path, scores = client.predict(
        space_env["lm"], "built-in text", "", 3, 32, ["contributions", "lens", "skip"], 2, api_name="/probe")
    names = sorted(Path(f["image"] if isinstance(f["image"], str) else f["image"]["path"]).name for f in figures)
    assert {"contributions.png", "logit_lens.png", "skip_output.png"} <= set(names), names
    report = json.loads(Path(report_path).read_text())
    assert report["num_layers"] == 4 and report["family"] == "llama"
    assert report["settings"]["num_prompts"] == 3 and report["settings"]["max_tokens"] == 32
    assert "# Depth probes" in summary and "## Skip effects" in summary
    # the same probes through the Python API give the same numbers
    from analysis.depth import run_depth
    from analysis.models import load_model

    loaded = load_model(space_env["lm"])
    expected = run_depth(loaded.model, loaded.tokenizer, num_prompts=3, max_tokens=32, batch_size=4,
                         analyses=["contributions", "lens", "skip"], skip_prompts=3, skip_positions=2,
                         skip_max_tokens=32, progress=False)
    assert report["contributions"]["layer_ratio"] == pytest.approx(expected.contributions.layer_ratio, rel=1e-4)
    assert report["lens"]["kl"] == pytest.approx(expected.lens.kl, rel=1e-4, abs=1e-6)
    got_skip = report["skip"]["output_effect"]["layer"]
    assert got_skip == pytest.approx(expected.skip.output_effect["layer"], rel=1e-4, abs=1e-6)
    assert all(math.isfinite(v) and v > 0 for v in report["contributions"]["layer_ratio"])
    assert scores["relative_contribution"] == pytest.approx(
        expected.depth_scores()["relative_contribution"]["relative"], abs=1e-3)


def test_depth_probe_own_text(client_for, space_env):
    client = client_for("depth-probe")
    text = "The cat sat on the mat . The dog ran in the park .\n\nA second prompt about the river and the sea ."
    _, _, report_path, _ = client.predict(space_env["lm"], "my text", text, 2, 16, ["contributions"], 1,
                                          api_name="/probe")
    report = json.loads(Path(report_path).read_text())
    assert report["contributions"] is not None and report["lens"] is None and report["skip"] is None
    assert 0 < report["contributions"]["num_tokens"] <= 2 * 16


@pytest.mark.parametrize("args, expected", [
    (("no-such-model", "built-in text", "", 2, 16, ["contributions"], 1), "unknown model 'no-such-model'"),
    (("/etc/passwd", "built-in text", "", 2, 16, ["contributions"], 1), "local files are not loadable here"),
    (("LM", "my text", "   ", 2, 16, ["contributions"], 1), "the prompt text is empty"),
    (("LM", "built-in text", "", 500, 16, ["contributions"], 1), "number of prompts must be between 1 and 16"),
    (("LM", "built-in text", "", 2, 100000, ["contributions"], 1), "tokens per prompt must be between"),
    (("LM", "built-in text", "", 2, 16, [], 1), "choose at least one analysis"),
    (("DEEP", "built-in text", "", 2, 16, ["contributions"], 1), "has 6 layers; this Space probes at most 5"),
])
def test_depth_probe_bad_input_is_a_message(client_for, space_env, args, expected):
    client = client_for("depth-probe")
    args = tuple(space_env["lm"] if a == "LM" else space_env["deep"] if a == "DEEP" else a for a in args)
    message = _app_error(client.predict, *args, api_name="/probe")
    assert expected in message and "Traceback" not in message


# ------------------------------------------------------------------------------------------
# layer-drop
# ------------------------------------------------------------------------------------------

DROP_ARGS = dict(kind="attn", n=2, mode="one-shot", num_prompts=4, max_tokens=32, prompt="the cat sat on the",
                 new_tokens=6)


def test_layer_drop_matches_the_python_api_and_generates(client_for, space_env):
    client = client_for("layer-drop")
    a = DROP_ARGS
    figures, table, before_text, after_text, report_path, dropped = client.predict(
        space_env["lm"], a["kind"], a["n"], a["mode"], a["num_prompts"], a["max_tokens"], a["prompt"],
        a["new_tokens"], api_name="/drop")
    report = json.loads(Path(report_path).read_text())
    assert [Path(f["image"] if isinstance(f["image"], str) else f["image"]["path"]).name for f in figures] == ["scores.png"]
    assert report["kind"] == "attn" and len(report["dropped"]) == 2 and dropped["dropped"] == report["dropped"]
    assert sorted(report["drop_attn_list"]) == sorted(report["dropped"]) and report["drop_mlp_list"] == []
    before, after = report["rows"][0], report["rows"][-1]
    assert before["k"] == 0 and after["k"] == 2 and after["dropped"] == report["dropped"]
    assert math.isfinite(before["perplexity"]) and math.isfinite(after["perplexity"])
    assert before["decode_tokens_per_s"] > 0 and after["decode_tokens_per_s"] > 0
    assert after["kv_bytes_per_token"] == pytest.approx(before["kv_bytes_per_token"] / 2)  # 2 of 4 caches gone
    assert "perplexity" in table and "decode tokens/s" in table and str(report["dropped"]) in table

    # the same run through the Python API: same scores, same choice, same perplexities, same text
    import copy

    from analysis.drop import run_drop
    from analysis.models import load_model

    spec = importlib_app("layer-drop")
    loaded = load_model(space_env["lm"])
    original = copy.deepcopy(loaded.model)
    expected, model = run_drop(loaded.model, loaded.tokenizer, kind="attn", n=2, mode="one-shot", num_prompts=4,
                               eval_prompts=4, max_tokens=32, batch_size=4, speed=False)
    assert report["dropped"] == expected.dropped
    assert report["scores"]["attn"] == pytest.approx(expected.scores.attn, rel=1e-5)
    assert before["perplexity"] == pytest.approx(expected.rows[0].perplexity, rel=1e-5)
    assert after["perplexity"] == pytest.approx(expected.rows[-1].perplexity, rel=1e-5)
    assert before_text == spec.generate(original, loaded.tokenizer, a["prompt"], a["new_tokens"])
    assert after_text == spec.generate(model, loaded.tokenizer, a["prompt"], a["new_tokens"])
    assert report["generation"] == {"prompt": a["prompt"], "new_tokens": 6, "full": before_text, "dropped": after_text}


def importlib_app(name: str):
    """A Space's app module, imported here without launching it (it builds its Blocks)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"space_{name.replace('-', '_')}", REPO_ROOT / "spaces" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("changes, expected", [
    ({"n": 4}, "cannot drop 4 attention layers: the model has 4 layers, so at most 3"),
    ({"kind": "block", "n": 9}, "number of modules to drop must be between 1 and 5"),
    ({"prompt": "  "}, "the generation prompt is empty"),
    ({"new_tokens": 5000}, "new tokens must be between 1 and 64"),
    ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
    ({"model": "DEEP"}, "has 6 layers"),
])
def test_layer_drop_bad_input_is_a_message(client_for, space_env, changes, expected):
    client = client_for("layer-drop")
    a = {"model": space_env["lm"], **DROP_ARGS, **changes}
    if a["model"] == "DEEP":
        a["model"] = space_env["deep"]
    message = _app_error(client.predict, a["model"], a["kind"], a["n"], a["mode"], a["num_prompts"],
                         a["max_tokens"], a["prompt"], a["new_tokens"], api_name="/drop")
    assert expected in message and "Traceback" not in message
