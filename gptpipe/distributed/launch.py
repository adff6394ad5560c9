"""The launch decision: run the plan in this process, or in DEVICE_COUNT rank processes per host.

`maybe_launch` is called once, before the plan runs. It spawns the ranks itself with
torch.multiprocessing ("spawn"), so Fabric never re-executes the command line: under Hydra that
would create extra run directories and could start a job twice.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gptpipe.config.plan import Plan
from gptpipe.distributed.ranks import RANK_VARIABLE, RankJob, capture_log_setup, run_ranks
from gptpipe.errors import ConfigError

log = logging.getLogger("gptpipe")

TRAINING_OPERATIONS = ("train", "net_train")


def maybe_launch(plan: Plan, config: DictConfig, run_dir: Path) -> bool:
    """Run the plan in rank processes when it needs several devices or hosts.

    Returns True when the plan ran in child processes, so the caller must not run it again.
    Returns False when the caller should run it in this process, because DEVICE_COUNT is 1 and
    there is no net_train(), or because this process is itself a rank.
    """
    if os.environ.get(RANK_VARIABLE) is not None:
        return False
    check_strategy(config)
    devices = device_count(plan)
    net_steps = [step for step in plan.steps if step.op.name == "net_train"]
    if devices == 1 and not net_steps:
        return False
    check_devices_available(devices, config)
    resolved = resolve_config(config)
    if net_steps:
        from gptpipe.distributed.master import run_net_job

        run_net_job(plan, resolved, run_dir, devices, str(net_steps[0].args[0]))
        return True

    log.info("launching %d rank processes (DEVICE_COUNT = %d)", devices, devices)
    job = RankJob(
        plan=plan, config=resolved, run_dir=run_dir, devices=devices, num_nodes=1, node_rank=0,
        node_names=(socket.gethostname(),), master_addr="127.0.0.1", master_port=free_port("127.0.0.1"),
        threads=threads_per_rank(config, devices), log_setup=capture_log_setup(run_dir),
    )
    run_ranks(job)
    return True


def check_launch(plan: Plan, config: DictConfig) -> None:
    """Raise ConfigError, before any work, when the plan's devices or strategy cannot be launched."""
    check_strategy(config)
    devices = device_count(plan)
    if devices > 1 or any(step.op.name == "net_train" for step in plan.steps):
        check_devices_available(devices, config)


def device_count(plan: Plan) -> int:
    """Return DEVICE_COUNT as the training steps see it (the final value when nothing trains)."""
    counts = {int(step.values["DEVICE_COUNT"]) for step in plan.steps if step.op.name in TRAINING_OPERATIONS}
    if not counts:
        return int(plan.final_values["DEVICE_COUNT"])
    if len(counts) > 1:
        raise ConfigError(
            f"DEVICE_COUNT changes between training steps ({', '.join(map(str, sorted(counts)))}); all ranks "
            "are started once, before the script runs",
            hint="assign DEVICE_COUNT once, at the top of the script",
        )
    return counts.pop()


def available_devices(config: DictConfig) -> tuple[int, str]:
    """Return how many devices of the configured accelerator this machine has, and their name."""
    import torch

    accelerator = str(config.get("accelerator", "auto"))
    if accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.cuda.device_count(), "CUDA GPU"
    if accelerator == "mps":
        return (1 if torch.backends.mps.is_available() else 0), "MPS device"
    return len(os.sched_getaffinity(0)), "CPU core"


def check_devices_available(devices: int, config: DictConfig) -> None:
    """Raise ConfigError when DEVICE_COUNT exceeds the devices present.

    Without a GPU each device is one CPU process, limited to the CPU cores this process may use:
    more processes than cores only slow training down.
    """
    present, kind = available_devices(config)
    if devices > present:
        raise ConfigError(
            f"DEVICE_COUNT {devices} is more than the {present} {kind}{'s' if present != 1 else ''} this machine has",
            hint=f"set DEVICE_COUNT to at most {present}; use net_train('workers.txt') to add more machines",
        )


def check_strategy(config: DictConfig) -> None:
    """Raise ConfigError for strategy=fsdp without CUDA GPUs: Fabric 2.6 runs FSDP on GPUs only."""
    strategy = str(config.get("strategy", "auto"))
    if not strategy.startswith("fsdp"):
        return
    _, kind = available_devices(config)
    if kind != "CUDA GPU":
        raise ConfigError(
            f"strategy={strategy} needs CUDA GPUs, and this run uses {kind}s",
            hint="use strategy=auto (DDP) on CPUs; FSDP only pays off for models too large for one GPU's memory",
        )


def threads_per_rank(config: DictConfig, devices: int) -> int:
    """Return the torch threads each rank uses: `threads` when set, else the CPU cores shared out."""
    threads = int(config.get("threads", 0) or 0)
    if threads > 0:
        return threads
    _, kind = available_devices(config)
    if kind != "CPU core":
        return 0
    return max(1, len(os.sched_getaffinity(0)) // devices)


def free_port(host: str = "") -> int:
    """Return a TCP port that is free right now on `host` (another program may take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def resolve_config(config: DictConfig) -> DictConfig:
    """Return a copy with every interpolation resolved, because rank processes run without Hydra."""
    container = OmegaConf.to_container(config, resolve=True, throw_on_missing=False)
    resolved = OmegaConf.create(container)
    OmegaConf.set_struct(resolved, OmegaConf.is_struct(config))
    return resolved


def overridden_names() -> list[str]:
    """Return the names set on the command line of this Hydra job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    names = []
    for item in HydraConfig.get().overrides.task:
        name = item.split("=", 1)[0].lstrip("+~")
        if name not in names:
            names.append(name)
    return names
