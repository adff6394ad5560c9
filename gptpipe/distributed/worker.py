"""The worker agent (`gptpipe worker_port=PORT`): runs net_train() jobs sent by a master.

The agent accepts one job at a time. For each connection it logs the peer and authenticates it
with GPTPIPE_WORKER_TOKEN. It then builds and checks the plan from the script texts it receives,
reading data paths on this host relative to the folder the agent was started in. Finally it
spawns DEVICE_COUNT rank processes that join the master's torch.distributed job, and reports
how they ended.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gptpipe.distributed.launch import check_devices_available, threads_per_rank
from gptpipe.distributed.protocol import (
    send_heartbeats,
    HEARTBEAT_TIMEOUT_S,
    TOKEN_VARIABLE,
    AuthenticationFailed,
    Channel,
    ConnectionLost,
    authenticate_as_worker,
    expect,
    worker_token,
)
from gptpipe.distributed.ranks import LogSetup, RankCrashed, RankJob, capture_log_setup, run_ranks
from gptpipe.errors import DistributedError, GptpipeError

log = logging.getLogger("gptpipe.worker")


def is_loopback(host: str) -> bool:
    """Return True when `host` resolves to a loopback address only (127.0.0.0/8 or ::1)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def serve(config: DictConfig) -> None:
    """Listen on worker_host:worker_port and run the jobs masters send, until stopped."""
    from hydra.core.hydra_config import HydraConfig

    host = str(config.get("worker_host") or "127.0.0.1")
    port = int(config.worker_port)
    token = worker_token()
    if not token and not is_loopback(host):
        raise DistributedError(
            f"{TOKEN_VARIABLE} is not set, and a worker agent without a token listens on loopback only "
            f"(worker_host={host} is not a loopback address)",
            hint=f"export {TOKEN_VARIABLE}=<a long random secret> on the master and on every worker",
        )
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    try:
        server = socket.create_server((host, port))
    except OSError as error:
        raise DistributedError(f"the worker agent cannot listen on {host}:{port}: {error.strerror or error}",
                               hint="pick a free port with worker_port=PORT") from None

    agent = WorkerAgent(run_dir, token, capture_log_setup(run_dir))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    log.info("worker agent listening on %s:%d (%s); jobs run in %s", host, port,
             "token set" if token else f"no {TOKEN_VARIABLE}: loopback only", run_dir)
    try:
        while True:
            connection, address = server.accept()
            threading.Thread(target=agent.handle, args=(connection, address), daemon=True).start()
    except KeyboardInterrupt:
        log.info("worker agent on %s:%d stopped", host, port)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class WorkerAgent:
    """Handles the connections of one agent; one job runs at a time."""

    def __init__(self, run_dir: Path, token: str, log_setup: LogSetup):
        self.run_dir = run_dir
        self.token = token
        self.log_setup = log_setup
        self.busy = threading.Lock()
        self.job_numbers = itertools.count(1)

    def handle(self, connection: socket.socket, address: tuple) -> None:
        peer = f"{address[0]}:{address[1]}"
        log.info("connection from %s", peer)
        channel = Channel(connection, f"master {peer}")
        try:
            authenticate_as_worker(channel, self.token)
            message = expect(channel, "job")
        except AuthenticationFailed:
            log.error("connection from %s rejected: authentication failed (the master's %s differs from this "
                      "agent's)", peer, TOKEN_VARIABLE)
            channel.close()
            return
        except (ConnectionLost, DistributedError) as error:
            log.error("connection from %s closed before a job arrived: %s", peer, error)
            channel.close()
            return

        if not self.busy.acquire(blocking=False):
            log.error("job from %s rejected: this agent is busy with another job", peer)
            _send_quietly(channel, {"type": "error", "message": "the agent is busy with another job; start one "
                                    "agent per job or wait until the running job ends"})
            channel.close()
            return
        try:
            self._run_job(channel, message, peer)
        finally:
            self.busy.release()
            channel.close()

    def _run_job(self, channel: Channel, message: dict[str, Any], peer: str) -> None:
        number = next(self.job_numbers)
        job_dir = self.run_dir / f"job-{number}"
        try:
            job = self._prepare(message, job_dir)
        except GptpipeError as error:
            log.error("job %d from %s rejected: %s", number, peer, error)
            _send_quietly(channel, {"type": "error", "message": str(error)})
            return
        except (KeyError, TypeError, ValueError) as error:
            log.error("job %d from %s rejected: malformed job message (%s)", number, peer, error)
            _send_quietly(channel, {"type": "error", "message": f"malformed job message ({error}); run the same "
                                    "gptpipe version on every host"})
            return

        log.info("job %d from %s started: node %d of %d (%s), %d device(s), torch.distributed master %s:%d",
                 number, peer, job.node_rank, job.num_nodes, job.node_names[job.node_rank], job.devices,
                 job.master_addr, job.master_port)
        channel.send({"type": "accepted"})
        watch = _MasterWatch(channel)
        watch.start()
        try:
            run_ranks(job, abort_reason=lambda: watch.abort_reason)
        except GptpipeError as error:
            log.error("job %d failed: %s", number, error)
            _send_quietly(channel, {"type": "failed", "kind": "error", "message": str(error)})
        except RankCrashed as crash:
            log.error("job %d failed: %s", number, crash)
            _send_quietly(channel, {"type": "failed", "kind": "crash", "message": str(crash)})
        except KeyboardInterrupt:
            log.error("job %d interrupted", number)
            _send_quietly(channel, {"type": "failed", "kind": "interrupted", "message": "interrupted on the worker"})
            raise
        else:
            log.info("job %d finished", number)
            _send_quietly(channel, {"type": "finished"})
        finally:
            watch.stop()

    def _prepare(self, message: dict[str, Any], job_dir: Path) -> RankJob:
        """Rebuild and check the plan on this host, from the scripts and config the master sent."""
        from gptpipe.config.plan import build_plan
        from gptpipe.distributed.launch import device_count
        from gptpipe.dsl import parse_text

        job_dir.mkdir(parents=True, exist_ok=True)
        # The workers file exists on the master only; net_train() reads a copy kept with the job.
        workers_copy = job_dir / Path(message["workers_file"]["path"]).name
        workers_copy.write_text(message["workers_file"]["text"], encoding="utf-8")
        scripts = [_with_workers_file(parse_text(item["text"], item["path"]), str(workers_copy))
                   for item in message["scripts"]]
        config = OmegaConf.create(message["config_yaml"])
        OmegaConf.set_struct(config, True)
        plan = build_plan(scripts, config, message["overridden"])
        devices = int(message["devices"])
        if device_count(plan) != devices:
            raise DistributedError(f"the plan built on this worker has DEVICE_COUNT {device_count(plan)}, the "
                                   f"master's has {devices}; run the same gptpipe version on every host")
        check_devices_available(devices, config)
        return RankJob(
            plan=plan, config=config, run_dir=job_dir, devices=devices, num_nodes=int(message["num_nodes"]),
            node_rank=int(message["node_rank"]), node_names=tuple(message["node_names"]),
            master_addr=str(message["master_addr"]), master_port=int(message["master_port"]),
            threads=threads_per_rank(config, devices), log_setup=self.log_setup,
        )


