"""Run one benchmark: python -m gptpipe.bench NAME [--quick] [options]; NAME --help lists its options."""

from __future__ import annotations

import importlib
import sys

from gptpipe.errors import GptpipeError

BENCHMARKS = {
    "peak": "matrix-multiply GFLOP/s in float32 and bf16",
    "throughput": "tokens/s, ms per iteration, MFU and peak memory of the train loop",
    "levers": "tokens/s before and after each speed setting, one at a time",
    "convergence": "test loss reached by a train script within a wall-clock budget",
    "data": "fragment sampling and folder indexing speed",
    "optimizers": "optimizer stability over model widths and depths",
    "profile": "where one training iteration's time goes: phases and PyTorch operators",
    "gpu": "throughput with and without compile and a 60-second convergence run, on a CUDA GPU",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        names = "\n".join(f"  {name:<12} {summary}" for name, summary in BENCHMARKS.items())
        sys.stderr.write(f"usage: python -m gptpipe.bench NAME [--quick] [options]\n\nbenchmarks:\n{names}\n")
        sys.exit(2)
    module = importlib.import_module(f"gptpipe.bench.{sys.argv[1]}")
    try:
        module.main(sys.argv[2:])
    except GptpipeError as error:
        sys.stderr.write(f"gptpipe.bench {sys.argv[1]}: error: {error}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
