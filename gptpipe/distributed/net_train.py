"""The net_train() operation: train() across hosts, plus the check that every host reads the same data."""

from __future__ import annotations

import logging

from gptpipe.distributed.ranks import current_job
from gptpipe.distributed.workers_file import parse_workers_file
from gptpipe.errors import ConfigError, DataError, DistributedError
from gptpipe.runtime.registry import InputFile, operation
from gptpipe.runtime.state import PlanContext, RunState

log = logging.getLogger("gptpipe")


def _check_net_train(context: PlanContext, workers: str) -> None:
    from gptpipe.runtime.train import check_train

    check_train(context)
    hosts = len(parse_workers_file(workers)) + 1
    devices = int(context.values["DEVICE_COUNT"])
    batch = context.train_config().batch
    world_size = hosts * devices
    if batch % world_size != 0:
        raise ConfigError(
            f"TRAIN_CONFIG b{batch} is not divisible by the {world_size} devices of net_train() ({hosts} hosts "
            f"with DEVICE_COUNT {devices} each); b is the global batch and each device takes an equal share",
            hint=f"use a batch that is a multiple of {world_size}, e.g. b{max(world_size, batch // world_size * world_size)}",
        )


@operation(needs_model=True, check=_check_net_train)
def net_train(state: RunState, workers: InputFile) -> None:
    """Train like train(), as one data-parallel job with the worker agents listed in the workers file.

    The file lists one worker agent per line (`host` or `host:port`, default port 10000). Each
    worker host runs `gptpipe worker_port=PORT` with the same GPTPIPE_WORKER_TOKEN and reads the
    data from the same paths. This host is rank 0 and writes every output. TRAIN_CONFIG's b is the
    global batch over all hosts and their DEVICE_COUNT devices.
    """
    from gptpipe.runtime.fabric_setup import get_fabric
    from gptpipe.runtime.train import Trainer

    job = current_job()
    if job is None or job.num_nodes < 2:
        raise DistributedError(
            "net_train() ran without the multi-host launcher, so no worker takes part",
            hint="run the script with the gptpipe command, which starts the workers before the first step",
        )
    check_same_data(state, job.node_names, get_fabric(state))
    Trainer(state).run()


def check_same_data(state: RunState, node_names: tuple[str, ...], fabric) -> None:
    """All-gather every rank's dataset fingerprint; raise DataError naming each host whose data differs."""
    import torch

    from gptpipe.data import streams_for

    fingerprint = bytes.fromhex(streams_for(state).fingerprint())
    node_rank = fabric.node_rank
    local = torch.tensor([node_rank, *fingerprint], dtype=torch.int64, device=fabric.device)
    rows = [torch.empty_like(local) for _ in range(fabric.world_size)]
    torch.distributed.all_gather(rows, local)
    gathered = torch.stack(rows).cpu()  # (world_size, 1 + fingerprint bytes)
    reference = gathered[0, 1:]
    differing = []
    for row in gathered:
        name = node_names[int(row[0])]
        if not torch.equal(row[1:], reference) and name not in differing:
            differing.append(name)
    if differing:
        raise DataError(
            f"the training data differs between hosts: {', '.join(differing)} read data whose fingerprint "
            f"differs from that of {node_names[0]}",
            hint="every host must read identical data files from the same paths (relative paths start in the "
            "folder each gptpipe command was started in)",
        )
    if state.is_rank_zero:
        log.info("net_train(): all %d hosts read the same data (fingerprint %s)", len(node_names), fingerprint.hex())