class _MasterWatch:
    """Reads the master's connection while the ranks run; an abort or a lost master stops them."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.abort_reason: str | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._read, name="watch master", daemon=True).start()
        threading.Thread(target=send_heartbeats, args=(self.channel, self._stopped), name="heartbeat master",
                         daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _read(self) -> None:
        while not self._stopped.is_set():
            try:
                message = self.channel.receive(HEARTBEAT_TIMEOUT_S)
            except ConnectionLost as error:
                if not self._stopped.is_set():
                    self.abort_reason = f"the master was lost: {error}"
                    log.error("%s; stopping the ranks", self.abort_reason)
                return
            if message["type"] == "abort":
                self.abort_reason = f"the master aborted the job: {message.get('reason', 'no reason given')}"
                log.error("%s", self.abort_reason)
                return


def _with_workers_file(script, workers_path: str):
    """Return the script with every net_train() argument replaced by `workers_path`."""
    from gptpipe.dsl.nodes import Call, Value

    statements = []
    for statement in script.statements:
        if isinstance(statement, Call) and statement.name == "net_train" and statement.args:
            first = statement.args[0]
            local = Value("string", workers_path, first.location, repr(workers_path))
            statement = dataclasses.replace(statement, args=(local, *statement.args[1:]))
        statements.append(statement)
    return dataclasses.replace(script, statements=tuple(statements))


def _send_quietly(channel: Channel, message: dict[str, Any]) -> None:
    try:
        channel.send(message)
    except ConnectionLost as error:
        log.error("cannot tell %s: %s", channel.peer, error)
