"""Wait until no other process is using the CPU, so that timings are not taken under contention.

PyTorch's OpenMP threads spin while they wait for work, so two PyTorch processes that each use
every core can slow each other down by one to three orders of magnitude. Every timing benchmark
calls `wait_for_idle_cpu` before it measures and prints the load it saw next to its figures.
"""

from __future__ import annotations

import logging
import os
import time

import psutil

log = logging.getLogger("gptpipe.bench")

BUSY_PERCENT = 10.0
"""A process using more than this share of one core (percent) counts as contention."""
SAMPLE_SECONDS = 1.0
RETRY_SECONDS = 30.0


def busy_processes(sample_seconds: float = SAMPLE_SECONDS) -> list[tuple[int, str, float]]:
    """Return (pid, name, percent of one core) of other processes busier than BUSY_PERCENT over `sample_seconds`."""
    own = {os.getpid()}
    try:
        own.update(child.pid for child in psutil.Process().children(recursive=True))
        own.add(os.getppid())
    except psutil.Error:
        pass
    processes = [p for p in psutil.process_iter(["pid", "name"]) if p.info["pid"] not in own]
    for process in processes:
        try:
            process.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(sample_seconds)
    busy = []
    for process in processes:
        try:
            percent = process.cpu_percent(None)
        except psutil.Error:
            continue
        if percent > BUSY_PERCENT:
            busy.append((process.info["pid"], process.info["name"], percent))
    return busy


def wait_for_idle_cpu(max_wait_seconds: float = 3600.0) -> str:
    """Block until no other process is busy, then return a one-line description of the load.

    Raises TimeoutError when the machine stays busy for `max_wait_seconds`.
    """
    deadline = time.monotonic() + max_wait_seconds
    while True:
        busy = busy_processes()
        if not busy:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            return (f"no other busy process, 1-minute load average {load:.2f} "
                    "(an average that includes work that ended just before)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the CPU stayed busy for {max_wait_seconds:.0f} s: {busy}")
        log.info("waiting %.0f s for an idle CPU: %s", RETRY_SECONDS,
                 ", ".join(f"pid {pid} {name} {percent:.0f}%" for pid, name, percent in busy))
        time.sleep(RETRY_SECONDS)


CONTENDED_CORES = 0.1
"""Other processes using more than this many cores on average during a measurement spoil it."""


def _busy_cpu_seconds() -> float:
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def _own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    own = times.user + times.system
    # Finished children are counted once reaped; running ones are added from their live counters.
    own += times.children_user + times.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue
        own += child_times.user + child_times.system
    return own


class ContentionMonitor:
    """Measures how many cores other processes used between `start()` and `stop()`.

    The figure is the machine's busy CPU time minus this process tree's CPU time, over wall time.
    A child that exits between the two calls is counted as this tree's only once it is reaped.
    """

    def start(self) -> ContentionMonitor:
        self._wall = time.perf_counter()
        self._busy = _busy_cpu_seconds()
        self._own = _own_cpu_seconds()
        return self

    def stop(self) -> float:
        """Return the mean number of cores that other processes used since `start()`."""
        wall = time.perf_counter() - self._wall
        other = (_busy_cpu_seconds() - self._busy) - (_own_cpu_seconds() - self._own)
        return max(0.0, other) / wall if wall > 0 else 0.0


def measure_uncontended(measure, attempts: int = 20):
    """Call `measure()` after waiting for an idle CPU until a call ran with no contention; return (result, load text).

    Raises TimeoutError after `attempts` contended calls.
    """
    for _ in range(attempts):
        load = wait_for_idle_cpu()
        monitor = ContentionMonitor().start()
        result = measure()
        other_cores = monitor.stop()
        if other_cores <= CONTENDED_CORES:
            return result, f"{load}; other processes used {other_cores:.2f} cores during the measurement"
        log.info("other processes used %.2f cores during the measurement; repeating it", other_cores)
    raise TimeoutError(f"every one of {attempts} measurements ran under contention")
