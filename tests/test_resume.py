"""Resuming: a run killed during training and resumed from its checkpoint ends like an uninterrupted run.

It is resumed twice: by a script that calls load_checkpoint(), and with resume=RUN_DIR.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptpipe.runtime.checkpoint import list_checkpoints

MAX_ITERS = 12
EVAL_INTERVAL = 4
SETTINGS = f"""\
MODEL_DIMS = 'e128h1d2w32'
TRAIN_CONFIG = 'b4f16'
DROP_CONFIG = 'drop0.9ch0.75slow10'
MAX_ITERS = {MAX_ITERS}
EVAL_INTERVAL = {EVAL_INTERVAL}
EVAL_ITERS = 2
"""
RUN_SCRIPT = SETTINGS + "make_char_dataset('${data_dir}/text.txt')\ncreate_model()\ntrain()\n"
RESUME_SCRIPT = (SETTINGS + "CHECKPOINT_DIR = '${data_dir}/kept'\nmake_char_dataset('${data_dir}/text.txt')\n"
                 "load_checkpoint(RESUME_FROM)\ntrain()\n")


def gptpipe_command(workdir: Path, script: str, run_name: str, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from gptpipe.cli import main; main()", f"script={script}",
            "precision=32-true", "accelerator=cpu", f"data_dir={workdir}", f"hydra.run.dir={workdir / run_name}",
            *extra]


def final_test_loss(run_dir: Path) -> float:
    return json.loads((run_dir / "summary.json").read_text())["final_test_loss"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    lines = [f"{i % 13} little pigs, {i % 5} wolves and {i % 3} houses of straw.\n" for i in range(500)]
    (tmp_path / "text.txt").write_text("".join(lines))
    (tmp_path / "run.txt").write_text(RUN_SCRIPT)
    return tmp_path


def write_resume_script(workdir: Path, iteration: int) -> None:
    (workdir / "resume.txt").write_text(RESUME_SCRIPT.replace("RESUME_FROM", str(iteration)))


def kill_after_first_checkpoint(command: list[str], cwd: Path, checkpoints: Path, timeout: float) -> None:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not list_checkpoints(checkpoints):
            if process.poll() is not None:
                pytest.fail(f"the run ended before its first checkpoint: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint appeared in {checkpoints} within {timeout} s")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()


def test_resume_matches_uninterrupted_run(workdir):
    uninterrupted = subprocess.Popen(gptpipe_command(workdir, "run.txt", "full", "SAVE_MODEL=false"), cwd=workdir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    killed_checkpoints = workdir / "killed" / "checkpoints"
    kill_after_first_checkpoint(gptpipe_command(workdir, "run.txt", "killed"), workdir, killed_checkpoints, 120)
    saved = list_checkpoints(killed_checkpoints)
    resume_from = saved[-1][0]
    assert resume_from < MAX_ITERS, "the kill landed after training ended; raise MAX_ITERS"
    assert not (workdir / "killed" / "summary.json").exists()

    shutil.copytree(killed_checkpoints, workdir / "kept")
    write_resume_script(workdir, resume_from)
    resumed = subprocess.run(gptpipe_command(workdir, "resume.txt", "resumed"), cwd=workdir, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_log = (workdir / "resumed" / "gptpipe.log").read_text()
    assert f"iterations {resume_from} to {MAX_ITERS}" in resumed_log

    # resume=RUN_DIR does the same from the killed run's own folder, script and command-line values.
    continued = subprocess.run(
        [sys.executable, "-c", "from gptpipe.cli import main; main()", f"resume={workdir / 'killed'}",
         f"hydra.run.dir={workdir / 'continued'}"], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert continued.returncode == 0, continued.stderr[-3000:]
    continued_log = (workdir / "continued" / "gptpipe.log").read_text()
    assert f"load_checkpoint() (added by resume={workdir / 'killed'})" in continued_log
    assert f"iterations {resume_from} to {MAX_ITERS}" in continued_log
    assert list_checkpoints(killed_checkpoints)[-1][0] == MAX_ITERS

    _, errors = uninterrupted.communicate(timeout=120)
    assert uninterrupted.returncode == 0, errors.decode()[-3000:]
    expected = final_test_loss(workdir / "full")
    assert final_test_loss(workdir / "resumed") == pytest.approx(expected, rel=1e-5)
    assert final_test_loss(workdir / "continued") == pytest.approx(expected, rel=1e-5)

