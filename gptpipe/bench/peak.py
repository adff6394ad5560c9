"""Matrix-multiply peak: the float32 and bf16 GFLOP/s this machine reaches on large square matrices.

    python -m gptpipe.bench peak            # writes the "peak" section of docs/benchmarks.md
    python -m gptpipe.bench peak --quick    # a few seconds, prints only (for CI)

Every MFU figure in the other benchmarks divides by these numbers, so they are the physical
limit the training speed is held against.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch

from gptpipe.bench.idle import wait_for_idle_cpu
from gptpipe.bench.report import command_line, machine_description, write_section
from gptpipe.hardware import default_device_has_fast_bf16

log = logging.getLogger("gptpipe.bench")

FULL_SIZES = (1024, 2048, 4096)
QUICK_SIZES = (256,)
DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}


def matmul_gflops(size: int, dtype: torch.dtype, repeats: int, min_seconds: float) -> float:
    """Return the median GFLOP/s (2 * size**3 FLOPs per product) over `repeats` timed runs of at least `min_seconds`."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: thread pool and kernel selection

    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    rates = []
    for _ in range(repeats):
        products = 0
        synchronize()
        start = time.perf_counter()
        while True:
            torch.mm(a, b, out=out)
            products += 1
            synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        rates.append(2 * size**3 * products / elapsed / 1e9)
    return statistics.median(rates)


MAX_PRODUCT_SECONDS = 10.0
"""A size whose single product would take longer than this, judged from the previous size, is skipped.

CPUs without native bf16 instructions multiply bf16 matrices on a slow path (0.6 to 2 GFLOP/s on a
2-core AVX2 machine), where one 4096 x 4096 product would take minutes.
"""


def measure_peaks(sizes: tuple[int, ...], repeats: int, min_seconds: float) -> dict[str, dict[int, float | None]]:
    """Return {precision name: {size: median GFLOP/s, or None where skipped}} for float32 and bf16."""
    table: dict[str, dict[int, float | None]] = {}
    for name, dtype in DTYPES.items():
        table[name] = {}
        rate = None
        for size in sizes:
            if rate is not None and 2 * size**3 / (rate * 1e9) > MAX_PRODUCT_SECONDS:
                log.info("%s n = %d skipped: one product would take about %.0f s at %.1f GFLOP/s",
                         name, size, 2 * size**3 / (rate * 1e9), rate)
                table[name][size] = None
                continue
            rate = matmul_gflops(size, dtype, repeats, min_seconds)
            table[name][size] = rate
    return table


def best(by_size: dict[int, float | None]) -> float:
    return max(rate for rate in by_size.values() if rate is not None)


def peak_gflops(quick: bool = False) -> dict[str, float]:
    """Return {"float32": GFLOP/s, "bf16": GFLOP/s}: the best median over the benchmark's matrix sizes."""
    sizes, repeats, min_seconds = (QUICK_SIZES, 3, 0.05) if quick else (FULL_SIZES, 5, 0.5)
    table = measure_peaks(sizes, repeats, min_seconds)
    return {name: best(by_size) for name, by_size in table.items()}


def gflops_text(rate: float) -> str:
    """Format a rate with one decimal below 10 GFLOP/s, so that a slow path does not print as 0 or 1."""
    return f"{rate:.1f} GFLOP/s" if rate < 10 else f"{rate:.0f} GFLOP/s"


def format_report(table: dict[str, dict[int, float]], load: str, repeats: int) -> str:
    sizes = sorted(next(iter(table.values())))
    lines = [
        f"Machine: {machine_description()}, {torch.get_num_threads()} threads",
        "",
        f"Command: `{command_line()}`",
        "",
        f"Load before measuring: {load}.",
        "",
        f"torch.mm of two square matrices, 2 n^3 FLOPs per product, median of {repeats} timed runs per cell. "
        "The peak is the best cell of each precision.",
        "",
        "| precision | " + " | ".join(f"n = {size}" for size in sizes) + " | peak |",
        "|---|" + "---|" * (len(sizes) + 1),
    ]
    for name, by_size in table.items():
        cells = " | ".join("skipped" if by_size[size] is None else gflops_text(by_size[size]) for size in sizes)
        lines.append(f"| {name} | {cells} | **{gflops_text(best(by_size))}** |")
    if any(rate is None for by_size in table.values() for rate in by_size.values()):
        lines += ["", f"Skipped: sizes where one product would take more than {MAX_PRODUCT_SECONDS:g} s at the "
                  "rate of the previous size."]
    if not default_device_has_fast_bf16():
        lines += ["", "This CPU has no native bf16 matrix instructions (AVX512-BF16 or AMX), so bf16 products "
                  "run on a slow path; precision=auto trains in float32 here."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gptpipe.bench peak", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small matrices for a few seconds; does not write docs")
    parser.add_argument("--no-docs", action="store_true", help="print only, even for a full run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    load = "not checked (--quick)" if args.quick else wait_for_idle_cpu()
    sizes, repeats, min_seconds = (QUICK_SIZES, 3, 0.05) if args.quick else (FULL_SIZES, 5, 0.5)
    table = measure_peaks(sizes, repeats, min_seconds)
    report = format_report(table, load, repeats)
    print(report)  # a benchmark's report is its output
    if not args.quick and not args.no_docs:
        page = write_section("peak", "## Matrix-multiply peak\n\n" + report)
        log.info("wrote the peak section of %s", page)


if __name__ == "__main__":
    main()
