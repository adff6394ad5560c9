"""The GPU run: training throughput in bf16 with and without torch.compile, and a 60-second convergence run.

    python -m gptpipe.bench gpu [--data PATH]
    python -m gptpipe.bench gpu --quick    # the same steps with tiny runs and no compile; prints only

Each step writes its own section of docs/benchmarks.md, with "gpu" in its name, so the CPU
sections stay as they are. Without --quick it needs a CUDA device.
"""

# NOTE: prepared on machines without a GPU. The sizes below aim at under 8 minutes on one large
# GPU (compile time included), but neither the time nor the sizes have been checked on one.

from __future__ import annotations

import argparse
import logging

import torch

from gptpipe.bench import convergence, throughput
from gptpipe.errors import GptpipeError

log = logging.getLogger("gptpipe.bench")

GPU_CONFIGURATIONS = ("e768h6d12relu4:b16f1024:20", "e512h4d8relu4:b32f256:50", "e128h1d4relu4:b64f256:100")
"""MODEL_DIMS:TRAIN_CONFIG:K for the GPU throughput table; the first is the GPT-2-small-sized MFU target."""

CONVERGENCE_BUDGET_S = 60
CONVERGENCE_OVERRIDES = ("MAX_SECONDS=55",)
"""cfg/shakespeare_80s.txt with a 55-second training budget, so start-up and the final evaluation fit in 60 s."""


def steps(quick: bool, data: str | None) -> list[tuple[str, list[str]]]:
    """Return (benchmark, arguments) for each step of the GPU run."""
    data_args = ["--data", data] if data else []
    if quick:
        return [
            ("throughput", ["--quick", "--precisions", "bf16"]),
            ("convergence", ["--quick", "--scripts", "cfg/shakespeare_80s.txt", *data_args]),
        ]
    table = ["--configs", *GPU_CONFIGURATIONS, "--precisions", "bf16", "--repeats", "1"]
    return [
        ("throughput", [*table, "--section", "throughput gpu"]),
        ("throughput", [*table, "--section", "throughput gpu compile", "compile=true"]),
        ("convergence", ["--scripts", "cfg/shakespeare_80s.txt", "--budget", str(CONVERGENCE_BUDGET_S),
                         "--section", "convergence gpu", *data_args, *CONVERGENCE_OVERRIDES]),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gptpipe.bench gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs without compile; does not write docs")
    parser.add_argument("--data", help="text file for the convergence run (default: the convergence benchmark's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.quick and not torch.cuda.is_available():
        raise GptpipeError("the GPU run needs a CUDA device, and torch sees none; run it on a GPU machine, or add "
                           "--quick to check its steps on this one")
    modules = {"throughput": throughput, "convergence": convergence}
    for name, arguments in steps(args.quick, args.data):
        log.info("gpu run: python -m gptpipe.bench %s %s", name, " ".join(arguments))
        modules[name].main(arguments)


if __name__ == "__main__":
    main()
