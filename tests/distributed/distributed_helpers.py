"""Helpers for the multi-process tests: a tiny corpus and script, the gptpipe command, worker agents."""

from __future__ import annotations

import csv
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

GPTPIPE = Path(sys.executable).with_name("gptpipe")
COMMAND_TIMEOUT_S = 240
TOKEN = "test-token-for-loopback-only"
WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")

# b6 splits evenly over 1, 2 (DEVICE_COUNT=2) and 3 (master plus two workers) ranks.
TINY_SCRIPT = """\
MODEL_DIMS = 'e128h1d2w32'
TRAIN_CONFIG = 'b6f32'
DROP_CONFIG = 'drop1ch1lr0.01slow0'
MAX_ITERS = 4
EVAL_INTERVAL = 2
EVAL_ITERS = 1
SAVE_MODEL = false
load_text('corpus.txt')
create_model()
{train}
"""


def write_corpus(path: Path, seed: int = 0) -> Path:
    generator = random.Random(seed)
    lines = (" ".join(generator.choice(WORDS) for _ in range(12)) for _ in range(800))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_script(folder: Path, train_call: str = "train()", name: str = "script.txt") -> Path:
    path = folder / name
    path.write_text(TINY_SCRIPT.format(train=train_call), encoding="utf-8")
    return path


def run_gptpipe(folder: Path, *args: str, token: str | None = None, timeout: float = COMMAND_TIMEOUT_S):
    """Run the gptpipe command in `folder` with `token` as GPTPIPE_WORKER_TOKEN; return the CompletedProcess."""
    environment = dict(os.environ)
    environment.pop("GPTPIPE_WORKER_TOKEN", None)
    if token is not None:
        environment["GPTPIPE_WORKER_TOKEN"] = token
    return subprocess.run([str(GPTPIPE), *args], cwd=folder, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def evaluation_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as file:
        return [row for row in csv.DictReader(file) if row["kind"] == "evaluation"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WorkerAgent:
    """A `gptpipe worker_port=PORT` process on loopback, started in its own folder."""

    def __init__(self, folder: Path, token: str | None = TOKEN):
        self.folder = folder
        self.port = free_port()
        self.log_path = folder / "agent-console.log"
        environment = dict(os.environ)
        environment.pop("GPTPIPE_WORKER_TOKEN", None)
        if token is not None:
            environment["GPTPIPE_WORKER_TOKEN"] = token
        self._log = open(self.log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(
            [str(GPTPIPE), f"worker_port={self.port}", "hydra.run.dir=agent-run"], cwd=folder, env=environment,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "listening on" not in self.output():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker agent exited with status {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker agent did not start within {timeout} s:\n{self.output()}")
            time.sleep(0.2)

    def kill_host(self) -> None:
        """Kill the agent and its rank processes at once, as if its host went down."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill_host()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
