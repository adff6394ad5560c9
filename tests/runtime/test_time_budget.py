"""MAX_SECONDS: train() stops when its wall-clock budget is spent, and the learning-rate tail follows the budget."""

from __future__ import annotations

import csv
import json

from gptpipe.runtime.checkpoint import list_checkpoints, read_checkpoint
from script_runs import train_script

BUDGET = "MAX_SECONDS = 1\nDROP_CONFIG = 'slow2tail1'\n"
"""One second of training with a linear decay to 0 over the whole run; MAX_ITERS is far out of reach."""


def summary(state) -> dict:
    return json.loads((state.run_dir / "summary.json").read_text())


def evaluation_rows(state) -> list[dict]:
    with open(state.run_dir / "metrics.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["test_loss"]]


def test_budget_stops_training(run, text_file):
    state = run(train_script(text_file, 100_000, 100_000, BUDGET))
    result = summary(state)
    assert result["status"] == "completed"
    assert result["stopped_by"] == "MAX_SECONDS"
    assert result["max_seconds"] == 1.0
    assert 0 < state.iteration < 100_000
    assert result["iteration"] == state.iteration
    assert state.train_seconds >= 1.0
    # The final evaluation and checkpoint happen at the iteration where the budget ran out.
    rows = evaluation_rows(state)
    assert int(rows[-1]["iteration"]) == state.iteration
    assert [iteration for iteration, _ in list_checkpoints(state.checkpoint_dir)] == [state.iteration]


def test_tail_decays_over_the_budget(run, text_file):
    state = run(train_script(text_file, 100_000, 100_000, BUDGET))
    rows = evaluation_rows(state)
    assert float(rows[0]["learning_rate"]) > 0
    assert float(rows[-1]["learning_rate"]) == 0.0


def test_generous_budget_ends_at_max_iters(run, text_file):
    state = run(train_script(text_file, 4, 2, "MAX_SECONDS = 600\n"))
    result = summary(state)
    assert result["stopped_by"] == "MAX_ITERS"
    assert state.iteration == 4
    assert state.train_seconds < 600


def test_checkpoint_keeps_spent_seconds(run, text_file):
    first = run(train_script(text_file, 100_000, 100_000, BUDGET))
    (path,) = [path for _, path in list_checkpoints(first.checkpoint_dir)]
    schedule = read_checkpoint(path).metadata["schedule"]
    assert schedule["MAX_SECONDS"] == 1.0
    assert schedule["train_seconds"] >= 1.0

    # Resumed with the same budget, the run has nothing left to do.
    resume = (f"{BUDGET}CHECKPOINT_DIR = '{first.checkpoint_dir}'\nMAX_ITERS = 100000\n"
              f"make_char_dataset('{text_file}')\nload_checkpoint()\ntrain()\n")
    resumed = run(resume)
    assert resumed.iteration == first.iteration
    assert resumed.train_seconds == schedule["train_seconds"]

    # With a larger budget it goes on, and counts the seconds spent before the interruption.
    longer = resume.replace("MAX_SECONDS = 1\n", "MAX_SECONDS = 600\n").replace("MAX_ITERS = 100000",
                            f"MAX_ITERS = {first.iteration + 2}")
    continued = run(longer)
    assert continued.iteration == first.iteration + 2
    assert continued.train_seconds > schedule["train_seconds"]


def test_spent_budget_still_writes_summary(run, text_file):
    first = run(train_script(text_file, 100_000, 100_000, BUDGET))
    resume = (f"{BUDGET}CHECKPOINT_DIR = '{first.checkpoint_dir}'\nMAX_ITERS = 100000\n"
              f"make_char_dataset('{text_file}')\nload_checkpoint()\ntrain()\n")
    resumed = run(resume)
    result = summary(resumed)
    assert result["stopped_by"] == "MAX_SECONDS"
    assert result["iteration"] == first.iteration
    assert result["final_test_loss"] is None


def test_second_train_keeps_first_summary(run, text_file):
    state = run(train_script(text_file, 4, 2) + "train()\n")
    result = summary(state)
    assert result["iteration"] == 4
    assert result["final_test_loss"] is not None
