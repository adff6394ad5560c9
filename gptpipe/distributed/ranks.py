"""Rank processes: spawn one process per device, run the whole plan in each, and supervise them.

Every rank runs the same plan against its own RunState. Ranks report a user error, a crash or an
interrupt to the parent through a spawn-context queue before they exit, so the parent can print
one message (rank 0's when it has one) instead of one per rank.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from gptpipe.config.plan import Plan
from gptpipe.errors import DistributedError, GptpipeError
from gptpipe.log_format import LevelFormatter

log = logging.getLogger("gptpipe")

RANK_VARIABLE = "GPTPIPE_RANK"
"""Set in every rank process, so that a rank never launches ranks of its own."""
FAILURE_GRACE_S = 5.0
"""After one rank fails, how long the others get to report their own error before they are stopped."""
STOP_TIMEOUT_S = 5.0
"""How long a rank gets to exit after SIGTERM before it is killed.

During train() a rank takes SIGTERM as a request to stop after its current step, so a rank that
is stuck in a step (waiting for a failed peer) is killed after this time.
"""
EXIT_USER_ERROR = 2
EXIT_CRASH = 1
EXIT_INTERRUPTED = 130


class RankCrashed(RuntimeError):
    """A rank process failed with an error that is not a GptpipeError: a bug, with its traceback."""


@dataclass(frozen=True)
class LogSetup:
    """Logging settings copied from the parent into rank processes: format, console stream, log file."""

    format: str = "[%(asctime)s] %(message)s"
    datefmt: str | None = "%H:%M:%S"
    console: str = "stdout"
    """"stdout" or "stderr"."""
    log_file: str | None = None


@dataclass(frozen=True)
class RankJob:
    """Everything a rank process needs; pickled into each spawned process."""

    plan: Plan
    config: DictConfig
    run_dir: Path
    devices: int
    """Rank processes on each node (DEVICE_COUNT)."""
    num_nodes: int
    node_rank: int
    node_names: tuple[str, ...]
    """Host of each node, by node rank, for messages that name a host."""
    master_addr: str
    master_port: int
    threads: int
    """torch threads per rank; 0 keeps PyTorch's default."""
    log_setup: LogSetup

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes


_current_job: RankJob | None = None


def current_job() -> RankJob | None:
    """Return the job this rank process runs, or None outside a launched rank."""
    return _current_job


def capture_log_setup(run_dir: Path) -> LogSetup:
    """Return the parent's logging format, console stream and log file, for the ranks to copy."""
    setup = LogSetup(log_file=str(run_dir / "gptpipe.log"))
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if formatter is not None:
            setup = LogSetup(formatter._fmt or setup.format, formatter.datefmt, setup.console, setup.log_file)
        if isinstance(handler, logging.FileHandler):
            setup = LogSetup(setup.format, setup.datefmt, setup.console, handler.baseFilename)
        elif isinstance(handler, logging.StreamHandler):
            console = "stderr" if handler.stream is sys.stderr else "stdout"
            setup = LogSetup(setup.format, setup.datefmt, console, setup.log_file)
    return setup


def _configure_logging(setup: LogSetup, global_rank: int) -> None:
    import lightning_fabric  # noqa: F401  (sets its logger's level on import; imported first so ours wins)

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stream = sys.stderr if setup.console == "stderr" else sys.stdout
    console = logging.StreamHandler(stream)
    if global_rank == 0:
        formatter = LevelFormatter(setup.format, setup.datefmt)
        console.setFormatter(formatter)
        root.addHandler(console)
        if setup.log_file:
            file_handler = logging.FileHandler(setup.log_file, mode="a", encoding="utf-8")
            file_handler.setFormatter(formatter)
            root.addHandler(file_handler)
        root.setLevel(logging.INFO)
    else:
        prefixed = setup.format.replace("%(message)s", f"rank {global_rank}: %(message)s")
        console.setFormatter(LevelFormatter(prefixed, setup.datefmt))
        # Every rank runs the same plan, so its warnings repeat rank 0's; only its errors are its own.
        # The handler filters too: records of loggers with their own level skip the root's.
        console.setLevel(logging.ERROR)
        root.addHandler(console)
        root.setLevel(logging.ERROR)
    # Fabric logs its process-group set-up at INFO on every launch; people watching a run need none of it.
    for name in ("lightning", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _rank_main(local_rank: int, job: RankJob, reports) -> None:
    """Body of one rank process (torch.multiprocessing calls it with the local rank first)."""
    global _current_job
    import torch

    from gptpipe.runtime.fabric_setup import create_fabric
    from gptpipe.runtime.runner import execute_plan
    from gptpipe.runtime.state import RunState

    global_rank = job.node_rank * job.devices + local_rank
    # The variables Fabric's LightningEnvironment reads: with LOCAL_RANK set, it launches nothing itself.
    os.environ.update({
        "MASTER_ADDR": job.master_addr,
        "MASTER_PORT": str(job.master_port),
        "NODE_RANK": str(job.node_rank),
        "LOCAL_RANK": str(local_rank),
        "WORLD_SIZE": str(job.world_size),
        "RANK": str(global_rank),
        RANK_VARIABLE: str(global_rank),
    })
    _configure_logging(job.log_setup, global_rank)
    try:
        if job.threads > 0:
            torch.set_num_threads(job.threads)
        state = RunState(config=job.config, run_dir=job.run_dir)
        fabric = create_fabric(state, devices=job.devices, num_nodes=job.num_nodes)
        fabric.launch()
        state.fabric = fabric
        state.rank = fabric.global_rank
        state.world_size = fabric.world_size
        _current_job = job
        execute_plan(job.plan, job.config, job.run_dir, state)
    except GptpipeError as error:
        reports.put(("error", global_rank, type(error).__name__, str(error)))
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        reports.put(("interrupted", global_rank, "", ""))
        sys.exit(EXIT_INTERRUPTED)
    except Exception:
        reports.put(("crash", global_rank, "", traceback.format_exc()))
        sys.exit(EXIT_CRASH)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def run_ranks(job: RankJob, abort_reason: Callable[[], str | None] = lambda: None) -> None:
    """Spawn this node's ranks, wait for them and raise the one error that explains a failure.

    `abort_reason` is polled while the ranks run. When it returns a message (a lost worker, a lost
    master), the ranks are stopped and DistributedError(message) is raised.
    Raises the rank's GptpipeError (rank 0's first), RankCrashed with the failing rank's traceback,
    or KeyboardInterrupt.
    """
    import torch.multiprocessing

    reports = torch.multiprocessing.get_context("spawn").Queue()
    context = torch.multiprocessing.start_processes(
        _rank_main, args=(job, reports), nprocs=job.devices, join=False, start_method="spawn",
    )
    processes = context.processes
    # A shell script starts background jobs with SIGINT ignored; `kill -INT` must still stop the ranks.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler) if in_main_thread else None
    try:
        aborted = _wait_for_ranks(processes, abort_reason)
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches the ranks too, but a scheduler or `kill -INT` often signals
        # this process only. The ranks ignore the copy when the first one arrived just before.
        _forward_interrupt(processes)
        try:
            # The ranks stop after their current step, evaluate and save, however long that takes.
            _wait_for_ranks(processes, abort_reason, interrupted=True)
        except KeyboardInterrupt:
            # A second Ctrl-C: the ranks stop at once.
            _forward_interrupt(processes)
            _stop(processes, patience=FAILURE_GRACE_S)
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)
        _stop(processes, patience=0.0)
    if aborted:
        raise DistributedError(aborted)
    _raise_failure(processes, _drain(reports), job, abort_reason)


