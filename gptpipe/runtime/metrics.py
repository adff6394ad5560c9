"""Run outputs for people watching: metrics.csv, TensorBoard events, loss.png, summary.json."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("gptpipe")

CSV_FIELDS = ("iteration", "elapsed_s", "kind", "train_loss", "test_loss", "test_accuracy", "learning_rate",
              "tokens_per_s")


class MetricsWriter:
    """Appends evaluation and per-iteration rows to metrics.csv and TensorBoard, redraws loss.png."""

    def __init__(self, run_dir: Path, loss_unit: str = "nats/token"):
        self.run_dir = run_dir
        self.loss_unit = loss_unit
        run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = run_dir / "metrics.csv"
        new_file = not self.csv_path.exists()
        self._csv_file = open(self.csv_path, "a", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_FIELDS)
        if new_file:
            self._csv.writeheader()
        self.evaluations: list[dict[str, Any]] = []
        self._tensorboard = _open_tensorboard(run_dir)

    def log_iteration(self, iteration: int, elapsed: float, train_loss: float, learning_rate: float) -> None:
        self._write({"iteration": iteration, "elapsed_s": round(elapsed, 3), "kind": "iteration",
                     "train_loss": train_loss, "learning_rate": learning_rate})
        if self._tensorboard is not None:
            self._tensorboard.add_scalar("loss/train_iteration", train_loss, iteration)

    def log_evaluation(self, row: dict[str, Any]) -> None:
        """Record one evaluation (iteration, elapsed_s, train_loss, test_loss, ...) and redraw loss.png."""
        row = dict(row, kind="evaluation")
        self._write(row)
        self.evaluations.append(row)
        if self._tensorboard is not None:
            for key in ("train_loss", "test_loss", "test_accuracy", "tokens_per_s", "learning_rate"):
                if row.get(key) is not None:
                    self._tensorboard.add_scalar(key.replace("_loss", "_loss/eval"), row[key], row["iteration"])
            self._tensorboard.flush()
        self.plot()

    def _write(self, row: dict[str, Any]) -> None:
        self._csv.writerow({key: row.get(key, "") for key in CSV_FIELDS})
        self._csv_file.flush()

    def plot(self) -> None:
        """Draw train and test loss against iteration into loss.png (written atomically)."""
        if not self.evaluations:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        iterations = [row["iteration"] for row in self.evaluations]
        figure, axes = plt.subplots(figsize=(7, 4.5))
        axes.plot(iterations, [row["train_loss"] for row in self.evaluations], marker=".", label="train")
        axes.plot(iterations, [row["test_loss"] for row in self.evaluations], marker=".", label="test")
        axes.set_xlabel("iteration")
        axes.set_ylabel(f"loss ({self.loss_unit})")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        temporary = self.run_dir / ".loss.png.tmp"
        figure.savefig(temporary, format="png", dpi=100)
        plt.close(figure)
        os.replace(temporary, self.run_dir / "loss.png")

    def close(self) -> None:
        self._csv_file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def _open_tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to a temporary file, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)
