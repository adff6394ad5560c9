"""End-to-end training runs of the `gptpipe` command on real text, and how they stop."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

SHAKESPEARE_SCRIPT = """\
TEST_FRACTION = 0.1
make_char_dataset('${data_path}')
MODEL_DIMS = 'e128h1d2w64relu2'
TRAIN_CONFIG = 'b16f64'
DROP_CONFIG = 'lr0.01slow30'
MAX_ITERS = 150
EVAL_INTERVAL = 50
EVAL_ITERS = 8
SAVE_MODEL = false
create_model()
train()
"""


def gptpipe_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from gptpipe.cli import main; main()", *args]


def unigram_test_loss(text: str) -> float:
    """Cross-entropy in nats/char of predicting the test tail from the train characters' frequencies."""
    split = int(len(text) * 0.9)
    counts = Counter(text[:split])
    total = sum(counts.values())
    test = text[split:]
    # Characters unseen in training get one count, so the loss stays finite.
    return -sum(math.log(counts.get(char, 1) / total) for char in test) / len(test)


def only_run_dir(root: Path) -> Path:
    (summary,) = (root / "outputs").rglob("summary.json")
    return summary.parent


def test_shakespeare_loss_beats_unigram(tmp_path, shakespeare):
    (tmp_path / "run.txt").write_text(SHAKESPEARE_SCRIPT)
    result = subprocess.run(gptpipe_command("script=run.txt", f"data_path={shakespeare}", "precision=32-true"),
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    baseline = unigram_test_loss(shakespeare.read_text(encoding="utf-8"))
    assert summary["final_test_loss"] < baseline - 0.4
    assert summary["status"] == "completed"
    assert summary["iteration"] == 150
    assert summary["token_unit"] == "char"

    with open(run_dir / "metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["kind"] == "evaluation"]
    assert [int(row["iteration"]) for row in rows] == [0, 50, 100, 150]
    assert float(rows[-1]["test_loss"]) == summary["final_test_loss"]
    assert (run_dir / "loss.png").stat().st_size > 1000
    assert "bits/char" in (run_dir / "gptpipe.log").read_text()


def write_text_data(folder: Path) -> Path:
    path = folder / "text.txt"
    path.write_text("".join(f"row {i % 97}: all the world's a stage.\n" for i in range(3000)))
    return path


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_after_step(tmp_path, stop_signal):
    data = write_text_data(tmp_path)
    (tmp_path / "run.txt").write_text(
        "make_char_dataset('${data_path}')\nMODEL_DIMS = 'e128h1d2w32'\nTRAIN_CONFIG = 'b8f32'\n"
        "MAX_ITERS = 100000\nEVAL_INTERVAL = 20\nEVAL_ITERS = 1\ncreate_model()\ntrain()\n"
    )
    process = subprocess.Popen(gptpipe_command("script=run.txt", f"data_path={data}", "precision=32-true"),
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "outputs").rglob("metrics.csv")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(stop_signal)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    assert summary["status"].startswith("interrupted at iteration")
    assert 0 < summary["iteration"] < 100000
    assert (only_run_dir(tmp_path) / "checkpoints" / f"iter_{summary['iteration']}.safetensors").exists()
    relative = only_run_dir(tmp_path).relative_to(tmp_path)
    assert f"run: gptpipe resume={relative}\n" in (only_run_dir(tmp_path) / "gptpipe.log").read_text()


def test_non_finite_loss_stops_run(tmp_path):
    data = write_text_data(tmp_path)
    (tmp_path / "run.txt").write_text(
        "make_char_dataset('${data_path}')\nMODEL_DIMS = 'e128h1d2w32'\nTRAIN_CONFIG = 'b8f32'\n"
        "DROP_CONFIG = 'lr1e30slow1'\nMAX_ITERS = 50\nEVAL_INTERVAL = 10\nEVAL_ITERS = 1\nSAVE_MODEL = false\n"
        "create_model()\ntrain()\n"
    )
    result = subprocess.run(
        gptpipe_command("script=run.txt", f"data_path={data}", "precision=32-true", "optimizer=adamw"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "training stopped: the loss is" in result.stderr
    assert "try optimizer=adamw" not in result.stderr
    assert "last checkpoint" not in result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    assert summary["status"].startswith("stopped: loss")
