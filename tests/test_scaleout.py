"""Scaling out through accelerate: the launch configs in zoo/training/launch/, DDP over two CPU
processes from its config file (same weights as one process, a crash mid-run resumed, the
published repo loading without zoo), and the launches that would silently do something else
than they ask (FSDP or DeepSpeed on a CPU-only machine, FSDP with a trainer that cannot shard,
more processes than examples) refused before anything is written.

FSDP itself is not run here: accelerate applies it on accelerators only (its MULTI_CPU mode
wraps the model in DistributedDataParallel and ignores the FSDP plugin), and CI has no GPU.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from safetensors.torch import load_file

from .conftest import REPO_ROOT, TINY_RECIPE, run, run_python

# process groups rendezvous on one fixed port: every launching test runs in one xdist worker
pytestmark = pytest.mark.xdist_group("launch")

LAUNCH = REPO_ROOT / "zoo" / "training" / "launch"
CONFIGS = sorted(p.name for p in LAUNCH.glob("*.yaml"))
KILLED = "tests.toy_trainers:KilledAtStepTrainer"


def accelerate_launch(config: str, *args: str, env: dict | None = None):
    return run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(LAUNCH / config),
                "train.py", *args], env=env, timeout=600)


def max_difference(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def test_launch_configs_are_what_the_docs_say():
    assert CONFIGS == ["cpu-1.yaml", "cpu-ddp.yaml", "gpu-ddp.yaml", "gpu-fsdp2.yaml"]
    configs = {name: load_config_from_file(str(LAUNCH / name)) for name in CONFIGS}  # accelerate's own reader
    # several local processes come from accelerate's multi-GPU launcher (torchrun) only; on a machine
    # without GPUs they run on CPU (the DDP test below checks that 2 processes ran)
    assert [configs[n].distributed_type.value for n in CONFIGS] == ["NO", "MULTI_GPU", "MULTI_GPU", "FSDP"]
    assert [configs[n].use_cpu for n in CONFIGS] == [True, False, False, False]
    assert configs["cpu-1.yaml"].num_processes == 1 and configs["cpu-ddp.yaml"].num_processes == 2
    fsdp = configs["gpu-fsdp2.yaml"].fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "SIZE_BASED_WRAP"
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    guide = (REPO_ROOT / "docs" / "scaling.md").read_text()
    assert all(f"zoo/training/launch/{name}" in guide for name in CONFIGS)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """The tiny recipe under DDP on 2 CPU processes (cpu-ddp.yaml), SIGKILLed during step 25 with
    the checkpoints of steps 20 and 22 (the epoch end) on disk, then resumed with the same launch."""
    folder = tmp_path_factory.mktemp("ddp")
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_RECIPE, "training": {**TINY_RECIPE["training"], "trainer": KILLED}}))
    out = folder / "out"
    killed = accelerate_launch("cpu-ddp.yaml", str(recipe), f"output_dir={out}",
                               env={**os.environ, "ZOO_TEST_KILL_AT_STEP": "25"})
    after_kill = {"checkpoints": sorted(p.name for p in (out / "checkpoints").iterdir()),
                  "final model": (out / "model.safetensors").exists()}
    resumed = accelerate_launch("cpu-ddp.yaml", str(recipe), f"output_dir={out}", "--resume")
    return killed, after_kill, resumed, out


def test_ddp_from_the_config_file_matches_one_process_after_a_kill_and_resume(killed_and_resumed, single_run):
    killed, after_kill, resumed, out = killed_and_resumed
    _, single = single_run
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr
    assert after_kill == {"checkpoints": ["step_20", "step_22"], "final model": False}  # every 10 steps + epoch end, 2 kept
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["finished"] and metrics["step"] == 44
    # same global batches, gradients averaged by DDP: one process's weights, to float rounding
    assert max_difference(out, single) < 1e-5
    one = json.loads((single / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [h["epoch"] for h in one["history"]]
    assert metrics["final"]["eval_accuracy"] == pytest.approx(one["final"]["eval_accuracy"], abs=1e-3)


def test_a_ddp_run_publishes_a_full_repo_that_loads_without_zoo(killed_and_resumed, tmp_path, hf_env):
    from transformers import AutoModelForImageClassification

    from zoo.hub import publish

    *_, out = killed_and_resumed
    publish(out / "recipe.yaml", output_dir=out, repo_dir=tmp_path / "repo")  # the run's own recipe
    saved = load_file(str(tmp_path / "repo" / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape) for k, v in load_file(str(out / "model.safetensors")).items()}
    x = torch.rand(3, 1, 8, 8)
    torch.save({"x": x}, tmp_path / "x.pt")
    code = f"""
