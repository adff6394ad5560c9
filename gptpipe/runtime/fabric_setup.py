"""Lightning Fabric for a run: accelerator, devices, strategy and precision from the config."""

from __future__ import annotations

import logging

import torch

from gptpipe.errors import ConfigError
from gptpipe.hardware import cpu_supports_bf16
from gptpipe.runtime.state import RunState

log = logging.getLogger("gptpipe")

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")


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


ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")


def check_settings(config) -> None:
    """Raise ConfigError for an invalid precision, accelerator, optimizer or numeric setting.

    The plan calls this before any work, so a typo on the command line fails at once.
    """
    from gptpipe.optim import OPTIMIZERS

    precision = str(config.get("precision", "auto"))
    if precision not in PRECISIONS:
        raise ConfigError(f"invalid precision={precision}; valid values are {', '.join(PRECISIONS)}")
    accelerator = str(config.get("accelerator", "auto"))
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"invalid accelerator={accelerator}; valid values are {', '.join(ACCELERATORS)}")
    if accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator={accelerator} but PyTorch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})",
            hint="use accelerator=auto or cpu, or install a CUDA build of PyTorch on a machine with a GPU",
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("accelerator=mps but this machine has no MPS device", hint="use accelerator=auto or cpu")
    optimizer = str(config.get("optimizer", "default"))
    if optimizer != "default" and optimizer not in OPTIMIZERS:
        from gptpipe.config.variables import suggest

        valid = ["default", *OPTIMIZERS]
        raise ConfigError(f"unknown optimizer={optimizer}" + suggest(optimizer, valid),
                          hint=f"valid values are {', '.join(valid)}")
    for name in ("threads", "max_tokens_per_step"):
        value = config.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"invalid {name}={value!r}; it must be a whole number, 0 or more")
    seed = config.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"invalid seed={seed!r}; it must be a whole number")


def create_fabric(state: RunState, devices: int = 1, num_nodes: int = 1):
    """Return a Fabric for this run (one device unless the caller launches several)."""
    from lightning_fabric import Fabric

    accelerator = str(state.config.get("accelerator", "auto"))
    precision = resolve_precision(str(state.config.get("precision", "auto")), accelerator)
    strategy = str(state.config.get("strategy", "auto"))
    state.precision = precision
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and precision.startswith("bf16") and not cpu_supports_bf16():
        log.warning(
            "precision=%s on a CPU without native bf16 matrix instructions (AVX512-BF16 or AMX): bf16 matrix "
            "multiplies run many times slower than float32 here; use precision=auto or 32-true to train in float32",
            precision,
        )
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
