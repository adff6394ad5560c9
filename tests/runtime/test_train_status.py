"""summary.json when train() ends early: a second Ctrl-C or an error in the middle of a step."""

from __future__ import annotations

import json
import logging

import pytest

from gptpipe.runtime.train import Trainer
from script_runs import train_script


def stop_at(iteration: int, error: BaseException):
    """Return a replacement for Trainer._train_step that raises `error` at `iteration`."""
    original = Trainer._train_step

    def step(self, model, optimizer, current: int) -> float:
        if current == iteration:
            raise error
        return original(self, model, optimizer, current)

    return step


@pytest.mark.parametrize("error, status", [
    (KeyboardInterrupt(), "interrupted at iteration 7"),
    (RuntimeError("out of memory"), "failed at iteration 7: RuntimeError"),
])
def test_summary_status_when_stopped_midstep(run, text_file, monkeypatch, error, status):
    monkeypatch.setattr(Trainer, "_train_step", stop_at(7, error))
    with pytest.raises(type(error)):
        run(train_script(text_file, 20, 5))
    (run_dir,) = [path for path in text_file.parent.glob("run*") if path.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == status
    assert summary["stopped_by"] is None
    assert summary["iteration"] == 7
    assert summary["final_eval_iteration"] == 5


def test_warns_before_overwriting_checkpoints(run, text_file, tmp_path, caplog):
    folder = tmp_path / "shared"
    run(train_script(text_file, 4, 2, f"CHECKPOINT_DIR = '{folder}'\n"))
    with caplog.at_level(logging.WARNING, logger="gptpipe"):
        run(train_script(text_file, 4, 2, f"CHECKPOINT_DIR = '{folder}'\n"))
    assert "already has checkpoints past iteration 0 (2, 4)" in caplog.text


def test_warns_about_warmup_longer_than_run(run, text_file, caplog):
    with caplog.at_level(logging.WARNING, logger="gptpipe"):
        run(train_script(text_file, 4, 2, "DROP_CONFIG = 'slow1000'\n"))
    assert "the warm-up (slow1000 in DROP_CONFIG) is longer than MAX_ITERS 4" in caplog.text