import json, torch
from transformers import AutoModelForImageClassification
model = AutoModelForImageClassification.from_pretrained("zooscope/tiny-mlp-digits", trust_remote_code=True).eval()
print(json.dumps(model(pixel_values=torch.load(r"{tmp_path / 'x.pt'}", weights_only=True)["x"]).logits.tolist()))
"""
    proc = run_python(code, env=hf_env, block_zoo=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = AutoModelForImageClassification.from_pretrained(out).eval()(pixel_values=x).logits
    torch.testing.assert_close(torch.tensor(json.loads(proc.stdout.strip().splitlines()[-1])), expected, rtol=0, atol=1e-6)


def train_main(args: list[str], capsys) -> tuple[int, str]:
    from zoo.training import main

    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("variable, mode", [("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")])
def test_sharding_on_a_cpu_only_machine_is_refused(variable, mode, tiny_recipe, tmp_path, monkeypatch, capsys):
    """What `accelerate launch --config_file gpu-fsdp2.yaml` sets in each process; accelerate
    would train with DDP instead, so train.py says so and stops."""
    import zoo.training.run as run_module

    monkeypatch.setattr(run_module, "_has_accelerator_device", lambda: False)
    monkeypatch.setenv(variable, "true")
    code, err = train_main([str(tiny_recipe()), f"output_dir={tmp_path / 'out'}"], capsys)
    assert code == 2 and f"asks for {mode}" in err and "cpu-ddp.yaml" in err
    assert not (tmp_path / "out").exists()


def test_fsdp_with_a_trainer_that_cannot_shard_is_refused(tiny_recipe, tmp_path, monkeypatch, capsys):
    import zoo.training.run as run_module
    from zoo.training import SGDTrainer, get_trainer

    monkeypatch.setattr(run_module, "_has_accelerator_device", lambda: True)  # as on a GPU machine
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    code, err = train_main([str(tiny_recipe()), f"output_dir={tmp_path / 'out'}",
                            "training.trainer=tests.toy_trainers:MaskedHeadTrainer"], capsys)
    assert code == 2 and "cannot train under FSDP" in err and not (tmp_path / "out").exists()
    # the plain loop passes (declared), and its subclasses only when they declare it themselves
    run_module.check_launch(get_trainer("sgd"), "sgd", 100, 100)
    run_module.check_launch(get_trainer(KILLED), KILLED, 100, 100)
    with pytest.raises(run_module.UserError, match="cannot train under FSDP"):
        run_module.check_launch(type("Sub", (SGDTrainer,), {}), "sub", 100, 100)


def test_more_processes_than_examples_is_refused(tiny_recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "4")  # what the launcher tells each of 4 processes
    code, err = train_main([str(tiny_recipe()), f"output_dir={tmp_path / 'out'}", "architecture=two_layer_mlp",
                            "data={name: xor_cluster, dim: 4, n_train: 32, n_test: 3}",
                            "config={input_dim: 4, hidden_dim: 8}", "training.batch_size=8"], capsys)
    assert code == 2 and "evaluation split has 3 example(s), fewer than the 4 processes" in err
    assert not (tmp_path / "out").exists()  # refused before any process group (which would wait for 4)
