"""Optimizer stability benchmark: each optimizer trains GPTs from e128 to e1024 and d4 to d48 at lr 0.01.

    python -m gptpipe.bench.optimizers [--data PATH] [--quick]

Every cell trains a fresh model (same seed for all optimizers) on byte fragments of a text file.
The learning rate warms up linearly to 0.01 over the first quarter of the iterations. A cell
reports the mean loss of its last iterations, or the iteration where the loss diverged. Bigger models run fewer
iterations so the whole grid finishes in about 10 minutes on 2 CPU cores. The full run rewrites
the "optimizers" section of docs/benchmarks.md; --quick runs two tiny cells and writes nothing.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gptpipe.bench.report import command_line, machine_description, write_section
from gptpipe.config.dims import ModelDims
from gptpipe.errors import DataError
from gptpipe.model import GPT
from gptpipe.optim import DEFAULT_OPTIMIZER, OPTIMIZERS, build_optimizer, set_learning_rate

log = logging.getLogger("gptpipe.bench")

DEFAULT_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "tinyshakespeare.txt"
VOCAB_SIZE = 256
"""Bytes."""
PEAK_LR = 0.01
BATCH = 4
FRAGMENT_LEN = 64
FLOPS_PER_CELL = 6e11
"""Training FLOPs each cell may spend (6 x parameters x tokens per iteration): sets its iteration count."""
MIN_ITERATIONS, MAX_ITERATIONS = 16, 60
DIVERGENCE_MARGIN = 0.5
"""Loss above ln(vocab) + this many nats, or a non-finite loss, counts as divergence."""
REBOUND_MARGIN = 0.5
"""A final loss this many nats above the run's lowest loss is marked as an instability."""
AVERAGE_LAST = 5
"""The final loss is the mean over this many last iterations."""

FULL_GRID = [
    ModelDims.decode(text)
    for text in (
        "e128h1d4w64relu2",
        "e128h1d16w64relu2",
        "e128h1d48w64relu2",
        "e512h1d4w64relu2",
        "e512h1d16w64relu2",
        "e512h1d48w64relu2",
        "e1024h1d4w64relu2",
        "e1024h1d16w64relu2",
        "e1024h1d48w64relu2",
    )
]
QUICK_GRID = [ModelDims.decode("e128h1d2w64relu1"), ModelDims.decode("e256h1d4w64relu1")]


@dataclass
class CellResult:
    dims: ModelDims
    optimizer: str
    iterations: int
    first_loss: float
    final_loss: float
    diverged_at: int | None
    seconds: float
    lowest_loss: float


def read_bytes(path: Path) -> np.ndarray:
    """Return the file's bytes as a uint8 array; raise DataError if missing or too short."""
    if not path.is_file():
        raise DataError(f"text file not found: {path}; pass an existing file with --data")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size <= FRAGMENT_LEN + 1:
        raise DataError(f"text file {path} has {data.size} bytes; the benchmark needs more than {FRAGMENT_LEN + 1}")
    return data


