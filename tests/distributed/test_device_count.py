"""DEVICE_COUNT through the gptpipe command: CPU rank processes, errors, and sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from distributed_helpers import (COMMAND_TIMEOUT_S, GPTPIPE, evaluation_rows, run_gptpipe, write_corpus,
                                 write_script)

# float32 on CPU: the all-reduced gradients of two ranks differ from one rank's sum only by rounding.
LOSS_TOLERANCE = 1e-4
TRAIN_THEN_EXACT_TEST = "train()\ncompute_exact_test()"
EXACT_TEST_BATCHES = "EXACT_TEST_BATCHES=5"


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
    """The reference: the tiny script on one process (b6, 4 iterations)."""
    folder = tmp_path_factory.mktemp("single")
    write_corpus(folder / "corpus.txt")
    write_script(folder, TRAIN_THEN_EXACT_TEST)
    result = run_gptpipe(folder, "script=script.txt", "precision=32-true", EXACT_TEST_BATCHES, "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    return folder / "run"


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """The same script on two CPU rank processes (DEVICE_COUNT=2)."""
    folder = tmp_path_factory.mktemp("two_ranks")
    write_corpus(folder / "corpus.txt")
    write_script(folder, TRAIN_THEN_EXACT_TEST)
    result = run_gptpipe(folder, "script=script.txt", "precision=32-true", EXACT_TEST_BATCHES, "DEVICE_COUNT=2",
                         "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    return folder / "run"


def test_two_ranks_match_one(two_rank_run, single_process_run):
    summary = json.loads((two_rank_run / "summary.json").read_text())
    assert summary["devices"] == 2
    expected = evaluation_rows(single_process_run)
    actual = evaluation_rows(two_rank_run)
    assert [row["iteration"] for row in actual] == [row["iteration"] for row in expected]
    for mine, reference in zip(actual, expected):
        assert float(mine["train_loss"]) == pytest.approx(float(reference["train_loss"]), abs=LOSS_TOLERANCE)
        assert float(mine["test_loss"]) == pytest.approx(float(reference["test_loss"]), abs=LOSS_TOLERANCE)


def test_two_ranks_share_exact_test(two_rank_run, single_process_run):
    # The ranks split 5 batches 3 + 2 and sum them, so the result is that of one process.
    expected = json.loads((single_process_run / "exact_test.json").read_text())
    actual = json.loads((two_rank_run / "exact_test.json").read_text())
    assert actual["batches"] == 5
    assert actual["test_loss"] == pytest.approx(expected["test_loss"], abs=LOSS_TOLERANCE)
    assert actual["standard_error"] == pytest.approx(expected["standard_error"], rel=0.01)


def test_two_ranks_log_once(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    # Every rank reads the data, and an invalid UTF-8 byte in it draws a warning from each reader.
    with open(corpus, "ab") as file:
        file.write(b"caf\xe9\n")
    write_script(tmp_path)
    result = run_gptpipe(tmp_path, "script=script.txt", "precision=32-true", "DEVICE_COUNT=2", "MAX_ITERS=2",
                         "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    log_text = (tmp_path / "run" / "gptpipe.log").read_text()
    assert log_text.count("| test loss ") == 2
    assert "launching 2 rank processes" in log_text
    assert (result.stdout + result.stderr).count("replaced 1 invalid UTF-8 sequences") == 1


def test_device_count_above_cores(tmp_path):
    cores = len(os.sched_getaffinity(0))
    write_corpus(tmp_path / "corpus.txt")
    write_script(tmp_path)
    result = run_gptpipe(tmp_path, "script=script.txt", f"DEVICE_COUNT={cores + 1}", f"TRAIN_CONFIG=b{6 * (cores + 1)}f32")
    assert result.returncode == 2
    assert f"DEVICE_COUNT {cores + 1} is more than the {cores} CPU core" in result.stderr


def test_rank_user_error_once(tmp_path):
    (tmp_path / "corpus.txt").write_text("")
    write_script(tmp_path)
    result = run_gptpipe(tmp_path, "script=script.txt", "precision=32-true", "DEVICE_COUNT=2")
    assert result.returncode == 2
    assert result.stderr.count("gptpipe: error:") == 1
    assert "script.txt:8:1: load_text(corpus.txt)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_fsdp_on_cpu_rejected(tmp_path):
    write_corpus(tmp_path / "corpus.txt")
    write_script(tmp_path)
    result = run_gptpipe(tmp_path, "script=script.txt", "accelerator=cpu", "strategy=fsdp", "DEVICE_COUNT=2")
    assert result.returncode == 2
    assert "strategy=fsdp needs CUDA GPUs" in result.stderr


def test_multirun_one_dir_per_job(tmp_path):
    write_corpus(tmp_path / "corpus.txt")
    write_script(tmp_path)
    result = run_gptpipe(
        tmp_path, "script=script.txt", "--multirun", "DROP_CONFIG=drop1ch1lr0.01slow0,drop1ch1lr0.02slow0",
        "DEVICE_COUNT=2", "MAX_ITERS=2", "precision=32-true", "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    assert sorted(path.name for path in sweep.iterdir() if path.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        assert json.loads((sweep / job / "summary.json").read_text())["devices"] == 2
    assert not (tmp_path / "outputs").exists()
    assert (sweep / "sweep_summary.csv").read_text().count("\n") == 3
    assert (sweep / "sweep_summary.md").exists()
    assert (sweep / "sweep_test_loss.png").exists()


def test_two_ranks_stop_on_budget(tmp_path):
    write_corpus(tmp_path / "corpus.txt")
    write_script(tmp_path)
    result = run_gptpipe(tmp_path, "script=script.txt", "precision=32-true", "DEVICE_COUNT=2", "MAX_ITERS=100000",
                         "MAX_SECONDS=2", "EVAL_INTERVAL=100000", "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_by"] == "MAX_SECONDS"
    assert 0 < summary["iteration"] < 100000
    assert "MAX_SECONDS budget of 2 s spent at iteration" in (tmp_path / "run" / "gptpipe.log").read_text()


@pytest.mark.parametrize("to_group", [False, True], ids=["SIGINT-to-launcher", "SIGTERM-to-group"])
def test_interrupt_of_main_process_reaches_ranks(tmp_path, to_group):
    # `kill -INT` of the gptpipe process alone, or SIGTERM to all of its processes, as schedulers
    # send them: the ranks still stop after a step, with a checkpoint.
    write_corpus(tmp_path / "corpus.txt")
    write_script(tmp_path)
    command = [str(GPTPIPE), "script=script.txt", "precision=32-true", "DEVICE_COUNT=2", "MAX_ITERS=100000",
               "EVAL_INTERVAL=20", "SAVE_MODEL=true", "hydra.run.dir=run"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=to_group)
    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while not (tmp_path / "run" / "metrics.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        if to_group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"].startswith("interrupted at iteration")
    assert (tmp_path / "run" / "checkpoints" / f"iter_{summary['iteration']}.safetensors").exists()
