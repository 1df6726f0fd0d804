"""Training runs: the accelerate loop (1 vs 2 processes, resume, mixed precision), custom trainers,
curves, the output folder's rules, and bad input from the CLI."""
from __future__ import annotations

import json
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from .conftest import REPO_ROOT, run, run_python

TRAIN = [sys.executable, "train.py"]
TOY = "tests.toy_trainers"  # a user's own trainer module, named by module:Class in the recipe


def max_weight_difference(a, b) -> float:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


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
    from transformers import AutoModelForImageClassification

    from zoo import data

    _, out = single_run
    model = AutoModelForImageClassification.from_pretrained(out).eval()  # AutoModel: the backbone
    test = data.load("digits", split="test")
    with torch.no_grad():
        logits = model(pixel_values=test["pixel_values"][:]).logits
    accuracy = (logits.argmax(-1) == test["labels"][:]).sum().item() / len(test)
    reported = json.loads((out / "metrics.json").read_text())["final"]["eval_accuracy"]
    assert accuracy == pytest.approx(reported, abs=1e-9)


@pytest.mark.xdist_group("launch")  # a process group on the fixed rendezvous port
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
    # the epoch interrupted at step 15 reports the loss of all its 22 steps, as without the break
    assert json.loads((out / "metrics.json").read_text())["history"] == json.loads((single / "metrics.json").read_text())["history"]


@pytest.mark.xdist_group("launch")  # a process group on the fixed rendezvous port
def test_accelerate_launch_passes_mixed_precision_through(single_run, tmp_path):
    """bf16 from the launcher's flag, here under FSDP2 on 2 CPU processes (its mixed-precision
    policy: bf16 compute and communication, float32 master weights)."""
    recipe, single = single_run
    proc = run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(REPO_ROOT / "zoo" / "training" / "launch" / "cpu-fsdp2.yaml"),
                "--mixed_precision", "bf16", "train.py", str(recipe),
                f"output_dir={tmp_path / 'out'}", "training.epochs=1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["mixed_precision"] == "bf16" and metrics["sharding"] == "FSDP2" and metrics["num_processes"] == 2
    # bf16 autocast changes the numbers, but training still works
    assert 0 < max_weight_difference(tmp_path / "out", single) and metrics["final"]["eval_accuracy"] > 0.3
    # autocast computes in bf16; the weights it trains and saves stay float32
    assert {str(w.dtype) for w in load_file(str(tmp_path / "out" / "model.safetensors")).values()} == {"torch.float32"}
    assert json.loads((tmp_path / "out" / "config.json").read_text()).get("dtype", "float32") == "float32"


XOR_DATA = ["architecture=two_layer_mlp", "data={name: xor_cluster, dim: 4, n_train: 32, n_test: 32}"]


@pytest.mark.parametrize("overrides, env, message", [
    (["architecture=mlpp"], {}, "unknown architecture 'mlpp'; did you mean mlp"),
    (["config.dropout=2"], {}, "dropout must be in"),
    (["config.hidden_sizes=[]"], {}, "hidden_sizes must be a non-empty list"),
    (["data.name=fashion_mnist", "config.image_size=28"], {"ZOO_FASHION_MNIST_DIR": "EMPTY"}, "apt-get install dataset-fashion-mnist"),
    (["data.name=imagenet"], {}, "unknown data set 'imagenet'"),
    (["training.batch_sz=3"], {}, "unknown training setting"),
    (["--resume"], {}, "no checkpoint"),
    (["training.lr"], {}, "key=value"),
    (["config.hidden_size=64"], {}, "config key 'hidden_size' for architecture mlp; did you mean hidden_sizes"),
    (["config.num_labels=5"], {}, "config.num_labels=5 does not match data set 'digits', which has 10 classes"),
    (["config.image_size=7"], {}, "the mlp config does not fit data set 'digits' (one example: pixel_values (1, 8, 8))"),
    (["training.scheduler=cosin"], {}, "unknown training.scheduler 'cosin' (did you mean cosine"),
    (["training.trainer=sgdd"], {}, "unknown trainer 'sgdd'; did you mean sgd"),
    (["training.trainer=tests.toy_trainers:Missing"], {}, "has no 'Missing'"),
    (["training.trainer_options.momentum=0.9"], {}, "unknown training.trainer_options.momentum for trainer 'sgd'"),
    (["--resume", "--overwrite"], {}, "give one of them"),
    (XOR_DATA + ["config={input_dim: 4, hidden_dim: 8, num_labels: 1}"], {},
     "invalid two_layer_mlp config: num_labels must be at least 2 for a classifier, got 1; for a regressor set problem_type='regression'"),
    (XOR_DATA + ["config={input_dim: 7, hidden_dim: 8}"], {}, "the two_layer_mlp config does not fit data set 'xor_cluster'"),
])
def test_bad_input_exits_cleanly_and_writes_nothing(tiny_recipe, tmp_path, hf_env, overrides, env, message,
                                                     monkeypatch, capsys):
    """train.py's main, in this process (test_missing_recipe_file runs the script itself): every
    mistake is a one-line message and exit code 2, with nothing written. A traceback would
    surface here as the exception itself."""
    from zoo.training import main

    (tmp_path / "empty").mkdir()
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / "empty") if value == "EMPTY" else value)
    out = tmp_path / "out"
    try:
        code = main([str(tiny_recipe()), f"output_dir={out}", *overrides])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_recipe_file(tmp_path):
    proc = run([*TRAIN, str(tmp_path / "nope.yaml")])
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def weights_of(folder):
    return load_file(str(folder / "model.safetensors"))


