"""Convergence: the test loss a train script reaches on a text file within a wall-clock budget.

    python -m gptpipe.bench convergence [--data PATH] [--scripts S ...] [SETTING=VALUE ...]
    python -m gptpipe.bench convergence --quick     # a few iterations of each script, prints only (for CI)

Each script runs through the real `gptpipe` command with `data_path` set to the text file; the
scripts read it with make_char_dataset and TEST_FRACTION = 0.1 (first 90% train, last 10% test).
The report gives the whole command's wall time, the train loop's tokens/s, the test loss in
nats per character at the last evaluation inside the budget, and the loss curve against seconds
since the command started (start-up included).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from gptpipe.bench.report import command_line, machine_description, write_section
from gptpipe.bench.runs import RunResult, display_command, run_uncontended
from gptpipe.errors import DataError

log = logging.getLogger("gptpipe.bench")

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPOSITORY / ".." / "shared" / "data" / "tinyshakespeare.txt"
DEFAULT_SCRIPTS = ("cfg/shakespeare_80s.txt", "cfg/shakespeare_nanogpt.txt")
BUDGET_SECONDS = 80.0
QUICK_OVERRIDES = ["MAX_ITERS=4", "EVAL_INTERVAL=2", "EVAL_ITERS=1", "SAVE_MODEL=0"]


def loss_curve(result: RunResult) -> list[tuple[float, int, float]]:
    """Return (seconds since the command started, iteration, test loss) for every evaluation."""
    # metrics.csv counts seconds from the start of train(), and train() ends the command. So the
    # command's wall time minus the summary's wall_time_s is the start-up before train().
    start_up = result.wall_seconds - float(result.summary["wall_time_s"])
    return [(start_up + float(row["elapsed_s"]), int(row["iteration"]), float(row["test_loss"]))
            for row in result.evaluations]


def loss_at_budget(curve: list[tuple[float, int, float]], budget: float) -> float | None:
    """Return the test loss of the last evaluation at or before `budget` seconds, or None if there is none."""
    inside = [loss for seconds, _, loss in curve if seconds <= budget]
    return inside[-1] if inside else None


def format_run(script: str, overrides: list[str], result: RunResult, budget: float) -> str:
    curve = loss_curve(result)
    at_budget = loss_at_budget(curve, budget)
    summary = result.summary
    at_budget_text = f"{at_budget:.4f}" if at_budget is not None else "no evaluation inside the budget"
    lines = [
        f"### {script}",
        "",
        f"Command: `{display_command(script, overrides)}`",
        "",
        f"- MODEL_DIMS {summary['MODEL_DIMS']}, TRAIN_CONFIG {summary['TRAIN_CONFIG']}, DROP_CONFIG "
        f"{summary['DROP_CONFIG']}, optimizer {summary['optimizer']}, {summary['parameters']:,} parameters",
        f"- iterations: {summary['iteration']}, tokens trained: {summary['tokens_seen']:,}",
        f"- whole command: {result.wall_seconds:.1f} s wall; train loop {summary['wall_time_s']:.1f} s, of which "
        f"{summary['train_time_s']:.1f} s inside training iterations",
        f"- tokens/s inside training iterations: {summary['tokens_per_s']:,.0f}; over the whole command: "
        f"{summary['tokens_seen'] / result.wall_seconds:,.0f}",
        f"- final test loss: **{summary['final_test_loss']:.4f} nats/char**; at the {budget:.0f} s budget: "
        f"{at_budget_text}",
        f"- peak RSS {result.peak_rss_mib:,.0f} MiB; load: {result.load}; other processes used "
        f"{result.other_cores:.2f} cores during the run",
        "",
        "| seconds since start | iteration | test loss (nats/char) |",
        "|---|---|---|",
    ]
    lines += [f"| {seconds:.1f} | {iteration} | {loss:.4f} |" for seconds, iteration, loss in curve]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gptpipe.bench convergence",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="text file, read as characters")
    parser.add_argument("--scripts", nargs="+", default=list(DEFAULT_SCRIPTS),
                        help="train scripts, relative to the repository root or absolute")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="wall-clock budget in seconds")
    parser.add_argument("--quick", action="store_true", help="4 iterations per script; does not write docs")
    parser.add_argument("--no-docs", action="store_true", help="print only, even for a full run")
    parser.add_argument("--section", help="docs/benchmarks.md section to write (default: 'convergence' and the "
                        "script names), e.g. to keep a GPU run beside the CPU one")
    parser.add_argument("overrides", nargs="*", help="gptpipe settings for every script, e.g. precision=bf16-mixed")
    args = parser.parse_args(argv)
    # --scripts takes every following word, settings included, so move NAME=VALUE words back.
    args.overrides = [*(word for word in args.scripts if "=" in word), *args.overrides]
    args.scripts = [word for word in args.scripts if "=" not in word]
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    data = args.data.resolve()
    if not data.is_file():
        raise DataError(f"text file not found: {data}; pass an existing file with --data")
    sections = []
    with tempfile.TemporaryDirectory(prefix="gptpipe-convergence-") as folder:
        for number, script in enumerate(args.scripts):
            path = Path(script) if Path(script).is_absolute() else REPOSITORY / script
            overrides = [*args.overrides, *(QUICK_OVERRIDES if args.quick else [])]
            result = run_uncontended(path, Path(folder) / f"run{number}", [f"data_path={data}", *overrides],
                                     timeout=20 * args.budget, quick=args.quick)
            shown_overrides = ["data_path=<text file>", *overrides]
            sections.append(format_run(script, shown_overrides, result, args.budget))
            log.info("%s: final test loss %.4f, %.1f s wall", script, result.summary["final_test_loss"],
                     result.wall_seconds)

    report = "\n\n".join([
        f"Machine: {machine_description()}",
        f"Command: `{command_line()}` (text file: {data.name}, {data.stat().st_size:,} bytes)",
        *sections,
    ])
    print(report)  # a benchmark's report is its output
    if not args.quick and not args.no_docs:
        # One section per set of scripts, so scripts that need different settings keep separate records.
        section = args.section or "convergence " + " ".join(Path(script).stem for script in args.scripts)
        page = write_section(section, "## Convergence within a wall-clock budget\n\n" + report)
        log.info("wrote the %s section of %s", section, page)


if __name__ == "__main__":
    main()
