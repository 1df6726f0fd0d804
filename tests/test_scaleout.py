"""Scaling out through accelerate: the launch configs in zoo/training/launch/; DDP and FSDP2 over
two CPU processes from their config files (same weights as one process after a crash mid-run
and a resume, sharded checkpoints and halved per-process state under FSDP2, bf16 from the
launcher saving float32 weights, the published repo loading without zoo); and the launches that
would silently do something else than they ask (FSDP1 or DeepSpeed on a CPU-only machine, FSDP
with a trainer that cannot shard, more processes than examples) refused before anything is
written. The GPU configs are not run here (CI has no GPU).
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
    assert CONFIGS == ["cpu-1.yaml", "cpu-ddp.yaml", "cpu-fsdp2.yaml", "gpu-ddp.yaml", "gpu-fsdp2.yaml"]
    configs = {name: load_config_from_file(str(LAUNCH / name)) for name in CONFIGS}  # accelerate's own reader
    # several local processes come from accelerate's multi-GPU launcher (torchrun) only; on a machine
    # without GPUs they run on CPU (the DDP test below checks that 2 processes ran)
    assert [configs[n].distributed_type.value for n in CONFIGS] == ["NO", "MULTI_GPU", "FSDP", "MULTI_GPU", "FSDP"]
    assert [configs[n].use_cpu for n in CONFIGS] == [True, False, False, False, False]
    assert [configs[n].num_processes for n in CONFIGS] == [1, 2, 2, 2, 2]
    for name in ("cpu-fsdp2.yaml", "gpu-fsdp2.yaml"):
        fsdp = configs[name].fsdp_config
        assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "SIZE_BASED_WRAP"
        assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert configs["cpu-fsdp2.yaml"].fsdp_config == configs["gpu-fsdp2.yaml"].fsdp_config
    guide = (REPO_ROOT / "docs" / "scaling.md").read_text()
    assert all(f"zoo/training/launch/{name}" in guide for name in CONFIGS)


def kill_and_resume(folder: Path, config: str):
    """The tiny recipe launched with `config` on 2 CPU processes, SIGKILLed during step 25 with
    the checkpoints of steps 20 and 22 (the epoch end) on disk, then resumed with the same launch."""
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_RECIPE, "training": {**TINY_RECIPE["training"], "trainer": KILLED}}))
    out = folder / "out"
    killed = accelerate_launch(config, str(recipe), f"output_dir={out}", env={**os.environ, "ZOO_TEST_KILL_AT_STEP": "25"})
    after_kill = {"checkpoints": sorted(p.name for p in (out / "checkpoints").iterdir()),
                  "final model": (out / "model.safetensors").exists(),
                  "step_22": sorted(p.name for p in (out / "checkpoints" / "step_22").iterdir())}
    resumed = accelerate_launch(config, str(recipe), f"output_dir={out}", "--resume")
    return killed, after_kill, resumed, out


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    return kill_and_resume(tmp_path_factory.mktemp("ddp"), "cpu-ddp.yaml")


@pytest.fixture(scope="module")
def fsdp_killed_and_resumed(tmp_path_factory):
    return kill_and_resume(tmp_path_factory.mktemp("fsdp"), "cpu-fsdp2.yaml")


def check_matches_one_process(killed, after_kill, resumed, out, single) -> dict:
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr
    assert {k: after_kill[k] for k in ("checkpoints", "final model")} == {"checkpoints": ["step_20", "step_22"],
                                                                        "final model": False}  # every 10 steps + epoch end, 2 kept
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["finished"] and metrics["step"] == 44
    # same global batches, gradients averaged over the processes: one process's weights, to float rounding
    assert max_difference(out, single) < 1e-5
    one = json.loads((single / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [h["epoch"] for h in one["history"]]
    assert metrics["final"]["eval_accuracy"] == pytest.approx(one["final"]["eval_accuracy"], abs=1e-3)
    return metrics


def test_ddp_from_the_config_file_matches_one_process_after_a_kill_and_resume(killed_and_resumed, single_run):
    _, single = single_run
    metrics = check_matches_one_process(*killed_and_resumed, single)
    assert metrics["sharding"] is None
    assert "model.safetensors" in killed_and_resumed[1]["step_22"]  # DDP checkpoints hold whole weights
    one = json.loads((single / "metrics.json").read_text())["memory_per_process"]
    assert [m["parameter_bytes"] for m in metrics["memory_per_process"]] == [one[0]["parameter_bytes"]] * 2


def test_fsdp2_on_two_cpu_processes_matches_one_process_after_a_kill_and_resume(fsdp_killed_and_resumed,
                                                                                killed_and_resumed, single_run):
    _, single = single_run
    metrics = check_matches_one_process(*fsdp_killed_and_resumed, single)
    assert metrics["sharding"] == "FSDP2"
    # sharded checkpoints: torch.distributed.checkpoint folders of model and optimiser shards
    assert {"pytorch_model_fsdp_0", "optimizer_0"} <= set(fsdp_killed_and_resumed[1]["step_22"])
    assert "model.safetensors" not in fsdp_killed_and_resumed[1]["step_22"]
    # each process holds half of the weights and of the optimiser state that each DDP process holds
    ddp = json.loads((killed_and_resumed[3] / "metrics.json").read_text())["memory_per_process"]
    for fsdp, whole in zip(metrics["memory_per_process"], ddp):
        for key in ("parameter_bytes", "optimizer_state_bytes"):
            assert 0.45 * whole[key] <= fsdp[key] <= 0.55 * whole[key], (key, fsdp, whole)
    # the final model is gathered into one full float32 file
    saved = load_file(str(fsdp_killed_and_resumed[3] / "model.safetensors"))
    assert {k: (tuple(v.shape), v.dtype) for k, v in saved.items()} == \
        {k: (tuple(v.shape), v.dtype) for k, v in load_file(str(single / "model.safetensors")).items()}


@pytest.mark.parametrize("launched", ["killed_and_resumed", "fsdp_killed_and_resumed"])
def test_a_multi_process_run_publishes_a_full_repo_that_loads_without_zoo(launched, request, tmp_path, hf_env):
    from transformers import AutoModelForImageClassification

    from zoo.hub import publish

    *_, out = request.getfixturevalue(launched)
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


@pytest.mark.parametrize("settings, message", [
    ({"ACCELERATE_USE_DEEPSPEED": "true"}, "asks for DeepSpeed"),
    ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"}, "asks for FSDP version 1"),
])
def test_sharding_accelerate_cannot_run_on_cpu_is_refused(settings, message, tiny_recipe, tmp_path, monkeypatch, capsys):
    """What `accelerate launch` sets in each process for a DeepSpeed or an FSDP1 config; accelerate
    would train with DDP instead, so train.py says so and stops."""
    import zoo.training.launching as launching

    monkeypatch.setattr(launching, "_has_accelerator_device", lambda: False)
    for variable, value in settings.items():
        monkeypatch.setenv(variable, value)
    code, err = train_main([str(tiny_recipe()), f"output_dir={tmp_path / 'out'}"], capsys)
    assert code == 2 and message in err and "cpu-fsdp2.yaml" in err
    assert not (tmp_path / "out").exists()


def test_fsdp_with_a_trainer_that_cannot_shard_is_refused(tiny_recipe, tmp_path, monkeypatch, capsys):
    import zoo.training.launching as run_module
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


class _Process:
    """What leave_together reads of an Accelerator."""

    def __init__(self, rank: int, world: int):
        self.process_index, self.num_processes, self.ended = rank, world, False

    def end_training(self):
        import torch.distributed as dist

        dist.destroy_process_group()
        self.ended = True


def _leave(rank: int, world: int, store_file: str, arrive: list[bool], results):
    import torch.distributed as dist

    from zoo.training.launching import leave_together

    dist.init_process_group("gloo", store=dist.FileStore(store_file, world), rank=rank, world_size=world)
    dist.barrier()
    process = _Process(rank, world)
    if not arrive[rank]:  # a process that hangs (or crashed) after the last collective
        results.put((rank, "away"))
        return
    try:
        leave_together(process, timeout_s=2.0)
        results.put((rank, "ended" if process.ended and not dist.is_initialized() else "not ended"))
    except RuntimeError as error:
        results.put((rank, str(error)))


@pytest.mark.parametrize("arrive", [[True, True], [True, False]], ids=["both", "one-missing"])
def test_processes_leave_together_or_say_who_is_missing(arrive, tmp_path):
    """The end-of-run rendezvous: with every process there, each tears its group down; with one
    missing, the other stops after the timeout and names it, instead of waiting forever."""
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_leave, args=(rank, 2, str(tmp_path / "store"), arrive, results))
                 for rank in range(2)]
    for process in processes:
        process.start()
    outcome = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    if arrive == [True, True]:
        assert outcome == {0: "ended", 1: "ended"}
    else:
        assert outcome[1] == "away"
        assert outcome[0] == "process 0: processes [1] did not finish the run within 2 s of this one"