def seeded_init(config: dict, seed: int) -> dict:
    """The weights a run starts from: accelerate's set_seed, then the model (as the run does)."""
    from accelerate.utils import set_seed

    from zoo import create_model

    set_seed(seed)
    return create_model("mlp", **config).state_dict()


def head_keys(weights: dict, num_labels: int, width: int) -> list[str]:
    """The output layer's parameters, found by shape (not by the architecture's attribute names)."""
    return [k for k, v in weights.items() if tuple(v.shape) in ((num_labels, width), (num_labels,))]


def test_custom_solver_trainer_trains_publishes_and_loads_by_name(tiny_recipe, tmp_path, hf_env):
    """A trainer with its own train() (closed-form ridge regression of the output layer) goes
    through train.py, `zoo publish`, `zoo evaluate` and AutoModel by name like the default one."""
    import numpy as np

    from zoo import data

    config = {"image_size": 8, "hidden_sizes": [64], "num_labels": 10}
    recipe = tiny_recipe(id="tiny-ridge-digits", config=config,
                         training={"trainer": f"{TOY}:RidgeHeadTrainer", "trainer_options": {"l2": 0.1}})
    out = tmp_path / "out"
    env = {**hf_env, "PYTHONPATH": f"{REPO_ROOT}{':' + hf_env['PYTHONPATH'] if hf_env.get('PYTHONPATH') else ''}"}
    proc = run([sys.executable, str(REPO_ROOT / "train.py"), str(recipe), f"output_dir={out}"], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"config.json", "model.safetensors", "metrics.json", "recipe.yaml"} == {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainer"] == "ridge-head" and metrics["finished"] and metrics["solver"] == "ridge normal equations"
    assert metrics["step"] == metrics["total_steps"] == 1

    # Independently: the hidden layer is the seeded init, untouched; the head is the ridge solution.
    saved, init = weights_of(out), seeded_init(config, seed=3)
    head = head_keys(saved, 10, 64)
    assert len(head) == 2 and saved.keys() == init.keys()
    for key in saved.keys() - set(head):
        assert torch.equal(saved[key], init[key]), key
    hidden_w = next(v for k, v in saved.items() if k not in head and v.ndim == 2).double().numpy()
    hidden_b = next(v for k, v in saved.items() if k not in head and v.ndim == 1).double().numpy()
    head_w = next(saved[k] for k in head if saved[k].ndim == 2).double().numpy()
    head_b = next(saved[k] for k in head if saved[k].ndim == 1).double().numpy()

    def features(split):
        x = data.load("digits", split=split)["pixel_values"][:].flatten(1).double().numpy()
        return np.maximum(x @ hidden_w.T + hidden_b, 0)

    train_labels = data.load("digits", split="train")["labels"][:].numpy()
    x = np.hstack([features("train"), np.ones((len(train_labels), 1))])
    y = np.eye(10)[train_labels]
    # ridge as ordinary least squares on an augmented system (numpy's SVD solver, not the trainer's)
    solution = np.linalg.lstsq(np.vstack([x, np.sqrt(0.1) * np.eye(x.shape[1])]),
                               np.vstack([y, np.zeros((x.shape[1], 10))]), rcond=None)[0]
    np.testing.assert_allclose(head_w, solution[:-1].T, atol=1e-4)
    np.testing.assert_allclose(head_b, solution[-1], atol=1e-4)
    test = data.load("digits", split="test")
    logits = features("test") @ head_w.T + head_b
    accuracy = float((logits.argmax(1) == test["labels"][:].numpy()).mean())
    assert metrics["final"]["eval_accuracy"] == pytest.approx(accuracy, abs=1e-9) and accuracy > 0.8

    # the same publish and load-by-name commands as for the default trainer
    proc = run(["zoo", "publish", str(recipe), "--output-dir", str(out), "--repo-dir", str(tmp_path / "repo")], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run(["zoo", "evaluate", "tiny-ridge-digits"], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["eval_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    code = """
import json, torch
from transformers import AutoModelForImageClassification
from zoo_check_data import x
model = AutoModelForImageClassification.from_pretrained("zooscope/tiny-ridge-digits", trust_remote_code=True).eval()
print(json.dumps(model(pixel_values=torch.tensor(x)).logits.tolist()))
"""
    sample = test["pixel_values"][:5]
    (tmp_path / "zoo_check_data.py").write_text(f"x = {sample.tolist()!r}\n")
    proc = run_python(code, env={**hf_env, "PYTHONPATH": str(tmp_path)}, block_zoo=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.array(json.loads(proc.stdout.strip().splitlines()[-1])), logits[:5], atol=1e-4)


def test_custom_hook_trainer_reuses_the_loop(tiny_recipe, tmp_path):
    """A subclass of the default trainer that changes two hooks (which parameters it optimises, a
    mask after each optimizer step) gets the loop, checkpoints and save without copying them."""
    config = {"image_size": 8, "hidden_sizes": [16], "num_labels": 10}
    recipe = tiny_recipe(id="tiny-masked-digits", training={"trainer": f"{TOY}:MaskedHeadTrainer", "epochs": 1, "lr": 0.05})
    out = tmp_path / "out"
    proc = run([*TRAIN, str(recipe), f"output_dir={out}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainer"] == "masked-head" and metrics["finished"] and metrics["step"] == 22
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_20", "step_22"]
    saved, init = weights_of(out), seeded_init(config, seed=3)
    head = head_keys(saved, 10, 16)
    for key in saved.keys() - set(head):
        assert torch.equal(saved[key], init[key]), key  # only the head was optimised
    weight = next(saved[k] for k in head if saved[k].ndim == 2)
    initial = next(init[k] for k in head if init[k].ndim == 2)
    assert torch.count_nonzero(weight[:, 1::2]) == 0  # the mask held after every step
    assert (weight[:, ::2] != initial[:, ::2]).float().mean() > 0.9  # and the kept weights trained
    assert metrics["final"]["eval_accuracy"] > 0.3


def test_curves_every_n_steps_survive_a_resume(single_run, tmp_path):
    recipe, single = single_run
    full, part = tmp_path / "full", tmp_path / "part"
    proc = run([*TRAIN, str(recipe), f"output_dir={full}", "training.eval_every_steps=11"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((full / "metrics.json").read_text())
    reference = json.loads((single / "metrics.json").read_text())
    curves = metrics["curves"]
    assert [c["step"] for c in curves] == [11, 22, 33, 44] and [c["epoch"] for c in curves] == [0.5, 1.0, 1.5, 2.0]
    assert max_weight_difference(full, single) == 0.0  # evaluating mid-epoch does not perturb training
    assert metrics["history"] == reference["history"]
    for epoch, record in enumerate(metrics["history"]):
        # each curve point's train_loss is the mean over its 11 steps: two of them make the epoch's
        halves = curves[2 * epoch]["train_loss"], curves[2 * epoch + 1]["train_loss"]
        assert record["train_loss"] == pytest.approx(sum(halves) / 2, rel=1e-12)
        assert {k: v for k, v in curves[2 * epoch + 1].items() if k.startswith("eval")} == \
            {k: v for k, v in record.items() if k.startswith("eval")}
    assert curves[0]["eval_loss"] > curves[-1]["eval_loss"]

    stopped = run([*TRAIN, str(recipe), f"output_dir={part}", "training.eval_every_steps=11", "training.stop_after_steps=15"])
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert [c["step"] for c in json.loads((part / "metrics.json").read_text())["curves"]] == [11]
    resumed = run([*TRAIN, str(recipe), f"output_dir={part}", "training.eval_every_steps=11", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = json.loads((part / "metrics.json").read_text())
    assert again["curves"] == curves and again["history"] == metrics["history"]


def test_full_batch_curves_every_step_without_checkpoints(tiny_recipe, tmp_path):
    from accelerate.utils import set_seed

    from zoo import create_model, data

    config = {"input_dim": 4, "hidden_dim": 16, "num_labels": 2}
    xor = {"name": "xor_cluster", "dim": 4, "n_train": 64, "n_test": 128}
    recipe = tmp_path / "tiny-xor.yaml"
    recipe.write_text(yaml.safe_dump({
        "id": "tiny-xor", "architecture": "two_layer_mlp", "config": config, "data": xor,
        "training": {"epochs": 6, "batch_size": "full", "optimizer": "sgd", "lr": 0.5, "checkpoint_every": "never", "seed": 1},
    }))
    out = tmp_path / "out"
    proc = run([*TRAIN, str(recipe), f"output_dir={out}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "checkpoints").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert [c["step"] for c in metrics["curves"]] == [1, 2, 3, 4, 5, 6] and metrics["eval_every_steps"] == 1
    # The first point's train_loss is the loss of the initial model on the whole training set.
    set_seed(1)
    model = create_model("two_layer_mlp", **config)
    train = data.load("xor_cluster", split="train", **{k: v for k, v in xor.items() if k != "name"})
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(input_features=train["input_features"][:]).logits, train["labels"][:])
    assert metrics["curves"][0]["train_loss"] == pytest.approx(loss.item(), rel=1e-5)
    last = metrics["curves"][-1]
    assert {k: last[k] for k in ("eval_loss", "eval_accuracy")} == {k: metrics["final"][k] for k in ("eval_loss", "eval_accuracy")}


@pytest.fixture
def finished_copy(single_run, tmp_path):
    """A copy of the finished single-process run, with every file's bytes and mtime recorded."""
    import shutil

    recipe, single = single_run
    out = tmp_path / "used"
    shutil.copytree(single, out)

    def snapshot():
        return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}

    return recipe, out, snapshot


def test_a_new_run_refuses_a_used_output_folder(finished_copy):
    recipe, out, snapshot = finished_copy
    before = snapshot()
    proc = run([*TRAIN, str(recipe), f"output_dir={out}", "training.epochs=1"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"output folder {out} already holds a finished run; --resume continues it, --overwrite deletes it first" in proc.stderr
    assert snapshot() == before
    proc = run([sys.executable, "-m", "zoo.cli", "train", str(recipe), "--output-dir", str(out)])  # `zoo train`
    assert proc.returncode == 2 and "already holds a finished run" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot() == before


def test_overwrite_clears_the_old_run_first(finished_copy):
    recipe, out, _ = finished_copy
    (out / "checkpoints" / "step_40" / "stale-marker").write_text("old run")
    proc = run([*TRAIN, str(recipe), f"output_dir={out}", "training.epochs=1", "training.lr=3e-4", "--overwrite"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # only the new run's checkpoints: nothing of the old 2-epoch run is left for a later --resume
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_20", "step_22"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == metrics["total_steps"] == 22
    assert "lr: 0.0003" in (out / "recipe.yaml").read_text()


def test_overwrite_refuses_a_folder_that_is_not_a_run(tiny_recipe, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for flags in (["--overwrite"], []):
        proc = run([*TRAIN, str(tiny_recipe()), f"output_dir={out}", *flags])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"{out} is not a training output folder" in proc.stderr and "choose another output_dir" in proc.stderr
        assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_resume_checks_the_recipe_and_leaves_a_finished_run_alone(finished_copy):
    recipe, out, snapshot = finished_copy
    before = snapshot()
    proc = run([*TRAIN, str(recipe), f"output_dir={out}", "training.lr=0.02", "--resume"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--resume: the recipe differs from the one that made" in proc.stderr and "training.lr=0.02 (the run's: 0.01)" in proc.stderr
    assert snapshot() == before
    proc = run([*TRAIN, str(recipe), f"output_dir={out}", "--resume"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "holds the finished run of this recipe; nothing to resume" in proc.stdout
    assert snapshot() == before

    # an unfinished run: the checkpoint's own recipe is what the new one is compared with
    import shutil

    shutil.rmtree(out / "checkpoints" / "step_44")
    (out / "model.safetensors").unlink()
    proc = run([*TRAIN, str(recipe), f"output_dir={out}", "config.hidden_sizes=[32]", "--resume"])
    assert proc.returncode == 2 and "step_40: config.hidden_sizes=[32] (the run's: [16])" in proc.stderr
