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

# the Spaces' shared code, imported under the name the apps use (a deployed folder carries it
# next to app.py; in the checkout it is spaces/_shared)
sys.path.insert(0, str(REPO_ROOT / "spaces" / "_shared"))

SPACES = ["zoo-explorer", "depth-probe", "layer-drop", "neuron-matching"]
CHROMIUM = "/usr/bin/chromium"
STARTUP_S = 240

# tiny recipes: a digits image classifier and an XOR-cluster two-layer net (seconds to train);
# the XOR one carries a paper: block (contract 3), the explorer shows it beside our number
TINY_IMAGE = {
    "id": "tiny-mlp-digits",
    "architecture": "mlp",
    "config": {"image_size": 8, "hidden_sizes": [32], "num_labels": 10},
    "data": {"name": "digits"},
    "training": {"epochs": 3, "batch_size": 64, "lr": 0.01, "seed": 0},
}
TINY_IMAGE_REPLICA = {**TINY_IMAGE, "id": "tiny-mlp-digits-seed1", "training": {**TINY_IMAGE["training"], "seed": 1}}
TINY_XOR = {
    "id": "tiny-xor-cluster",
    "architecture": "two_layer_mlp",
    "config": {"input_dim": 10, "hidden_dim": 64, "num_labels": 2, "activation": "relu",
               "fixed_second_layer": True, "initializer_range": 0.01},
    "data": {"name": "xor_cluster", "dim": 10, "n_train": 128, "n_test": 400, "label_noise": 0.0,
             "separation": 6.0, "seed": 0},
    "training": {"epochs": 60, "batch_size": "full", "optimizer": "sgd", "lr": 0.5, "seed": 0},
    "paper": {"title": "A tiny XOR test", "citation": "Test et al. 2099", "url": "https://example.org/xor",
              "claim": "clean test accuracy", "metric": "eval_accuracy", "value": 0.987, "reproduced": "partly"},
}
# an operator (output: field): the explorer shows a test field beside the prediction
TINY_FIELD = {
    "id": "tiny-operator-darcy",
    "architecture": "mgno",
    "config": {"resolution": 16, "num_channels": 4, "num_layers": 2, "num_levels": 2,
               "input_mean": 7.5, "input_std": 4.5, "output_scale": 0.006},
    "data": {"name": "darcy_flow", "resolution": 16, "n_train": 8, "n_test": 4, "seed": 0},
    "training": {"epochs": 2, "batch_size": 4, "optimizer": "adam", "lr": 2.0e-3, "seed": 0},
}
# a recipe that is never published: listed in the catalogue, never offered in the dropdown
UNPUBLISHED = {**TINY_IMAGE, "id": "tiny-never-published"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _space_exists(name: str) -> bool:
    return (REPO_ROOT / "spaces" / name / "app.py").is_file()


# depth-probe calls anything estimated above 50 ms "large" here, so that the tiny LM's biggest
# request is one: the test of small requests passing large ones needs both kinds
SERVER_ENV = {"depth-probe": {"ZOOSCOPE_SPACE_LIMIT_LIGHT_SECONDS": "0.05"}}


class Server:
    def __init__(self, name: str, env: dict, log_dir: Path, app: Path | None = None, python: str = sys.executable,
                 cwd: Path | None = None):
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(log_dir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [python, str(app or REPO_ROOT / "spaces" / name / "app.py")],
            env={**env, **SERVER_ENV.get(name, {}), "GRADIO_SERVER_NAME": "127.0.0.1",
                 "GRADIO_SERVER_PORT": str(self.port)},
            cwd=cwd or log_dir, stdout=self.log, stderr=subprocess.STDOUT,
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
        for recipe in (TINY_IMAGE, TINY_IMAGE_REPLICA, TINY_XOR, TINY_FIELD):
            path = recipes / f"{recipe['id']}.yaml"
            # trained without the paper: block (whether train.py takes it is the recipes' business)
            path.write_text(yaml.safe_dump({k: v for k, v in recipe.items() if k != "paper"}))
            training.append((path, subprocess.Popen(
                [sys.executable, "train.py", str(path), f"output_dir={root / 'out' / recipe['id']}"],
                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        for path, proc in training:
            output, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, output[-3000:]
        from zoo.hub import publish

        for recipe in (TINY_IMAGE, TINY_IMAGE_REPLICA, TINY_XOR, TINY_FIELD):
            publish(recipes / f"{recipe['id']}.yaml", repo_dir=root / "repos" / recipe["id"],
                    output_dir=root / "out" / recipe["id"], cache_dir=env["HF_HUB_CACHE"])
        (recipes / f"{TINY_XOR['id']}.yaml").write_text(yaml.safe_dump(TINY_XOR))
        (recipes / f"{UNPUBLISHED['id']}.yaml").write_text(yaml.safe_dump(UNPUBLISHED))
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
    assert str(card["sdk_version"]).split(".")[0] == gradio.__version__.split(".")[0]  # the Space runs this major
    assert card["title"] and card["tags"] and card["models"]
    # the checkout's requirements.txt is not the deployable one: it says how to export
    requirements = (folder / "requirements.txt").read_text()
    assert f"python -m spaces.export {name}" in requirements and "zooscope[spaces]" not in requirements


# ------------------------------------------------------------------------------------------
# zooscope_spaces (no server)
# ------------------------------------------------------------------------------------------


def test_model_names_a_visitor_may_load(monkeypatch, tmp_path):
    from zoo import UserError
    from zooscope_spaces import check_model_name

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("ZOOSCOPE_SPACE_MODELS", str(tmp_path / "listed"))
    assert check_model_name(" convnet-fashion-mnist-seed0 ") == "convnet-fashion-mnist-seed0"
    assert check_model_name("zooscope/x") == "zooscope/x"
    assert check_model_name("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    assert check_model_name(str(tmp_path / "listed")) == str(tmp_path / "listed")  # the operator's list
    assert check_model_name("/opt/x.gguf", allowed=["/opt/x.gguf"]) == "/opt/x.gguf"  # the dropdown's entries
    for name, message in (("", "empty"), ("/etc/passwd", "local files"), ("../secret", "local files"),
                          ("~/model", "local files"), ("a/b/c", "not a model name"), ("x.gguf", "local files")):
        with pytest.raises(UserError, match=message):
            check_model_name(name)


def test_bounds_and_text():
    from zoo import UserError
    from zooscope_spaces import bounded, check_text

    assert bounded("3", "n", 1, 5) == 3 and bounded(2.0, "n", 1, 5) == 2
    for value, message in ((0, "between 1 and 5"), (6, "between 1 and 5"), (2.5, "whole number"), ("x", "a number"),
                           (None, "empty")):
        with pytest.raises(UserError, match=message):
            bounded(value, "n", 1, 5)
    with pytest.raises(UserError, match="empty"):
        check_text(" \n ")
    with pytest.raises(UserError, match="too long"):
        check_text("x" * 30, max_chars=10)


def test_drawings_become_model_inputs():
    import numpy as np
    import torch

    from zoo import UserError
    from zooscope_spaces import image_to_pixels, widget_kind

    assert widget_kind("pixel_values", "fashion_mnist") == "image"
    assert widget_kind("input_features", "xor_cluster") == "plane"
    assert widget_kind("input_features", "modular_arithmetic") == "pair"
    assert widget_kind("input_features", "some_future_set") == "example"
    # a black stroke on a transparent sketch layer: inverted to a bright stroke on black
    layer = np.zeros((80, 80, 4), dtype=np.uint8)
    layer[:, 38:42, 3] = 255
    pixels = image_to_pixels({"background": None, "layers": [layer], "composite": layer}, 8)
    assert pixels.shape == (1, 1, 8, 8)
    assert torch.allclose(pixels[0, 0, :, 3:5].sum(-1), torch.full((8,), 0.4), atol=0.01)  # 4 of 10 pixels per side
    assert pixels[0, 0, :, :3].max() == 0 and pixels[0, 0, :, 5:].max() == 0
    # a bright object on black stays as it is; area averaging keeps a block image exact
    block = np.kron(np.eye(8), np.ones((10, 10))) * 255
    assert np.allclose(image_to_pixels(block.astype(np.uint8), 8)[0, 0].numpy(), np.eye(8))
    with pytest.raises(UserError, match="empty"):
        image_to_pixels({"composite": np.zeros((8, 8, 4), dtype=np.uint8)}, 8)
    with pytest.raises(UserError, match="no image"):
        image_to_pixels(None, 8)


def test_zoo_imports_neither_the_spaces_nor_analysis():
    """Issue 10 item 6: the Spaces' shared code left the zoo package; importing every zoo module
    loads nothing of analysis, gradio or the Spaces."""
    assert not (REPO_ROOT / "zoo" / "spaces_support.py").exists()
    code = ("import importlib, pkgutil, sys, zoo\n"
            "for m in pkgutil.walk_packages(zoo.__path__, 'zoo.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('analysis', 'zooscope_spaces', 'spaces', 'gradio'))\n"
            "print(bad)\nassert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_scheduler_lets_small_requests_pass_large_ones(monkeypatch):
    """A large request holds the one heavy slot; a second large one waits in its own line; small
    ones run meanwhile; too many waiting large ones and over-budget requests are refused."""
    import threading

    from zoo import UserError
    from zooscope_spaces import LIMITS, Estimate, Scheduler

    monkeypatch.setitem(LIMITS, "heavy_waiting", 1)
    scheduler = Scheduler()
    heavy, light = Estimate(LIMITS["light_seconds"] + 1, "big"), Estimate(0.1, "small")
    release, started, order = threading.Event(), threading.Event(), []

    def big(tag):
        with scheduler.admit(heavy) as line:
            order.append((tag, line))
            started.set()
            release.wait(30)

    first = threading.Thread(target=big, args=("heavy-1",))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=big, args=("heavy-2",))
    second.start()
    deadline = time.time() + 10
    while scheduler._waiting < 1 and time.time() < deadline:
        time.sleep(0.01)
    assert scheduler._waiting == 1  # the second large one waits for the heavy slot
    for i in range(LIMITS["light_slots"] + 2):  # small ones go through while both large ones are there
        with scheduler.admit(light) as line:
            order.append((f"light-{i}", line))
    with pytest.raises(UserError, match="busy with 1 large requests"):
        with scheduler.admit(heavy):
            pass
    release.set()
    first.join(10)
    second.join(10)
    assert [tag for tag, _ in order] == ["heavy-1"] + [f"light-{i}" for i in range(LIMITS["light_slots"] + 2)] + ["heavy-2"]
    assert {line for tag, line in order} == {"heavy", "light"} and scheduler.running == {"light": 0, "heavy": 0}
    with pytest.raises(UserError, match=r"would take about 1,000 s here \(big\).*at most 120 s: choose fewer"):
        scheduler.check(Estimate(1000, "big"))


def test_model_cache_lends_private_copies():
    """borrow never lends the cached object and never the same copy to two requests at once."""
    import threading

    import torch
    from zooscope_spaces import ModelCache

    loads = []
    cache = ModelCache(lambda name: loads.append(name) or torch.nn.Linear(2, 2), size=2)
    master = cache.get("a")
    with cache.borrow("a") as one, cache.borrow("a") as two:
        assert one is not master and two is not master and one is not two
        assert torch.equal(one.weight, master.weight)
        one.register_forward_hook(lambda *args: None)
    assert not master._forward_hooks
    with cache.borrow("a") as again:
        assert again in (one, two)  # a spare is kept for the next request
    threads = [threading.Thread(target=cache.get, args=("b",)) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert loads == ["a", "b"]  # loaded once, however many asked together


def test_depth_probe_estimate_bounds_the_largest_request():
    """The cost estimate grows with every size, and the sliders' largest request on a slow model
    (SmolLM2-sized speeds, as measured on the 2-core machine: > 300 s) is refused before it runs."""
    import types

    import torch
    from zooscope_spaces import LIMITS, SCHEDULER, Speed
    from zoo import UserError

    app = importlib_app("depth-probe")
    config = types.SimpleNamespace(vocab_size=49152)
    model = torch.nn.Linear(576, 49152 * 0 + 1, bias=False)  # parameters only count
    model.config = config
    adapter = types.SimpleNamespace(num_layers=30, hidden_size=576, model=model)
    model.parameters = lambda: iter([torch.empty(134_515_008)])
    slow = Speed(per_token=2e-3, per_call=0.05)  # ~500 tokens/s batched, 50 ms per call
    small = dict(num_prompts=1, max_tokens=8, analyses=["contributions"], skip_prompts=1, skip_positions=1,
                 skip_tokens=8)
    largest = dict(num_prompts=LIMITS["prompts"], max_tokens=LIMITS["max_tokens"],
                   analyses=["contributions", "lens", "skip"], skip_prompts=4, skip_positions=LIMITS["skip_positions"],
                   skip_tokens=128)
    base = app.estimate(adapter, slow, **small).seconds
    assert base < LIMITS["light_seconds"]
    for key, value in (("num_prompts", 4), ("max_tokens", 64), ("analyses", ["contributions", "lens"])):
        assert app.estimate(adapter, slow, **{**small, key: value}).seconds > base, key
    big = app.estimate(adapter, slow, **largest)
    assert big.seconds > 300
    with pytest.raises(UserError, match="this Space runs requests of at most"):
        SCHEDULER.check(big)


def test_explorer_reads_the_zoo_with_no_per_entry_code(tmp_path, monkeypatch):
    from zooscope_spaces import explorer

    import zoo

    # input kinds: declared, else from the config / main input
    assert explorer.input_kind({"image_size": 28}) == "image"
    assert explorer.input_kind({"vocab_size": 100}) == "sequence"
    assert explorer.input_kind({"input_dim": 10}) == "tabular"
    assert explorer.input_kind({"grid_size": 9}) == "grid"
    assert explorer.input_kind({"input_dim": 10}, declared="grid") == "grid"
    kinds = {name: explorer.architecture_kind(zoo.get_architecture(name)) for name in zoo.list_models()}
    assert kinds["mlp"] == "image" and kinds["two_layer_mlp"] == "tabular" and set(kinds.values()) <= set(explorer.INPUT_KINDS)
    # the paper: block, read defensively, with round 1's card fields as fallbacks
    assert explorer.paper_of({"paper": TINY_XOR["paper"]})["value"] == 0.987
    assert explorer.paper_of({"paper": "nonsense"})["value"] is None
    old = explorer.paper_of({"card": {"reference": "Xiao et al. 2017", "expected": {"eval_accuracy": 0.88}}})
    assert old["citation"] == "Xiao et al. 2017" and old["metric"] == "eval_accuracy" and old["expected"] == 0.88
    assert explorer.paper_of({"paper": {"value": "high"}})["value"] is None
    text = explorer.comparison_markdown({"paper": TINY_XOR["paper"]}, {"final": {"eval_accuracy": 0.5}})
    assert "| `eval_accuracy` | 0.5 | 0.987 | partly |" in text and "https://example.org/xor" in text
    # curves: per-evaluation "curves" first, else per-epoch "history"
    metrics = {"history": [{"epoch": 1, "eval_loss": 0.5}, {"epoch": 2, "eval_loss": 0.25}],
               "curves": [{"step": 10, "epoch": 0.5, "train_loss": 1.0, "eval_accuracy": 0.5},
                          {"step": 20, "epoch": 1.0, "train_loss": 0.5, "eval_accuracy": 0.75}]}
    assert explorer.curve_series(metrics) == ("step", {"train_loss": [(10, 1.0), (20, 0.5)],
                                                        "eval_accuracy": [(10, 0.5), (20, 0.75)]})
    assert explorer.curve_series({"history": metrics["history"]}) == ("epoch", {"eval_loss": [(1, 0.5), (2, 0.25)]})
    # published: only complete snapshots count
    cache = tmp_path / "hub"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    for rid, files in (("complete", ["config.json", "model.safetensors"]), ("no-weights", ["config.json"])):
        snapshot = cache / f"models--zooscope--{rid}" / "snapshots" / "abc"
        snapshot.mkdir(parents=True)
        for f in files:
            (snapshot / f).write_text("{}")
        (cache / f"models--zooscope--{rid}" / "refs").mkdir()
        (cache / f"models--zooscope--{rid}" / "refs" / "main").write_text("abc")
    (cache / "models--zooscope--dangling" / "refs").mkdir(parents=True)
    (cache / "models--zooscope--dangling" / "refs" / "main").write_text("gone")
    assert explorer.published_ids(online=False) == ["complete"]
    # the catalogue: every recipe of the checkout and every architecture
    rows = explorer.catalogue(published=[])
    listed = {row[0] for row in rows}
    assert {p.stem for p in (REPO_ROOT / "hub_configs").glob("*.yaml")} <= listed
    assert set(zoo.list_models()) <= {row[1] for row in rows}


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
    # the Architecture tab: the circuit diagram of the repo's config (a PNG, as on the card)
    from PIL import Image

    diagram = client.predict("tiny-xor-cluster", api_name="/circuit_diagram")
    width, height = Image.open(diagram).size
    assert width > 200 and height > 400  # input, two layers, output: several rows of boxes
    # the boundary's test accuracy is the model's: recompute it here
    import torch

    import zoo
    from transformers import AutoModelForSequenceClassification

    accuracy = float(plane_text.split("**")[1])
    import zoo.registry  # noqa: F401  (registers the architectures with the Auto classes)
    model = AutoModelForSequenceClassification.from_pretrained(space_env["root"] / "out" / "tiny-xor-cluster").eval()
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
    from transformers import AutoModelForImageClassification

    index = int(text.split("#")[1].split(":")[0])
    pixels = zoo.data.load("digits", split="test")[index]["pixel_values"][None].float()
    model = AutoModelForImageClassification.from_pretrained(space_env["root"] / "out" / "tiny-mlp-digits").eval()
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits.softmax(-1)[0]
    assert scores["label"] == str(int(expected.argmax()))
    assert probabilities[scores["label"]] == pytest.approx(float(expected.max()), abs=0.05)
    seen = np.asarray(Image.open(preview).convert("L"), dtype=np.float32) / 255
    assert seen.shape == (168, 168)  # 8 x 8, each pixel shown as 21 x 21
    assert np.abs(seen[::21, ::21] - pixels[0, 0].numpy()).max() < 0.01


def test_zoo_explorer_catalogue_paper_and_generic_panel(client_for, space_env):
    """Every recipe and architecture in the catalogue (the unpublished recipe too, marked so);
    our number beside the paper's; the tabular panel predicts what the model predicts."""
    client = client_for("zoo-explorer")
    table = client.predict(api_name="/catalogue")
    rows = {row[0]: row for row in table["data"]}
    assert {TINY_IMAGE["id"], TINY_XOR["id"], UNPUBLISHED["id"]} <= set(rows)
    assert rows[TINY_XOR["id"]][8] == "yes" and rows[UNPUBLISHED["id"]][8] == "no"
    assert rows[TINY_XOR["id"]][2] == "tabular" and rows[TINY_IMAGE["id"]][2] == "image"
    metrics = json.loads((space_env["root"] / "out" / TINY_XOR["id"] / "metrics.json").read_text())
    ours = metrics["final"]["eval_accuracy"]
    assert rows[TINY_XOR["id"]][9] == "Test et al. 2099" and rows[TINY_XOR["id"]][6] == "0.987"
    assert float(rows[TINY_XOR["id"]][5]) == pytest.approx(ours, abs=5e-4)
    import zoo

    assert set(zoo.list_models()) <= {row[1] for row in table["data"]}
    result = client.predict(TINY_XOR["id"], api_name="/show_model")
    comparison = next(r for r in result if isinstance(r, str) and r.startswith("**Paper**"))  # (groups send no value)
    assert f"| `eval_accuracy` | {ours:.4g} | 0.987 | partly |" in comparison
    # the generic tabular panel: a test example's features, edited, predicted as the model does
    scores, text, shown, features = client.predict(TINY_XOR["id"], api_name="/sample_example")
    values = [float(v) for v in features.split()]
    assert len(values) == 10 and values == pytest.approx(shown["input_features"], abs=1e-4)
    values[0] += 1.0
    scores, text = client.predict(TINY_XOR["id"], " ".join(map(str, values)), api_name="/predict")
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(space_env["root"] / "out" / TINY_XOR["id"]).eval()
    with torch.no_grad():
        expected = model(input_features=torch.tensor([values])).logits.softmax(-1)[0]
    got = {c["label"]: c["confidence"] for c in scores["confidences"]}
    names = model.config.id2label
    assert got[names[int(expected.argmax())]] == pytest.approx(float(expected.max()), abs=1e-4)
    message = _app_error(client.predict, TINY_XOR["id"], "1 2 3", api_name="/predict")
    assert "takes 10 features, not 3" in message
    message = _app_error(client.predict, TINY_XOR["id"], "1 x 3", api_name="/predict")
    assert "'x' is not a number" in message


def test_zoo_explorer_operator_shows_a_test_field(client_for, space_env):
    """A field-output model gets the field panel: a test field's relative L2 error, as an
    independent computation on the same test example gives it; a classifier is refused there."""
    import re

    import numpy as np
    import torch
    from transformers import AutoModelForImageToImage

    import zoo

    client = client_for("zoo-explorer")
    client.predict(TINY_FIELD["id"], api_name="/show_model")
    figure, text = client.predict(TINY_FIELD["id"], api_name="/sample_field")
    assert figure is not None
    index, error = re.fullmatch(r"Test field #(\d+): relative L2 error \*\*([0-9.]+)\*\* "
                                r"\(the model's mean over its test set: ([0-9.]+)\)", text).groups()[:2]
    params = {k: v for k, v in TINY_FIELD["data"].items() if k != "name"}
    item = zoo.data.load("darcy_flow", split="test", **params)[int(index)]
    model = AutoModelForImageToImage.from_pretrained(space_env["root"] / "out" / TINY_FIELD["id"]).eval()
    with torch.no_grad():
        predicted = model(pixel_values=item["pixel_values"][None]).logits[0].numpy()
    target = item["labels"].numpy()
    expected = np.linalg.norm(predicted - target) / np.linalg.norm(target)
    assert float(error) == pytest.approx(expected, abs=1e-4)
    message = _app_error(client.predict, TINY_XOR["id"], api_name="/sample_field")
    assert "predicts classes, not a field" in message


def test_zoo_explorer_bad_input_is_a_message(client_for):
    client = client_for("zoo-explorer")
    message = _app_error(client.predict, "no-such-model", api_name="/show_model")
    assert "not published" in message and "Traceback" not in message
    message = _app_error(client.predict, UNPUBLISHED["id"], api_name="/show_model")
    assert "not published" in message and f"zoo publish {UNPUBLISHED['id']}" in message
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
        space_env["lm"], "built-in text", "", 3, 32, ["contributions", "lens", "skip"], 3, api_name="/probe")
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
                         analyses=["contributions", "lens", "skip"], skip_prompts=3, skip_positions=3,
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


def test_depth_probe_twenty_tiny_requests_at_once(client_for, space_env):
    """Issue 11 item 12: 20 concurrent one-prompt requests all succeed (round 1: 3 of 20 got
    "Queue is full") and each reports itself as a light request with its estimate."""
    client = client_for("depth-probe")
    args = (space_env["lm"], "built-in text", "", 1, 8, ["contributions"], 1)
    client.predict(*args, api_name="/probe")  # the model is loaded once before the burst
    jobs = [client.submit(*args, api_name="/probe") for _ in range(20)]
    reports = [json.loads(Path(job.result(timeout=300)[2]).read_text()) for job in jobs]
    assert len(reports) == 20
    assert all(r["space"]["line"] == "light" and r["contributions"]["num_tokens"] > 0 for r in reports)


def test_depth_probe_small_request_passes_large_ones(client_for, space_env):
    """Three large requests (the sliders' largest) and then a one-prompt one: the large ones run
    one after the other, the small one is admitted at once while they are still there (the
    server's own clock: "admitted" / "finished" per request)."""
    client = client_for("depth-probe")
    big = (space_env["lm"], "built-in text", "", 16, 256, ["contributions", "lens", "skip"], 8)
    small = (space_env["lm"], "built-in text", "", 1, 8, ["contributions"], 1)
    large = [client.submit(*big, api_name="/probe") for _ in range(3)]
    time.sleep(0.5)
    report = json.loads(Path(client.submit(*small, api_name="/probe").result(timeout=300)[2]).read_text())
    results = [json.loads(Path(job.result(timeout=600)[2]).read_text())["space"] for job in large]
    mine = report["space"]
    assert mine["line"] == "light" and all(r["line"] == "heavy" for r in results)
    runs = sorted((r["admitted"], r["finished"]) for r in results)
    for (_, end), (start, _) in zip(runs, runs[1:]):  # one heavy slot: no two large runs overlap
        assert start >= end - 0.05, runs
    assert mine["admitted"] < runs[-1][0], (mine, runs)  # a large one submitted before it was still waiting ...
    assert mine["waited_s"] < 1.0 and mine["finished"] < runs[-1][1], (mine, runs)  # ... and it did not wait
    # the estimate is an estimate: within a factor of 30 of what the large runs took here
    for r in results:
        assert 1 / 30 < r["estimated_s"] / r["took_s"] < 30, r


@pytest.mark.parametrize("args, expected", [
    (("no-such-model", "built-in text", "", 2, 16, ["contributions"], 1), "unknown model 'no-such-model'"),
    (("/etc/passwd", "built-in text", "", 2, 16, ["contributions"], 1), "local files are not loadable here"),
    (("LM", "my text", "   ", 2, 16, ["contributions"], 1), "the prompt text is empty"),
    # sliders: Gradio itself refuses values beyond their range (the app checks them again)
    (("LM", "built-in text", "", 500, 16, ["contributions"], 1), "Value 500 is greater than maximum value 16"),
    (("LM", "built-in text", "", 2, 100000, ["contributions"], 1), "Value 100000 is greater than maximum value 256"),
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
    # speeds come with their spread; a change inside it is not called a speed-up
    speed = report["speed"]
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s"):
        full, dropped = speed["samples"]["full"][key], speed["samples"]["dropped"][key]
        assert len(full) == len(dropped) == speed["rounds"] == 5
        overlap = min(full) <= max(dropped) and min(dropped) <= max(full)
        assert speed["verdict"][key]["within_noise"] == overlap
        assert before[key] == pytest.approx(sorted(full)[2]) and after[key] == pytest.approx(sorted(dropped)[2])
        label = "prefill tokens/s" if key.startswith("prefill") else "decode tokens/s"
        line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
        assert f"({min(full):,.1f}–{max(full):,.1f})" in line
        assert ("within noise" in line) == overlap and (("faster" in line or "slower" in line) != overlap)

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
    ({"new_tokens": 5000}, "Value 5000 is greater than maximum value 64"),
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


# ------------------------------------------------------------------------------------------
# neuron-matching
# ------------------------------------------------------------------------------------------

REPLICAS = ["tiny-mlp-digits", "tiny-mlp-digits-seed1"]


def test_neuron_matching_matches_the_python_api(client_for, space_env):
    client = client_for("neuron-matching")
    update = client.predict(REPLICAS, api_name="/list_layers")
    layers = update["value"] if isinstance(update, dict) else update
    assert layers == ["layers.0.act"]
    assert "classifier" in [c[0] if isinstance(c, (list, tuple)) else c for c in update.get("choices", ["classifier"])]
    figures, summary, results_path, rows = client.predict(REPLICAS, layers, 200, 4, 0, api_name="/match")
    results = json.loads(Path(results_path).read_text())
    assert results["models"] == REPLICAS and results["layers"] == ["layers.0.act"]
    assert results["inputs"]["data"] == "digits" and results["inputs"]["examples"] == 200
    assert figures and "# Convergent learning" in summary
    (row,) = rows
    assert row["units"] == "32x32" and 0 < row["baseline_mean"] < row["mean_matched"] <= row["mean_semi_matched"] <= 1
    # the same comparison through the Python API
    from analysis import convergent as cv

    loaded = cv.load_models([str(space_env["root"] / "out" / r) for r in REPLICAS])
    total, batches = cv.image_batches("digits", split="test", limit=200, batch_size=256)
    expected = cv.compare_models([i.model for i in loaded], ["layers.0.act"], batches, names=REPLICAS, total=total,
                                 clusters=4, progress=False).summary_rows()[0]
    for key in ("mean_matched", "mean_semi_matched", "baseline_mean", "strong_share", "canonical_top10pct_mean"):
        assert row[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize("models, layers, inputs, expected", [
    (REPLICAS[:1], ["layers.0.act"], 100, "choose at least two models"),
    (REPLICAS, ["nope"], 100, "has no layer 'nope'"),
    (REPLICAS, ["layers.0.act"], 100_000, "Value 100000 is greater than maximum value 2000"),
    (REPLICAS, ["layers.0.act"] * 5, 100, "at most 4 layers at once"),
    (REPLICAS + REPLICAS[:1], ["layers.0.act"], 100, "a model is chosen twice"),
    (["tiny-mlp-digits", "no-such-model"], ["layers.0.act"], 100, "unknown model 'no-such-model'"),
    (["tiny-mlp-digits", "/etc"], ["layers.0.act"], 100, "local files are not loadable here"),
])
def test_neuron_matching_bad_input_is_a_message(client_for, models, layers, inputs, expected):
    client = client_for("neuron-matching")
    message = _app_error(client.predict, models, layers, inputs, 4, 0, api_name="/match")
    assert expected in message and "Traceback" not in message


# ------------------------------------------------------------------------------------------
# a real browser: headless Debian Chromium driven by Playwright (never `playwright install`)
# ------------------------------------------------------------------------------------------

BROWSER_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def browser(servers, space_env):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    profile = space_env["root"] / "chromium-profile"
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS,
            viewport={"width": 1280, "height": 1400})
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context, requests
        finally:
            context.close()


def _open(browser, servers, name: str):
    if name not in servers:
        pytest.skip(f"spaces/{name}/app.py does not exist")
    context, requests = browser
    requests.clear()
    page = context.new_page()
    page.goto(servers[name].url)
    page.wait_for_selector("gradio-app", state="attached")
    return page, requests


def _choose(page, selector: str, value: str) -> None:
    """Type a value into a Gradio dropdown (allow_custom_value) and commit it."""
    box = page.locator(f"{selector} input").first
    box.click()
    box.press("Control+a")
    box.press("Delete")
    box.fill(value)
    box.press("Enter")
    box.blur()


def _wait_image(page, selector: str) -> None:
    image = page.locator(selector).first
    image.wait_for(state="visible")
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=image.element_handle())


def _wait_toast(page, text: str) -> str:
    toast = page.locator("[data-testid=toast-body]").filter(has_text=text).first
    toast.wait_for(state="visible")
    page.wait_for_function("el => getComputedStyle(el).opacity === '1'", arg=toast.element_handle())
    assert "Error" in toast.locator(".toast-title").inner_text()
    return toast.locator("[data-testid=toast-text]").inner_text()


def _only_local(requests: list[str]) -> None:
    from urllib.parse import urlparse

    outside = [u for u in requests if urlparse(u).scheme not in ("data", "blob")
               and urlparse(u).hostname not in ("127.0.0.1",)]
    assert requests and not outside, outside


FIGURES_JS = """(selector) => {
  const gallery = document.querySelector(selector);
  const wrap = gallery.querySelector('.grid-wrap');
  const box = gallery.getBoundingClientRect();
  return {
    innerScroll: wrap ? wrap.scrollHeight - wrap.clientHeight : 0,
    galleryWidth: box.width,
    pageWidth: document.documentElement.clientWidth,
    images: [...gallery.querySelectorAll('img')].map(img => {
      const r = img.getBoundingClientRect();
      const tile = (img.closest('button') || img.parentElement).getBoundingClientRect();
      return {w: r.width, h: r.height, nw: img.naturalWidth, nh: img.naturalHeight, top: r.top, bottom: r.bottom,
              left: r.left, right: r.right, tileTop: tile.top, tileBottom: tile.bottom, tileLeft: tile.left,
              tileRight: tile.right};
    }),
  };
}"""


def _check_figures(page, selector: str = "#plots", count: int | None = None) -> list[dict]:
    """Issue 11 item 13: every figure shown whole, at its own aspect ratio, as wide as drawn (at
    most the gallery's width), inside its tile, and the gallery does not scroll inside itself."""
    page.wait_for_function("s => [...document.querySelectorAll(s + ' img')].every(i => i.complete && i.naturalWidth)",
                           arg=selector)
    info = page.evaluate(FIGURES_JS, selector)
    images = info["images"]
    assert images and (count is None or len(images) == count), info
    assert info["innerScroll"] <= 1, info  # round 1: a 660 px box scrolling inside itself
    for image in images:
        natural = image["nw"] / image["nh"]
        assert image["w"] / image["h"] == pytest.approx(natural, rel=0.03), image  # round 1: square tiles
        assert image["w"] >= min(image["nw"], 0.9 * info["galleryWidth"]) - 2, image  # not shrunk into a tile
        assert image["bottom"] <= image["tileBottom"] + 1 and image["top"] >= image["tileTop"] - 1, image  # not cut
        assert image["left"] >= image["tileLeft"] - 1 and image["right"] <= image["tileRight"] + 1, image
    return images


def _check_cleared(page, selector: str = "#plots") -> None:
    """After an error, nothing of the previous result is left on the page."""
    page.wait_for_function("s => document.querySelectorAll(s + ' img').length === 0", arg=selector, timeout=30_000)


def test_browser_zoo_explorer(browser, servers, tmp_path):
    page, requests = _open(browser, servers, "zoo-explorer")
    # the page opens on the first published model: an image classifier, so the image panel shows
    page.locator("#summary").filter(has_text="zooscope/tiny-mlp-digits").wait_for()
    # the list offers published models only; the catalogue lists the unpublished recipe too
    box = page.locator("#model input").first
    box.click()
    options = page.locator("ul[role=listbox] li")
    options.first.wait_for()
    offered = sorted(o.replace("✓", "").strip() for o in options.all_inner_texts())
    assert offered == sorted([TINY_IMAGE["id"], TINY_IMAGE_REPLICA["id"], TINY_XOR["id"], TINY_FIELD["id"]]), offered
    box.press("Escape")
    page.get_by_role("tab", name="The zoo").click()
    page.locator("#catalogue").filter(has_text=UNPUBLISHED["id"]).wait_for()
    page.locator("#catalogue").filter(has_text="Test et al. 2099").wait_for()
    page.screenshot(path=str(tmp_path / "zoo-explorer-catalogue.png"), full_page=True)
    page.get_by_role("tab", name="Try it").click()
    # draw a stroke on the sketchpad and classify it
    page.locator("#sketch button[aria-label=Brush]").click()
    box = page.locator("#sketch canvas").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 50, y - 50)
    page.mouse.down()
    for step in range(20):
        page.mouse.move(x - 50 + 5 * step, y - 50 + 5 * step)
    page.mouse.up()
    page.locator("#classify-sketch").click()
    page.locator("#scores").filter(has_text="%").first.wait_for()
    _wait_image(page, "#preview img")
    page.screenshot(path=str(tmp_path / "zoo-explorer-drawing.png"), full_page=True)
    # a random test image, uploaded and classified
    page.get_by_role("tab", name="Upload").click()
    page.locator("#sample").click()
    page.locator("#sample-text").filter(has_text="true label").wait_for()
    drawn = page.locator("#preview img").first.get_attribute("src")
    page.locator("#classify-upload").click()
    page.wait_for_function("src => { const img = document.querySelector('#preview img');"
                           " return img && img.src !== src && img.complete && img.naturalWidth > 0; }", arg=drawn)
    page.screenshot(path=str(tmp_path / "zoo-explorer-image.png"), full_page=True)
    # the XOR model: the decision boundary plot and the tabular panel replace the image panel
    _choose(page, "#model", "tiny-xor-cluster")
    page.locator("#summary").filter(has_text="zooscope/tiny-xor-cluster").wait_for()
    _wait_image(page, "#plane [data-testid=matplotlib] img")
    page.locator("#sample").wait_for(state="hidden", timeout=30_000)  # the image panel gives way
    assert "Test accuracy" in page.locator("#plane-text").inner_text()
    page.locator("#example").click()
    page.locator("#example-text").filter(has_text="true label").wait_for()
    assert len(page.locator("#features textarea").input_value().split()) == 10
    page.locator("#predict").click()
    page.locator("#example-text").filter(has_text="prediction:").wait_for()
    page.get_by_role("tab", name="Paper").click()
    page.locator("#comparison").filter(has_text="0.987").wait_for()
    page.screenshot(path=str(tmp_path / "zoo-explorer-paper.png"), full_page=True)
    page.get_by_role("tab", name="Try it").click()
    page.screenshot(path=str(tmp_path / "zoo-explorer-plane.png"), full_page=True)
    # a bad name: an error message, no traceback, and the last model's page is emptied
    page.locator("#show").wait_for()
    _choose(page, "#model", "no-such-model")
    message = _wait_toast(page, "not published")
    assert "Traceback" not in message
    page.wait_for_function("() => !document.querySelector('#summary').innerText.includes('tiny-xor-cluster')")
    page.screenshot(path=str(tmp_path / "zoo-explorer-error.png"), full_page=True)
    _only_local(requests)


def test_browser_depth_probe(browser, servers, space_env, tmp_path):
    page, requests = _open(browser, servers, "depth-probe")
    _choose(page, "#model", space_env["lm"])
    page.locator("#num-prompts input[data-testid=number-input]").fill("2")
    page.locator("#max-tokens input[data-testid=number-input]").fill("16")
    page.get_by_role("checkbox", name="skip").check()
    page.locator("#run").click()
    _wait_image(page, "#plots img")
    page.locator("#summary").filter(has_text="Depth probes").wait_for()
    images = _check_figures(page)
    assert len(images) >= 3
    # the third figure is on the page, not below a fold inside the gallery
    page.screenshot(path=str(tmp_path / "depth-probe-result.png"), full_page=True)
    page.get_by_role("radio", name="my text").check()
    page.locator("#run").click()
    message = _wait_toast(page, "empty")
    assert "prompt text is empty" in message
    _check_cleared(page)
    assert "Depth probes" not in page.locator("#summary").inner_text()
    page.screenshot(path=str(tmp_path / "depth-probe-error.png"), full_page=True)
    _only_local(requests)


def test_browser_layer_drop(browser, servers, space_env, tmp_path):
    page, requests = _open(browser, servers, "layer-drop")
    _choose(page, "#model", space_env["lm"])
    page.locator("#num-prompts input[data-testid=number-input]").fill("2")
    page.locator("#max-tokens input[data-testid=number-input]").fill("16")
    page.locator("#new-tokens input[data-testid=number-input]").fill("4")
    page.locator("#run").click()
    _wait_image(page, "#plots img")
    page.locator("#table").filter(has_text="perplexity").wait_for()
    assert page.locator("#after textarea").input_value().strip()
    _check_figures(page, count=1)  # the importance plot, whole (round 1: cut at the x axis)
    table = page.locator("#table").inner_text()
    assert "interleaved rounds" in table and ("within noise" in table or "outside the rounds' spread" in table)
    page.screenshot(path=str(tmp_path / "layer-drop-result.png"), full_page=True)
    page.locator("#n input").fill("4")
    page.locator("#run").click()
    message = _wait_toast(page, "cannot drop")
    assert "at most 3" in message
    _check_cleared(page)
    assert "perplexity" not in page.locator("#table").inner_text()
    assert not page.locator("#after textarea").input_value().strip()
    page.screenshot(path=str(tmp_path / "layer-drop-error.png"), full_page=True)
    _only_local(requests)


def test_browser_neuron_matching(browser, servers, tmp_path):
    page, requests = _open(browser, servers, "neuron-matching")
    # the page opens on the first two published replicas, with their activation layers chosen
    page.locator("#layers").filter(has_text="layers.0.act").wait_for()
    page.locator("#num-inputs input[data-testid=number-input]").fill("100")
    page.locator("#run").click()
    _wait_image(page, "#plots img")
    page.locator("#summary").filter(has_text="Convergent learning").wait_for()
    images = _check_figures(page)
    wide = [i for i in images if i["nw"] / i["nh"] > 2.5]
    assert wide and all(i["w"] >= 0.9 * min(i["nw"], 1100) for i in wide)  # round 1: squeezed into square tiles
    page.screenshot(path=str(tmp_path / "neuron-matching-result.png"), full_page=True)
    box = page.locator("#layers input").first
    box.click()
    box.fill("no.such.layer")
    box.press("Enter")
    box.blur()
    page.locator("#run").click()
    message = _wait_toast(page, "has no layer")
    assert "no.such.layer" in message
    _check_cleared(page)
    page.screenshot(path=str(tmp_path / "neuron-matching-error.png"), full_page=True)
    _only_local(requests)


# ------------------------------------------------------------------------------------------
# deployable folders: python -m spaces.export NAME DIR
# ------------------------------------------------------------------------------------------


def test_export_refuses_mistakes(tmp_path):
    from spaces.export import main

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    assert main(["no-such-space", str(tmp_path / "a")]) == 2 and not (tmp_path / "a").exists()
    assert main(["zoo-explorer", str(tmp_path / "used")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]  # nothing staged is left behind


@pytest.mark.slow
def test_exported_space_installs_offline_and_runs(servers, space_env, tmp_path):
    """Issue 11 item 11. What this proves: the exported folder alone (no checkout on any path,
    no index: pip runs with --no-index) is a Space that starts and answers. The venv is fresh and
    has no zooscope: it sees the machine's third-party packages through a plain path entry (a
    .pth line, so the machine's editable zooscope install is *not* activated), and `import zoo`
    fails outside the folder — zooscope comes from the folder. What it does not prove: that
    PyPI resolves the requirements' third-party versions (no network here)."""
    import sysconfig

    folder = tmp_path / "zoo-explorer-space"
    result = subprocess.run([sys.executable, "-m", "spaces.export", "zoo-explorer", str(folder)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    card = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert card["app_file"] == "app.py" and (folder / "app.py").is_file()
    assert (folder / "zooscope_spaces" / "core.py").is_file() and (folder / "zoo" / "registry.py").is_file()
    assert (folder / "hub_configs").is_dir() or list((folder / "zoo").rglob("hub_configs"))
    (wheel,) = (folder / "wheels").glob("zooscope-*.whl")
    requirements = (folder / "requirements.txt").read_text()
    lines = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert "gradio>=5" in lines and any(line.startswith("torch") for line in lines)
    assert not any("zooscope" in line for line in lines)  # no index serves it: it is in the folder

    venv = tmp_path / "venv"
    # no pip or setuptools of its own (ensurepip's old setuptools would shadow the machine's);
    # the machine's pip installs into it with --python
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "machine-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    clean = {k: v for k, v in space_env["env"].items() if k not in ("PYTHONPATH", "PIP_FIND_LINKS")}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-cache-dir",
                              "-r", "requirements.txt"],
                             cwd=folder, env=clean, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    outside = subprocess.run([python, "-c", "import zoo"], cwd=tmp_path, env=clean, capture_output=True, text=True)
    assert outside.returncode != 0 and "No module named 'zoo'" in outside.stderr
    inside = subprocess.run([python, "-c", "import zoo, analysis, zooscope_spaces, importlib.metadata as m;"
                             "print(zoo.__file__); print(zooscope_spaces.__file__); print(m.version('zooscope'))"],
                            cwd=folder, env=clean, capture_output=True, text=True, timeout=300)
    assert inside.returncode == 0, inside.stderr[-2000:]
    zoo_file, shared_file, version = inside.stdout.split()
    assert Path(zoo_file).is_relative_to(folder) and Path(shared_file).is_relative_to(folder)
    assert wheel.name.startswith(f"zooscope-{version}-")

    server = Server("exported-zoo-explorer", clean, tmp_path, app=folder / "app.py", python=python, cwd=folder)
    try:
        server.wait(time.time() + STARTUP_S)
        from gradio_client import Client

        client = Client(server.url, analytics_enabled=False, verbose=False)
        summary = client.predict(TINY_XOR["id"], api_name="/show_model")[0]
        assert "zooscope/tiny-xor-cluster" in summary and "two_layer_mlp" in summary
    finally:
        server.stop()
