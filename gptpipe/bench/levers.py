"""Speed levers one at a time: the train loop's tokens/s with each setting changed from a float32 baseline.

    python -m gptpipe.bench levers            # writes the "levers" section of docs/benchmarks.md
    python -m gptpipe.bench levers --quick    # a tiny model, prints only (for CI)

Every row runs the same configuration as the throughput benchmark (the `gptpipe` command in a
fresh process, tokens/s of iterations k to 2k) with one gptpipe setting changed.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from gptpipe.bench.idle import measure_uncontended
from gptpipe.bench.peak import peak_gflops
from gptpipe.bench.report import command_line, machine_description, write_section
from gptpipe.bench.throughput import FULL_CONFIGURATIONS, QUICK_CONFIGURATIONS, measure
from gptpipe.hardware import default_device_has_fast_bf16

log = logging.getLogger("gptpipe.bench")

BASELINE = ("float32", "adamw", [])
LEVERS = (
    ("bf16 autocast (precision=bf16-mixed)", ("bf16", "adamw", [])),
    ("torch.compile (compile=true), float32", ("float32", "adamw", ["compile=true"])),
    ("torch.compile (compile=true), bf16", ("bf16", "adamw", ["compile=true"])),
    ("one thread (threads=1), float32", ("float32", "adamw", ["threads=1"])),
    ("optimizer=muon instead of adamw, float32", ("float32", "muon", [])),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gptpipe.bench levers", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model; does not write docs")
    parser.add_argument("--no-docs", action="store_true", help="print only, even for a full run")
    parser.add_argument("--force-bf16", action="store_true",
                        help="measure the bf16 levers even on a CPU without native bf16 instructions (slow)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    configuration = QUICK_CONFIGURATIONS[0] if args.quick else FULL_CONFIGURATIONS[0]
    peaks = peak_gflops(quick=True) if args.quick else measure_uncontended(peak_gflops)[0]
    with tempfile.TemporaryDirectory(prefix="gptpipe-levers-") as folder:

        def run(number: int, name: str, precision: str, optimizer: str, extra: list[str]):
            row = measure(configuration, precision, optimizer, peaks, Path(folder) / f"lever{number}", extra,
                          args.quick)
            log.info("%s: %.0f tokens/s", name, row.tokens_per_s)
            return row

        baseline = run(0, "baseline", *BASELINE)
        # The quick run leaves out torch.compile, whose compile time alone is longer than a CI smoke test.
        levers = [(name, setting) for name, setting in LEVERS if not (args.quick and "compile=true" in setting[2])]
        skip_bf16 = not default_device_has_fast_bf16() and not args.quick and not args.force_bf16
        if skip_bf16:
            log.info("this CPU has no native bf16 matrix instructions: leaving out the bf16 levers "
                     "(--force-bf16 measures them)")
            levers = [(name, setting) for name, setting in levers if setting[0] != "bf16"]
        rows = [(name, run(number, name, *setting)) for number, (name, setting) in enumerate(levers, start=1)]

    lines = [
        f"Machine: {machine_description()}",
        "",
        f"Command: `{command_line()}`",
        "",
        f"{configuration.model} {configuration.batch}, default corpus, k = {configuration.measured_iterations} "
        "(see the throughput section). Baseline: precision=32-true, optimizer=adamw, compile=false, "
        "threads=0 (torch's default, one per core).",
        "",
        "| lever | before (tokens/s) | after (tokens/s) | change |",
        "|---|---|---|---|",
    ]
    for name, row in rows:
        change = row.tokens_per_s / baseline.tokens_per_s - 1
        lines.append(f"| {name} | {baseline.tokens_per_s:,.0f} | {row.tokens_per_s:,.0f} | {100 * change:+.0f}% |")
    if skip_bf16:
        lines += ["", "The bf16 levers are left out: this CPU has no native bf16 matrix instructions (AVX512-BF16 or "
                  "AMX), so bf16 products run on a slow path. `--force-bf16` measures them."]
    report = "\n".join(lines)
    print(report)  # a benchmark's report is its output
    if not args.quick and not args.no_docs:
        page = write_section("levers", "## Speed levers\n\n" + report)
        log.info("wrote the levers section of %s", page)


if __name__ == "__main__":
    main()
