"""Sweep summary: after `gptpipe --multirun`, one table and one plot that compare the jobs.

Hydra calls `SweepSummary.on_multirun_end` once the last job of a sweep has ended. It reads each
job's `.hydra/overrides.yaml`, `summary.json` and `metrics.csv` from the sweep directory and
writes `sweep_summary.csv`, `sweep_summary.md` and `sweep_test_loss.png` there.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("gptpipe")

ERROR_FILE = "error.txt"
"""File in a failed sweep job's folder with the error that ended it; its first line goes into the table."""

RESULT_COLUMNS = ("status", "stopped_by", "iteration", "final_train_loss", "final_test_loss", "tokens_per_s",
                  "wall_time_s")


class SweepSummary(Callback):
    """Hydra callback that checks every job before a sweep starts, and writes its summary table and plot after."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from gptpipe.cli import EXIT_USER_ERROR, check_sweep_jobs, report_error
        from gptpipe.errors import GptpipeError

        try:
            count = check_sweep_jobs(config)
        except GptpipeError as error:
            report_error(error)
            sys.exit(EXIT_USER_ERROR)
        if count:
            log.info("sweep: the plans of all %d jobs check out", count)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from gptpipe.cli import EXIT_USER_ERROR, FAILED_SWEEP_JOBS

        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            log.warning("sweep summary: sweep directory %s not found; nothing to summarise", sweep_dir)
        else:
            paths = write_sweep_summary(sweep_dir)
            if paths:
                log.info("sweep summary: %s", ", ".join(str(path) for path in paths))
        if FAILED_SWEEP_JOBS:
            jobs = ", ".join(FAILED_SWEEP_JOBS)
            print(f"gptpipe: error: sweep job(s) {jobs} failed (their errors are above and in their gptpipe.log); "
                  "the other jobs ran", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Return the job directories of a sweep (named by job number), in job order."""
    return sorted((path for path in sweep_dir.iterdir() if path.is_dir() and path.name.isdigit()),
                  key=lambda path: int(path.name))


def read_overrides(job_dir: Path) -> dict[str, str]:
    """Return the job's command-line overrides as name -> value text."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    return _by_name(str(item) for item in OmegaConf.load(path))


def _by_name(overrides: Iterable[str]) -> dict[str, str]:
    """Return NAME=value overrides as name -> value text, without Hydra's + and ~ prefixes."""
    named = {}
    for item in overrides:
        name, _, value = item.partition("=")
        named[name.lstrip("+~")] = value
    return named


NOT_RUN = "not run: the sweep was stopped before it"


def summary_rows(sweep_dir: Path, planned: list[list[str]] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """Return the table's columns and one row per job (missing results stay empty).

    `planned` lists every job's overrides; jobs in it without a folder get a NOT_RUN row.
    """
    rows = []
    override_names: list[str] = []
    for job_dir in job_dirs(sweep_dir):
        overrides = read_overrides(job_dir)
        for name in overrides:
            if name not in override_names:
                override_names.append(name)
        row: dict[str, Any] = {"job": job_dir.name, **overrides}
        summary_path = job_dir / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            row.update({column: summary.get(column) for column in RESULT_COLUMNS})
        elif (job_dir / ERROR_FILE).exists():
            first_line = (job_dir / ERROR_FILE).read_text(encoding="utf-8").strip().splitlines()[0]
            row["status"] = f"failed: {first_line}"
        else:
            row["status"] = "no summary.json (failed or did not train)"
        rows.append(row)
    ran = {row["job"] for row in rows}
    for number, job in enumerate(planned or []):
        if str(number) not in ran:
            overrides = _by_name(job)
            override_names.extend(name for name in overrides if name not in override_names)
            rows.append({"job": str(number), **overrides, "status": NOT_RUN})
    return ["job", *override_names, *RESULT_COLUMNS], rows


def write_sweep_summary(sweep_dir: Path, planned: list[list[str]] | None = None) -> list[Path]:
    """Write sweep_summary.csv, sweep_summary.md and sweep_test_loss.png; return the paths written.

    `planned`, every job's overrides, adds a row for each job that never ran.
    """
    columns, rows = summary_rows(sweep_dir, planned)
    if not rows:
        log.warning("sweep summary: no job directories in %s", sweep_dir)
        return []
    csv_path = sweep_dir / "sweep_summary.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _cell(row.get(column)) for column in columns})

    markdown_path = sweep_dir / "sweep_summary.md"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column), column) for column in columns) + " |")
    markdown_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    written = [csv_path, markdown_path]
    plot_path = plot_test_loss(sweep_dir, rows, [name for name in columns if name not in ("job", *RESULT_COLUMNS)])
    if plot_path is not None:
        written.append(plot_path)
    return written


def swept_names(rows: list[dict[str, Any]], override_names: list[str]) -> list[str]:
    """Return the overrides whose value differs between jobs, the ones that tell the curves apart."""
    return [name for name in override_names if len({str(row.get(name)) for row in rows}) > 1]


def plot_test_loss(sweep_dir: Path, rows: list[dict[str, Any]], override_names: list[str]) -> Path | None:
    """Overlay every job's test loss (metrics.csv rows of kind "evaluation") in sweep_test_loss.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varying = swept_names(rows, override_names)
    figure, axes = plt.subplots(figsize=(8, 5))
    plotted = 0
    for row in rows:
        iterations, losses = _test_losses(sweep_dir / row["job"] / "metrics.csv")
        if not iterations:
            continue
        label = ", ".join(f"{name}={row[name]}" for name in varying if name in row) or f"job {row['job']}"
        axes.plot(iterations, losses, marker=".", label=label)
        plotted += 1
    if plotted == 0:
        plt.close(figure)
        return None
    axes.set_xlabel("iteration")
    axes.set_ylabel("test loss (nats/token)")
    axes.set_title(f"test loss of {plotted} sweep job{'s' if plotted != 1 else ''}")
    axes.grid(True, alpha=0.3)
    # Outside the axes, so a long legend never hides a curve.
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    path = sweep_dir / "sweep_test_loss.png"
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _test_losses(metrics_path: Path) -> tuple[list[int], list[float]]:
    if not metrics_path.exists():
        return [], []
    iterations, losses = [], []
    with open(metrics_path, newline="", encoding="utf-8") as file:
        for record in csv.DictReader(file):
            if record.get("kind") == "evaluation" and record.get("test_loss"):
                iterations.append(int(record["iteration"]))
                losses.append(float(record["test_loss"]))
    return iterations, losses


# Decimals shown in sweep_summary.md; other floats (the losses) get 4. The CSV keeps every digit.
_SHOWN_DECIMALS = {"tokens_per_s": 0, "wall_time_s": 1}


def _cell(value: Any, column: str | None = None) -> str:
    """Format one table cell: every digit for the CSV (no column), rounded by column for Markdown."""
    if value is None:
        return ""
    if isinstance(value, float) and column is not None:
        return f"{value:.{_SHOWN_DECIMALS.get(column, 4)}f}"
    return str(value)
