"""The accelerate loop: 1 vs 2 processes, resume, mixed precision, and bad input from the CLI."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from .conftest import run

TRAIN = [sys.executable, "train.py"]


def max_weight_difference(a, b) -> float:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """The tiny recipe trained in one process: the reference the other runs are compared with."""
    from .conftest import TINY_RECIPE
    import yaml

    folder = tmp_path_factory.mktemp("single")
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    proc = run([*TRAIN, str(recipe), f"output_dir={folder / 'out'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recipe, folder / "out"


def test_single_process_artifacts(single_run):
    _, out = single_run
    assert {"config.json", "model.safetensors", "metrics.json", "recipe.yaml", "checkpoints"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and metrics["step"] == metrics["total_steps"] == 2 * (1438 // 64)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["final"]["eval_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert metrics["history"][1]["train_loss"] < metrics["history"][0]["train_loss"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "mlp" and config["id2label"]["3"] == "3"
    # checkpoints every 10 steps, only the newest 2 kept
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_40", "step_44"]


def test_eval_metrics_match_an_independent_evaluation(single_run):
    from transformers import AutoModel

    from zoo import data

    _, out = single_run
    model = AutoModel.from_pretrained(out).eval()
    test = data.load("digits", split="test")
    with torch.no_grad():
        logits = model(pixel_values=test["pixel_values"][:]).logits
    accuracy = (logits.argmax(-1) == test["labels"][:]).sum().item() / len(test)
    reported = json.loads((out / "metrics.json").read_text())["final"]["eval_accuracy"]
    assert accuracy == pytest.approx(reported, abs=1e-9)


def test_two_processes_match_one_and_split_the_data(single_run, tmp_path):
    recipe, single = single_run
    proc = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "train.py", str(recipe),
                f"output_dir={tmp_path / 'out'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single.iterdir())
    assert max_weight_difference(out, single) < 1e-5  # same global batches, gradients averaged by DDP
    one = json.loads((single / "metrics.json").read_text())
    two = json.loads((out / "metrics.json").read_text())
    assert two["num_processes"] == 2
    assert two["final"]["eval_accuracy"] == pytest.approx(one["final"]["eval_accuracy"], abs=1e-3)
    # Each process saw half the examples, different ones, which together are exactly what one process saw.
    (p0, p1), (whole,) = two["examples_per_process"], one["examples_per_process"]
    assert p0["examples"] == p1["examples"] == whole["examples"] // 2
    assert p0["index_sum"] != p1["index_sum"]
    assert p0["index_sum"] + p1["index_sum"] == whole["index_sum"]
    assert p0["index_square_sum"] + p1["index_square_sum"] == whole["index_square_sum"]


def test_resume_mid_epoch_gives_the_same_weights(single_run, tmp_path):
    recipe, single = single_run
    out = tmp_path / "out"
    stopped = run([*TRAIN, str(recipe), f"output_dir={out}", "training.stop_after_steps=15"])
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert not (out / "model.safetensors").exists()  # an interrupted run saves no final model
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_10"]  # mid-epoch (22 steps per epoch)
    resumed = run([*TRAIN, str(recipe), f"output_dir={out}", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert max_weight_difference(out, single) == 0.0


def test_accelerate_launch_passes_mixed_precision_through(single_run, tmp_path):
    recipe, single = single_run
    proc = run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
                "--mixed_precision", "bf16", "--dynamo_backend", "no", "train.py", str(recipe),
                f"output_dir={tmp_path / 'out'}", "training.epochs=1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["mixed_precision"] == "bf16"
    # bf16 autocast changes the numbers, but training still works
    assert 0 < max_weight_difference(tmp_path / "out", single) and metrics["final"]["eval_accuracy"] > 0.3


@pytest.mark.parametrize("overrides, env, message", [
    (["architecture=mlpp"], {}, "unknown architecture 'mlpp'; did you mean mlp"),
    (["config.dropout=2"], {}, "dropout must be in"),
    (["config.hidden_sizes=[]"], {}, "hidden_sizes must be a non-empty list"),
    (["data.name=fashion_mnist", "config.image_size=28"], {"ZOO_FASHION_MNIST_DIR": "EMPTY"}, "apt-get install dataset-fashion-mnist"),
    (["data.name=imagenet"], {}, "unknown data set 'imagenet'"),
    (["training.batch_sz=3"], {}, "unknown training setting"),
    (["--resume"], {}, "no checkpoint"),
    (["training.lr"], {}, "key=value"),
])
def test_bad_input_exits_cleanly_and_writes_nothing(tiny_recipe, tmp_path, hf_env, overrides, env, message):
    env = {**hf_env, **{k: str(tmp_path / "empty") if v == "EMPTY" else v for k, v in env.items()}}
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    proc = run([*TRAIN, str(tiny_recipe()), f"output_dir={out}", *overrides], env=env)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_missing_recipe_file(tmp_path):
    proc = run([*TRAIN, str(tmp_path / "nope.yaml")])
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