def _wait_for_ranks(processes, abort_reason: Callable[[], str | None], interrupted: bool = False) -> str | None:
    """Wait until every rank has exited; return an abort message when the ranks had to be stopped.

    After an interrupt (`interrupted`), a rank that exits with EXIT_INTERRUPTED has stopped as asked,
    so it does not count as a failure that cuts short the wait for the others.
    """
    finished = (None, 0, EXIT_INTERRUPTED) if interrupted else (None, 0)
    first_failure: float | None = None
    while True:
        running = [process for process in processes if process.exitcode is None]
        if not running:
            return None
        reason = abort_reason()
        if reason:
            _stop(running, patience=0.0)
            return reason
        if first_failure is None and any(process.exitcode not in finished for process in processes):
            first_failure = time.monotonic()
        if first_failure is not None and time.monotonic() - first_failure > FAILURE_GRACE_S:
            _stop(running, patience=0.0)
            return None
        wait([process.sentinel for process in running], timeout=0.5)


def _forward_interrupt(processes) -> None:
    """Send SIGINT to every rank process that is still running."""
    for process in processes:
        if process.exitcode is None and process.pid is not None:
            try:
                os.kill(process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass


def _stop(processes, patience: float) -> None:
    """Wait up to `patience` seconds for the processes, then terminate and finally kill them."""
    deadline = time.monotonic() + patience
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join()


def _drain(reports) -> list[tuple[str, int, str, str]]:
    items = []
    while True:
        try:
            items.append(reports.get(timeout=0.2))
        except queue.Empty:
            return items


def _raise_failure(processes, reports, job: RankJob, abort_reason: Callable[[], str | None]) -> None:
    from gptpipe import errors

    user_errors = [report for report in reports if report[0] == "error"]
    if user_errors:
        chosen = next((report for report in user_errors if report[1] == 0), user_errors[0])
        error_class = getattr(errors, chosen[2], GptpipeError)
        if not (isinstance(error_class, type) and issubclass(error_class, GptpipeError)):
            error_class = GptpipeError
        raise error_class(chosen[3])

    failed = [process for process in processes if process.exitcode not in (0, None)]
    if not failed and not reports:
        return
    # A rank that lost a peer on another host fails with a collective error. The peer's own
    # report explains more, so the caller's watcher gets a moment to deliver it.
    deadline = time.monotonic() + FAILURE_GRACE_S
    while job.num_nodes > 1 and time.monotonic() < deadline:
        reason = abort_reason()
        if reason:
            raise DistributedError(reason)
        time.sleep(0.2)

    crashes = [report for report in reports if report[0] == "crash"]
    if crashes:
        chosen = next((report for report in crashes if report[1] == 0), crashes[0])
        raise RankCrashed(f"rank {chosen[1]} on {job.node_names[job.node_rank]} failed:\n{chosen[3]}")
    if any(report[0] == "interrupted" for report in reports):
        raise KeyboardInterrupt
    if failed:
        local_rank = processes.index(failed[0])
        global_rank = job.node_rank * job.devices + local_rank
        code = failed[0].exitcode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise RankCrashed(
            f"rank {global_rank} on {job.node_names[job.node_rank]} {how} without reporting an error; "
            "the system may have stopped it (out of memory?)"
        )
