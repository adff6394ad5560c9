"""End-to-end runs of the `gptpipe` command in a subprocess, in a temporary folder."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY_RUN = """\
MODEL_DIMS = 'e128h1d2w32'
TRAIN_CONFIG = 'b4f32'
DROP_CONFIG = 'slow5'
MAX_ITERS = 12
EVAL_INTERVAL = 6
EVAL_ITERS = 1
SAVE_MODEL = false
make_char_dataset('${data_dir}/text.txt')
create_model()
train()
"""


def gptpipe(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from gptpipe.cli import main; main()", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(400))
    (tmp_path / "text.txt").write_text(text)
    (tmp_path / "run.txt").write_text(TINY_RUN)
    return tmp_path


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "outputs").rglob("summary.json"))


def test_dry_run_prints_plan(workdir):
    result = gptpipe(workdir, "script=run.txt", "dry_run=true", f"data_dir={workdir}")
    assert result.returncode == 0, result.stderr
    assert "plan for run.txt: 3 steps" in result.stdout
    assert "step 3  run.txt:10:1  train()" in result.stdout
    assert "MODEL_DIMS e128h1d2w32relu1" in result.stdout
    assert "4 fragments x 32 tokens = 128 tokens per batch" in result.stdout
    assert "DROP_CONFIG drop1ch1lr0.01slow5reg0tail0: no dropout, lr 0.01" in result.stdout
    assert "MAX_ITERS=12" in result.stdout
    assert run_dirs(workdir) == []


def test_bad_script_exits_2_without_traceback(workdir):
    (workdir / "bad.txt").write_text("MAX_ITERS = 10\nSAVE_MODEL = false\"\ntrain()\n")
    result = gptpipe(workdir, "script=bad.txt")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("gptpipe: error: bad.txt:2:19: unterminated string")


def test_unknown_override_suggests_name(workdir):
    result = gptpipe(workdir, "script=run.txt", "MAX_ITER=5")
    assert result.returncode == 2
    assert "did you mean MAX_ITERS?" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_script_file(workdir):
    result = gptpipe(workdir, "script=nope.txt")
    assert result.returncode == 2
    assert "script file not found: nope.txt" in result.stderr


def test_help_lists_variables_and_operations(workdir):
    result = gptpipe(workdir, "--help")
    assert result.returncode == 0
    for name in ("MODEL_DIMS", "EVAL_ITERS (alias EVAL_BATCH_COUNT)", "create_model(*flags: flag)", "train()",
                 "load_text(path: file)", "dry_run", "MPF_TAIL_LOSS"):
        assert name in result.stdout


def test_run_with_override(workdir):
    result = gptpipe(workdir, "script=run.txt", f"data_dir={workdir}", "MAX_ITERS=6", "precision=32-true",
                     "drop.lr=0.02")
    assert result.returncode == 0, result.stderr
    (run_dir,) = run_dirs(workdir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iteration"] == 6
    assert summary["DROP_CONFIG"] == "drop1ch1lr0.02slow5reg0tail0"
    log = (run_dir / "gptpipe.log").read_text()
    assert log.count("command line sets MAX_ITERS=6") == 1
    assert log.count("command line sets drop.lr=0.02") == 1
    for name in ("metrics.csv", "loss.png", "script.txt", "plan.txt", ".hydra/config.yaml"):
        assert (run_dir / name).exists(), name


def test_multirun_two_jobs(workdir):
    result = gptpipe(workdir, "script=run.txt", f"data_dir={workdir}", "precision=32-true", "MAX_ITERS=4",
                     "--multirun", "DROP_CONFIG=lr0.01slow2,lr0.02slow2")
    assert result.returncode == 0, result.stderr
    dirs = run_dirs(workdir)
    assert [d.name for d in dirs] == ["0", "1"]
    drops = [json.loads((d / "summary.json").read_text())["DROP_CONFIG"] for d in dirs]
    assert drops == ["drop1ch1lr0.01slow2reg0tail0", "drop1ch1lr0.02slow2reg0tail0"]


def test_multirun_goes_on_after_failed_job(workdir):
    result = gptpipe(workdir, "script=run.txt", f"data_dir={workdir}", "precision=32-true", "optimizer=adamw",
                     "MAX_ITERS=4", "hydra.sweep.dir=sweep", "--multirun", "DROP_CONFIG=lr1e30slow1,lr0.01slow2")
    assert result.returncode == 2, result.stderr
    assert "training stopped: the loss is" in result.stderr
    assert "sweep job(s) 0 (" in result.stderr
    assert "DROP_CONFIG=lr1e30slow1) failed" in result.stderr
    assert json.loads((workdir / "sweep" / "1" / "summary.json").read_text())["status"] == "completed"
    rows = (workdir / "sweep" / "sweep_summary.csv").read_text().splitlines()
    assert len(rows) == 3
    assert "stopped: loss" in rows[1]


def test_interrupted_multirun_writes_summary(workdir):
    command = [sys.executable, "-c", "from gptpipe.cli import main; main()", "script=run.txt", f"data_dir={workdir}",
               "precision=32-true", "MAX_ITERS=1000000", "EVAL_INTERVAL=5", "hydra.sweep.dir=sweep", "--multirun",
               "DROP_CONFIG=lr0.01slow2,lr0.02slow2"]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (workdir / "sweep" / "0" / "metrics.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    with open(workdir / "sweep" / "sweep_summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["job"] for row in rows] == ["0", "1"]
    assert rows[0]["status"].startswith("interrupted at iteration")
    assert rows[1]["status"] == "not run: the sweep was stopped before it"
    assert rows[1]["DROP_CONFIG"] == "lr0.02slow2"
    assert not (workdir / "sweep" / "1").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_multirun_checks_every_job_first(workdir, dry_run):
    result = gptpipe(workdir, "script=run.txt", f"data_dir={workdir}", "precision=32-true", "MAX_ITERS=4",
                     f"dry_run={str(dry_run).lower()}", "--multirun", "model.depth=2,3")
    assert result.returncode == 2, result.stderr
    assert "sweep job 1 (model.depth=3; jobs 0 to 1): invalid MODEL_DIMS" in result.stderr
    assert "no job was started" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((workdir / "outputs").rglob("plan.txt"))


def test_multirun_rejects_shared_checkpoint_dir(workdir):
    result = gptpipe(workdir, "script=run.txt", f"data_dir={workdir}", "SAVE_MODEL=true", "CHECKPOINT_DIR=shared",
                     "dry_run=true", "--multirun", "DROP_CONFIG=lr0.01slow2,lr0.02slow2")
    assert result.returncode == 2, result.stderr
    expected = "sweep jobs 0 (DROP_CONFIG=lr0.01slow2) and 1 (DROP_CONFIG=lr0.02slow2) both save checkpoints"
    assert expected in result.stderr


EXAMPLE_SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "cfg").glob("*.txt"))


@pytest.mark.parametrize("script", EXAMPLE_SCRIPTS, ids=[p.name for p in EXAMPLE_SCRIPTS])
def test_example_script_dry_run(workdir, script):
    result = gptpipe(workdir, f"script={script}", "dry_run=true", f"data_path={workdir / 'text.txt'}")
    assert result.returncode == 0, result.stderr
    assert "train()" in result.stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.depth=abc", "MODEL_DIMS field depth (depth in blocks, even) needs a whole number, got 'abc'"),
        ("model.heads=1.5", "needs a whole number, got 1.5 (with model.heads=1.5 from the command line)"),
        ("model.dept=8", "unknown setting model.dept; did you mean model.depth?"),
        ("precision=fp8", "invalid precision=fp8"),
        ("optimizer=sgd", "unknown optimizer=sgd"),
        ("accelerator=warp", "invalid accelerator=warp"),
        ("TEST_FRACTION=1.5", "TEST_FRACTION must be below 1.0"),
        ("MAX_SECONDS=nan", "MAX_SECONDS expects a finite number (seconds)"),
        ("MAX_SECONDS=inf", "MAX_SECONDS expects a finite number (seconds)"),
        ("MAX_SECONDS=-1", "hint: fix the value in MAX_SECONDS=... on the command line, e.g. MAX_SECONDS=70"),
        ("DEVICE_COUNT=512 train.batch=512", "DEVICE_COUNT 512 is more than the"),
        ("dry_run", "invalid command-line argument 'dry_run': expected NAME=value"),
        ("MAX_ITERS=[1", "invalid command-line override"),
    ],
)
def test_bad_override_exits_2_in_dry_run(workdir, override, message):
    result = gptpipe(workdir, "script=run.txt", "dry_run=true", f"data_dir={workdir}", *override.split())
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_path_hint_names_key(workdir):
    (workdir / "char.txt").write_text("make_char_dataset('${data_path}')\ncreate_model()\ntrain()\n")
    result = gptpipe(workdir, "script=char.txt", "dry_run=true")
    assert result.returncode == 2
    assert "hint: set it on the command line, e.g. data_path=/path/to/file" in result.stderr


def test_dry_run_leaves_no_output_folder(workdir):
    result = gptpipe(workdir, "script=run.txt", "dry_run=true", f"data_dir={workdir}")
    assert result.returncode == 0, result.stderr
    assert not (workdir / "outputs").exists()


def test_warning_lines_are_labelled(workdir):
    (workdir / "empty.txt").write_text("MAX_ITERS = 10\n")
    result = gptpipe(workdir, "script=empty.txt")
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "has no operations" in line]
    assert len(lines) == 1
    assert "] warning: empty.txt has no operations" in lines[0]
    assert "] warning:" not in output.replace(lines[0], "")
    assert "] done" in output
