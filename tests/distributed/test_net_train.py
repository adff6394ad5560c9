"""net_train() on loopback: two worker agents and a master, plus the failures it must report."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from distributed_helpers import GPTPIPE, TOKEN, evaluation_rows, free_port, run_gptpipe, write_corpus, write_script

LOSS_TOLERANCE = 1e-4
"""float32 on CPU: three ranks' all-reduced gradients differ from one rank's only by rounding."""


def write_workers(folder, agents) -> None:
    lines = ["# loopback agents started by the test", *(agent.address for agent in agents)]
    (folder / "workers.txt").write_text("\n".join(lines) + "\n")


def test_net_train_matches_one_process(tmp_path, start_agents):
    agents = start_agents(2)
    master = tmp_path / "master"
    master.mkdir()
    write_corpus(master / "corpus.txt")
    write_workers(master, agents)
    write_script(master, "net_train('workers.txt')")
    single = tmp_path / "single"
    single.mkdir()
    write_corpus(single / "corpus.txt")
    write_script(single)

    result = run_gptpipe(master, "script=script.txt", "precision=32-true", "hydra.run.dir=run", token=TOKEN)
    assert result.returncode == 0, result.stderr
    reference = run_gptpipe(single, "script=script.txt", "precision=32-true", "hydra.run.dir=run")
    assert reference.returncode == 0, reference.stderr

    assert json.loads((master / "run" / "summary.json").read_text())["devices"] == 3
    expected = evaluation_rows(single / "run")
    actual = evaluation_rows(master / "run")
    assert [row["iteration"] for row in actual] == [row["iteration"] for row in expected]
    for mine, theirs in zip(actual, expected):
        assert float(mine["train_loss"]) == pytest.approx(float(theirs["train_loss"]), abs=LOSS_TOLERANCE)
        assert float(mine["test_loss"]) == pytest.approx(float(theirs["test_loss"]), abs=LOSS_TOLERANCE)
    for agent in agents:
        assert "job 1 finished" in agent.output()


def test_net_train_wrong_token(tmp_path, start_agents):
    (agent,) = start_agents(1)
    write_corpus(tmp_path / "corpus.txt")
    write_workers(tmp_path, [agent])
    write_script(tmp_path, "net_train('workers.txt')")
    result = run_gptpipe(tmp_path, "script=script.txt", token="not-the-agent-token")
    assert result.returncode == 2
    assert f"worker {agent.address} rejected the authentication" in result.stderr
    assert "authentication failed" in agent.output()


def test_net_train_unreachable(tmp_path):
    port = free_port()
    write_corpus(tmp_path / "corpus.txt")
    (tmp_path / "workers.txt").write_text(f"127.0.0.1:{port}\n")
    write_script(tmp_path, "net_train('workers.txt')")
    started = time.monotonic()
    result = run_gptpipe(tmp_path, "script=script.txt", token=TOKEN)
    assert result.returncode == 2
    assert f"cannot reach worker 127.0.0.1:{port}: connection refused" in result.stderr
    assert time.monotonic() - started < 60


def test_net_train_malformed_workers_file(tmp_path):
    write_corpus(tmp_path / "corpus.txt")
    (tmp_path / "workers.txt").write_text("# workers\n127.0.0.1:10000\n127.0.0.1:port\n")
    write_script(tmp_path, "net_train('workers.txt')")
    result = run_gptpipe(tmp_path, "script=script.txt", "dry_run=true")
    assert result.returncode == 2
    assert "workers.txt:3: invalid worker '127.0.0.1:port'" in result.stderr


def test_net_train_different_data(tmp_path, start_agents):
    (agent,) = start_agents(1, corpus_seeds=(7,))
    write_corpus(tmp_path / "corpus.txt")
    write_workers(tmp_path, [agent])
    write_script(tmp_path, "net_train('workers.txt')")
    result = run_gptpipe(tmp_path, "script=script.txt", "precision=32-true", "hydra.run.dir=run", token=TOKEN)
    assert result.returncode == 2
    assert f"the training data differs between hosts: {agent.address}" in result.stderr
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_net_train_worker_dies(tmp_path, start_agents):
    (agent,) = start_agents(1)
    write_corpus(tmp_path / "corpus.txt")
    write_workers(tmp_path, [agent])
    write_script(tmp_path, "net_train('workers.txt')")
    (tmp_path / "script.txt").write_text((tmp_path / "script.txt").read_text().replace("MAX_ITERS = 4",
                                                                                     "MAX_ITERS = 100000"))
    environment = dict(os.environ, GPTPIPE_WORKER_TOKEN=TOKEN)
    master = subprocess.Popen([str(GPTPIPE), "script=script.txt", "precision=32-true", "hydra.run.dir=run"],
                              cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "metrics.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        agent.kill_host()
        killed = time.monotonic()
        _, stderr = master.communicate(timeout=90)
    finally:
        if master.poll() is None:
            master.kill()
    assert master.returncode == 2
    assert f"worker {agent.address} closed the connection during training" in stderr
    assert time.monotonic() - killed < 60
