"""Run the real `gptpipe` command on a generated train script and read back what it measured.

The throughput and convergence benchmarks both go through here, so every figure they print
comes from the product's own train loop: the model, the optimizer, dropout, loss, backward
and optimizer step exactly as a user's run does them.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gptpipe.bench.idle import CONTENDED_CORES, ContentionMonitor, wait_for_idle_cpu

log = logging.getLogger("gptpipe.bench")


@dataclass
class RunResult:
    wall_seconds: float
    """Whole command, from process start to exit: imports, data, model, evaluations, checkpoints."""
    peak_rss_mib: float
    """Maximum resident set size of the training process."""
    evaluations: list[dict[str, str]]
    """metrics.csv rows of kind "evaluation", in order."""
    summary: dict
    """summary.json of the run."""
    other_cores: float
    """Mean number of cores other processes used while the run was going."""
    load: str
    """Description of the machine's load just before the run."""


def gptpipe_command(script: Path, run_dir: Path, overrides: list[str]) -> list[str]:
    """Return the argv that runs `script` with the gptpipe command of this Python environment."""
    executable = Path(sys.executable).parent / "gptpipe"
    if not executable.exists():
        raise FileNotFoundError(f"the gptpipe command is not installed next to {sys.executable}; run pip install -e .")
    return [str(executable), f"script={script}", f"hydra.run.dir={run_dir}", *overrides]


def display_command(script: str, overrides: list[str]) -> str:
    """Return the command a user types for the same run."""
    return " ".join(["gptpipe", f"script={script}", *overrides])


def run_gptpipe(script: Path, run_dir: Path, overrides: list[str], timeout: float,
                wait_for_idle: bool = True) -> RunResult:
    """Run the gptpipe command once and return its wall time, peak memory and metrics.

    With `wait_for_idle` it first waits until no other process is busy. Raises RuntimeError
    with the command's output when it fails.
    """
    load = wait_for_idle_cpu() if wait_for_idle else "not checked"
    argv = gptpipe_command(script, run_dir, overrides)
    monitor = ContentionMonitor().start()
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "command_output.txt"
    with open(log_path, "w", encoding="utf-8") as output_file:
        process = subprocess.Popen(argv, stdout=output_file, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
        # os.wait4 reaps the child and returns its own resource usage, so the peak RSS is this run's alone.
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.perf_counter() - started > timeout:
                process.kill()
                os.wait4(process.pid, 0)
                raise RuntimeError(f"{' '.join(argv)} ran longer than {timeout:.0f} s; see {log_path}")
            time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    other_cores = monitor.stop()
    if process.returncode != 0:
        output = log_path.read_text(encoding="utf-8", errors="replace")
        raise RuntimeError(f"{' '.join(argv)} failed with status {process.returncode}:\n{output[-3000:]}")
    peak_rss_mib = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as metrics:
        evaluations = [row for row in csv.DictReader(metrics) if row["kind"] == "evaluation"]
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return RunResult(wall, peak_rss_mib, evaluations, summary, other_cores, load)


def run_uncontended(script: Path, run_dir_root: Path, overrides: list[str], timeout: float,
                    attempts: int = 10, quick: bool = False) -> RunResult:
    """`run_gptpipe` repeated in fresh run folders until one run had the CPU to itself.

    With `quick` (the CI smoke runs) it runs once, without waiting, and accepts any load.
    """
    if quick:
        return run_gptpipe(script, run_dir_root / "attempt0", overrides, timeout, wait_for_idle=False)
    for attempt in range(attempts):
        run_dir = run_dir_root / f"attempt{attempt}"
        result = run_gptpipe(script, run_dir, overrides, timeout)
        if result.other_cores <= CONTENDED_CORES:
            return result
        log.info("other processes used %.2f cores during the run; repeating it", result.other_cores)
    raise TimeoutError(f"every one of {attempts} runs of {script} ran under contention")
