"""Settings of the `gptpipe` command that are not script variables, declared once.

They are lower-case to tell them apart from script variables, and are set on the command line
(`gptpipe script=cfg/x.txt precision=32-true`). `conf/config.yaml` and `--help` are generated
from SETTINGS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One command-line setting."""

    name: str
    default: Any
    description: str
    type_name: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("script", None, "Path of the train script to run (required, unless resume= is given).", "path"),
    Setting("data_script", None, "Path of a data script run before the train script (optional).", "path"),
    Setting("resume", None, "Run folder of an earlier run to continue: its saved script and command-line values, from "
            "the newest checkpoint in its checkpoint folder. Values given with it win, e.g. resume=outputs/DATE/TIME "
            "MAX_ITERS=4000.", "path"),
    Setting("dry_run", False, "Parse, check and print the plan, then exit without doing any work.", "bool"),
    Setting("data_dir", "data", "Free path variable for scripts: '${data_dir}/train.bin'.", "path"),
    Setting("data_path", "???", "Free path variable for scripts that read one file: '${data_path}'. "
            "No default: set it on the command line.", "path"),
    Setting("seed", 1337, "Seed of model initialisation, batch sampling and dropout.", "int"),
    Setting("optimizer", "default", "Optimizer: default, or a name that --help lists under optimizers.", "str"),
    Setting("precision", "auto", "Fabric precision: auto (bf16-mixed on GPUs with bf16 and on CPUs with AVX512-BF16 or "
            "AMX, 16-mixed on older GPUs, else 32-true), 32-true, bf16-mixed, 16-mixed, bf16-true, 16-true, 64-true. "
            "On other CPUs bf16 runs many times slower than 32-true.", "str"),
    Setting("accelerator", "auto", "Fabric accelerator: auto, cpu, cuda, mps.", "str"),
    Setting("strategy", "auto", "Fabric strategy with DEVICE_COUNT > 1: auto (DDP) or fsdp for models that do not "
            "fit on one device.", "str"),
    Setting("max_tokens_per_step", 0, "Largest number of tokens one forward/backward pass may take; larger batches "
            "are split into micro-batches with gradient accumulation (0: no limit).", "tokens"),
    Setting("compile", False, "Compile the model with torch.compile before training.", "bool"),
    Setting("threads", 0, "CPU threads for PyTorch (0: PyTorch's default).", "int"),
    Setting("worker_port", None, "Run as a net_train worker agent listening on this TCP port.", "port"),
    Setting("worker_host", "127.0.0.1", "Address the worker agent listens on.", "host"),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
