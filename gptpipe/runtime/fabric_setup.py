"""Lightning Fabric for a run: accelerator, devices, strategy and precision from the config."""

from __future__ import annotations

import logging

import torch

from gptpipe.errors import ConfigError
from gptpipe.runtime.state import RunState

log = logging.getLogger("gptpipe")

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")


def cpu_supports_bf16() -> bool:
    """Return True when this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(setting: str, accelerator: str) -> str:
    """Turn precision=auto into bf16-mixed where the hardware supports it, else 32-true."""
    if setting not in PRECISIONS:
        raise ConfigError(f"invalid precision={setting}; valid values are {', '.join(PRECISIONS)}")
    if setting != "auto":
        return setting
    use_cuda = accelerator in ("auto", "cuda", "gpu") and torch.cuda.is_available()
    if use_cuda:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if accelerator in ("auto", "cpu") and cpu_supports_bf16():
        return "bf16-mixed"
    return "32-true"


def create_fabric(state: RunState, devices: int = 1, num_nodes: int = 1):
    """Return a Fabric for this run (one device unless the caller launches several)."""
    from lightning_fabric import Fabric

    accelerator = str(state.config.get("accelerator", "auto"))
    precision = resolve_precision(str(state.config.get("precision", "auto")), accelerator)
    strategy = str(state.config.get("strategy", "auto"))
    fabric = Fabric(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,  # type: ignore[arg-type]
    )
    return fabric


def get_fabric(state: RunState):
    """Return the run's Fabric, creating a single-device one on first use."""
    if state.fabric is None:
        threads = int(state.config.get("threads", 0) or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        state.fabric = create_fabric(state)
    return state.fabric
