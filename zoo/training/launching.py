"""How a run is launched: the checks that refuse launches accelerate would run differently from
what they ask, the Accelerator (with FSDP2 switched on for CPU process groups), and what each
process holds in memory (metrics.json's memory_per_process)."""
from __future__ import annotations

import os

import torch

from ..errors import UserError


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def _requested_sharding() -> str | None:
    """The sharded mode `accelerate launch` was configured for (its config file or flags reach
    the processes as environment variables), or None for one process / DDP."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "FSDP"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "DeepSpeed"
    return None


def check_launch(trainer_class, trainer_label: str, train_size: int, eval_size: int) -> None:
    """Refuse launches that accelerate would run differently from what they ask, before any
    process group or file exists.

    On a CPU-only machine accelerate prepares every multi-process run with DDP and ignores an FSDP
    or DeepSpeed config (accelerate/state.py selects FSDP for the accelerator types only).
    torch's FSDP2 (`fully_shard`) runs on CPU over gloo, so FSDP2 is switched on by
    `_cpu_fsdp2_accelerator`; FSDP1 and DeepSpeed are refused there rather than silently
    trained unsharded.
    """
    sharding = _requested_sharding()
    if sharding and not _has_accelerator_device():
        if sharding == "DeepSpeed":
            raise UserError("the accelerate config asks for DeepSpeed, which runs on GPUs (or other accelerators) "
                            "only; on this CPU-only machine it would silently train unsharded with DDP. "
                            "Use zoo/training/launch/cpu-fsdp2.yaml or cpu-ddp.yaml for several CPU processes")
        if os.environ.get("FSDP_VERSION", "1") != "2":
            raise UserError("the accelerate config asks for FSDP version 1, which accelerate runs on GPUs only; on "
                            "CPU the zoo trains with FSDP2 (fsdp_version: 2, as in zoo/training/launch/cpu-fsdp2.yaml)")
    # declared by the class itself: a subclass of the loop that changes its hooks may touch whole
    # weight tensors, so it is not assumed to shard because its base does
    if sharding == "FSDP" and not vars(trainer_class).get("supports_fsdp", False):
        raise UserError(f"trainer {trainer_label!r} cannot train under FSDP: it works on the whole weight tensors, "
                        f"which FSDP splits between processes; launch it with one process or DDP")
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    for split, size in (("training", train_size), ("evaluation", eval_size)):
        if size < processes:
            raise UserError(f"the {split} split has {size} example(s), fewer than the {processes} processes "
                            f"launched: each process needs at least one; launch fewer processes")


def make_accelerator(**options):
    """The run's Accelerator. Without a GPU, accelerate joins torchrun's processes into one gloo
    group only when told it runs on CPU; with one, it picks the device itself."""
    from accelerate import Accelerator, FullyShardedDataParallelPlugin

    cpu = not _has_accelerator_device()
    if not (cpu and _requested_sharding() == "FSDP" and int(os.environ.get("WORLD_SIZE", "1")) > 1):
        return Accelerator(cpu=cpu, **options)
    plugin = FullyShardedDataParallelPlugin()  # reads the launcher's FSDP_* variables, as accelerate does
    accelerator = Accelerator(cpu=True, fsdp_plugin=plugin, **options)
    _cpu_fsdp2_accelerator(accelerator, plugin)
    return accelerator


def _cpu_fsdp2_accelerator(accelerator, plugin) -> None:
    """Switch a CPU accelerator from DDP to FSDP2.

    accelerate (1.15) decides FSDP only for the accelerator device types and leaves a CPU process
    group as MULTI_CPU (DDP), although FSDP2's `fully_shard`, its sharded checkpoints and its
    full-state-dict gathering all run over gloo. Setting the shared state's type to FSDP (what
    accelerate itself does for GPUs, state.py) makes `prepare`, `save_state`, `load_state` and
    `get_state_dict` take their FSDP2 paths; `TrainingRun.prepare_optimization` checks the
    model really came back sharded.
    """
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.MULTI_CPU:
        return  # a newer accelerate already chose FSDP (or something else) itself
    PartialState().distributed_type = DistributedType.FSDP
    AcceleratorState().fsdp_plugin = plugin
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)


def _local_bytes(tensor) -> int:
    """Bytes this process stores for a tensor: its local shard for an FSDP2 DTensor."""
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return local.numel() * local.element_size()


def memory_held(model, trainer) -> list[float]:
    """[parameter bytes, optimiser-state bytes, peak RSS in MiB] of this process."""
    import resource

    parameters = sum(_local_bytes(p) for p in model.parameters())
    state = 0
    for optimizer in vars(trainer).values():  # accelerate's AcceleratedOptimizer is an Optimizer too
        if isinstance(optimizer, torch.optim.Optimizer):
            for per_param in optimizer.state.values():
                state += sum(_local_bytes(v) for v in per_param.values() if torch.is_tensor(v) and v.dim())
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return [float(parameters), float(state), round(peak_rss_mib, 1)]


# How long a process waits at the end of a run for the others to arrive (the run's outputs are
# written by then; only a process that crashed or hung keeps the others waiting).
LEAVE_TIMEOUT_S = 300.0

# Set by train.py's main(): its processes end with os._exit right after the run, so the process
# group is left to the operating system instead of torch's teardown (see leave_together).
EXIT_AFTER_RUN = False


def leave_together(accelerator, timeout_s: float = LEAVE_TIMEOUT_S) -> None:
    """The end of a multi-process run: every process waits, through the rendezvous store, until
    every other one has left its last collective; then the process group is torn down, or, for
    train.py's processes (``EXIT_AFTER_RUN``), left to the process's exit.

    Why: torch's gloo teardown can hang. Here about one two-process run in forty never exited
    after writing its outputs (pytorch/pytorch#75097), in CI too. A barrier does not guard it:
    the first process out of a barrier may tear its group down while its last message to a
    peer is unsent, and the hang was seen after this store handshake as well, so inside the
    teardown. A key in the store (hosted by torchrun's agent, which outlives the workers)
    cannot be lost like a message; once every process has set its key, none needs the group,
    and train.py ends with os._exit (zoo.training.loop.main) without tearing it down.
    """
    import datetime

    import torch.distributed as dist

    if accelerator.num_processes > 1 and dist.is_initialized():
        # The process group's own store: there is no public accessor, and a second client of the
        # agent's store would need the launcher's environment to find it.
        store = dist.distributed_c10d._get_default_store()
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # an elastic restart reuses the store
        keys = [f"zooscope/left/{attempt}/{rank}" for rank in range(accelerator.num_processes)]
        store.set(keys[accelerator.process_index], "1")
        try:
            store.wait(keys, datetime.timedelta(seconds=timeout_s))
        except RuntimeError as error:  # DistStoreError: the wait timed out
            missing = [rank for rank, key in enumerate(keys) if not store.check([key])]
            raise RuntimeError(f"process {accelerator.process_index}: processes {missing} did not finish the run "
                               f"within {timeout_s:.0f} s of this one") from error
        if EXIT_AFTER_RUN:
            return
    accelerator.end_training()