def sample_batch(data: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Return inputs and next-byte targets, each (BATCH, FRAGMENT_LEN), from random offsets."""
    starts = rng.integers(0, data.size - FRAGMENT_LEN - 1, size=BATCH)
    windows = np.stack([data[s : s + FRAGMENT_LEN + 1] for s in starts]).astype(np.int64)
    tokens = torch.from_numpy(windows)
    return tokens[:, :-1], tokens[:, 1:]


def iterations_for(dims: ModelDims, budget: float) -> int:
    flops_per_iteration = 6 * (dims.block_parameters() + 2 * VOCAB_SIZE * dims.width) * BATCH * FRAGMENT_LEN
    return int(min(MAX_ITERATIONS, max(MIN_ITERATIONS, budget // flops_per_iteration)))


def train_cell(dims: ModelDims, optimizer_name: str, data: np.ndarray, iterations: int) -> CellResult:
    """Train one fresh model with one optimizer and return its losses."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = GPT(dims, VOCAB_SIZE, max_len=FRAGMENT_LEN)
    optimizer = build_optimizer(model, optimizer_name, PEAK_LR, weight_decay=0.0)
    warmup = max(1, iterations // 4)
    divergence_level = math.log(VOCAB_SIZE) + DIVERGENCE_MARGIN

    losses: list[float] = []
    diverged_at = None
    started = time.perf_counter()
    for iteration in range(iterations):
        set_learning_rate(optimizer, PEAK_LR * min(1.0, (iteration + 1) / warmup))
        inputs, targets = sample_batch(data, rng)
        _, loss = model(inputs, targets)
        value = loss.item()
        losses.append(value)
        if not math.isfinite(value) or value > divergence_level:
            diverged_at = iteration
            break
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return CellResult(
        dims=dims,
        optimizer=optimizer_name,
        iterations=iterations,
        first_loss=losses[0],
        final_loss=float(np.mean(losses[-AVERAGE_LAST:])),
        diverged_at=diverged_at,
        seconds=time.perf_counter() - started,
        lowest_loss=min(losses),
    )


def pick_default(results: list[CellResult], names: list[str]) -> str:
    """Return the optimizer that never diverged and has the lowest mean final loss (all diverged: the fewest divergences)."""

    def rank(name: str) -> tuple[int, float]:
        own = [r for r in results if r.optimizer == name]
        divergences = sum(r.diverged_at is not None for r in own)
        return divergences, float(np.mean([r.final_loss for r in own]))

    return min(names, key=rank)


def format_report(results: list[CellResult], names: list[str], best: str) -> str:
    lines = [
        f"Machine: {machine_description()}",
        "",
        f"Command: `{command_line()}`",
        "",
        f"Byte-level GPTs (vocabulary {VOCAB_SIZE}) trained from the same seed on batches of {BATCH} x "
        f"{FRAGMENT_LEN} bytes, linear warm-up over the first quarter of the iterations to lr {PEAK_LR}, "
        f"no weight decay. Each cell shows the mean loss (nats per byte) of the last {AVERAGE_LAST} iterations, "
        f"or the iteration where the loss passed ln({VOCAB_SIZE}) + {DIVERGENCE_MARGIN} or stopped being finite. "
        f"Initial loss is ln({VOCAB_SIZE}) = {math.log(VOCAB_SIZE):.2f}. Bigger models run fewer iterations, "
        "so compare optimizers along a row, not across rows.",
        "",
        "| MODEL_DIMS | iterations | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    cells = {(r.dims.encode(), r.optimizer): r for r in results}
    for dims in dict.fromkeys(r.dims.encode() for r in results):
        row = [dims, str(cells[(dims, names[0])].iterations)]
        for name in names:
            result = cells[(dims, name)]
            if result.diverged_at is not None:
                row.append(f"diverged at {result.diverged_at}")
            else:
                rebound = " (rose from its minimum)" if result.final_loss > result.lowest_loss + REBOUND_MARGIN else ""
                row.append(f"{result.final_loss:.3f}{rebound}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"Most stable with the lowest mean final loss: **{best}**. "
        f"The code's default optimizer (DEFAULT_OPTIMIZER) is `{DEFAULT_OPTIMIZER}`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="text file to train on, read as bytes")
    parser.add_argument("--quick", action="store_true", help="two tiny cells in seconds; does not write docs")
    parser.add_argument(
        "--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS), help="optimizers to compare"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    data = read_bytes(args.data)
    grid = QUICK_GRID if args.quick else FULL_GRID
    budget = FLOPS_PER_CELL / 100 if args.quick else FLOPS_PER_CELL
    results = []
    for dims in grid:
        iterations = iterations_for(dims, budget)
        for name in args.optimizers:
            result = train_cell(dims, name, data, iterations)
            outcome = f"diverged at {result.diverged_at}" if result.diverged_at is not None else "ok"
            log.info(
                "%s %s: %d iterations, loss %.3f -> %.3f, %s, %.1f s",
                dims.encode(), name, iterations, result.first_loss, result.final_loss, outcome, result.seconds,
            )
            results.append(result)

    best = pick_default(results, args.optimizers)
    report = format_report(results, args.optimizers, best)
    print(report)
    if not args.quick:
        page = write_section("optimizers", report)
        log.info("wrote the optimizers section of %s", page)


if __name__ == "__main__":
    main()
