"""The master side of net_train(): contact the worker agents, hand them the job, watch them train.

The master is node 0 and global rank 0. It connects to every agent listed in the workers file,
authenticates, sends the job, and only spawns its own ranks once every agent has accepted (built
and checked the plan on its host). While the ranks train, one thread per agent reads its
heartbeats. When an agent is lost or fails, the master stops its own ranks and names that agent
in the error.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gptpipe.config.plan import Plan
from gptpipe.distributed.launch import free_port, overridden_names, threads_per_rank
from gptpipe.distributed.protocol import (
    send_heartbeats,
    HEARTBEAT_TIMEOUT_S,
    TOKEN_VARIABLE,
    AuthenticationFailed,
    Channel,
    ConnectionLost,
    authenticate_as_master,
    expect,
    worker_token,
)
from gptpipe.distributed.ranks import RankJob, capture_log_setup, run_ranks
from gptpipe.distributed.workers_file import WorkerAddress, parse_workers_file
from gptpipe.errors import DistributedError

log = logging.getLogger("gptpipe")

CONNECT_TIMEOUT_S = 30.0
ACCEPT_TIMEOUT_S = 120.0
"""How long an agent may take to build and check the plan (it imports torch and reads the data)."""
FINISH_TIMEOUT_S = 60.0
"""How long the agents get to report the end of their ranks after the master's ranks finished."""


class WorkerLink:
    """The master's connection to one worker agent, and the watcher thread that reads it."""

    def __init__(self, address: WorkerAddress, channel: Channel):
        self.address = address
        self.channel = channel
        self.failure: str | None = None
        self.finished = threading.Event()
        self._closed = threading.Event()

    @property
    def local_address(self) -> str:
        """This host's address on the route to the agent, which the agent's ranks can reach."""
        return self.channel.sock.getsockname()[0]

    def start_watching(self) -> None:
        threading.Thread(target=self._read_messages, name=f"watch {self.address}", daemon=True).start()
        threading.Thread(target=send_heartbeats, args=(self.channel, self._closed), name=f"heartbeat {self.address}",
                         daemon=True).start()

    def _read_messages(self) -> None:
        while not self._closed.is_set():
            try:
                message = self.channel.receive(HEARTBEAT_TIMEOUT_S)
            except ConnectionLost as error:
                if not self.finished.is_set() and not self._closed.is_set():
                    self.failure = f"{error} during training; its agent or host stopped"
                return
            kind = message["type"]
            if kind == "finished":
                self.finished.set()
                return
            if kind == "failed":
                self.failure = f"worker {self.address} failed: {message.get('message', 'no message')}"
                return

    def abort(self, reason: str) -> None:
        """Tell the agent to stop its ranks; an agent that is already gone needs no telling."""
        try:
            self.channel.send({"type": "abort", "reason": reason})
        except ConnectionLost:
            pass

    def close(self) -> None:
        self._closed.set()
        self.channel.close()


def connect_worker(address: WorkerAddress, token: str, workers_path: str) -> WorkerLink:
    """Open and authenticate a connection to one agent; raise DistributedError naming it on failure."""
    hint_start = f"start `gptpipe worker_port={address.port}` on {address.host}, or fix the line in {workers_path}"
    try:
        sock = socket.create_connection((address.host, address.port), timeout=CONNECT_TIMEOUT_S)
    except ConnectionRefusedError:
        raise DistributedError(f"cannot reach worker {address}: connection refused (no agent listens on port "
                               f"{address.port})", hint=hint_start) from None
    except socket.timeout:
        raise DistributedError(f"cannot reach worker {address}: connection timed out after {CONNECT_TIMEOUT_S:.0f} s",
                               hint=f"check the host name, that the agent runs and that a firewall lets TCP port "
                               f"{address.port} through") from None
    except socket.gaierror as error:
        raise DistributedError(f"cannot reach worker {address}: unknown host ({error.strerror})",
                               hint=f"fix the host name in {workers_path}") from None
    except OSError as error:
        raise DistributedError(f"cannot reach worker {address}: {error.strerror or error}", hint=hint_start) from None

    channel = Channel(sock, f"worker {address}")
    try:
        authenticate_as_master(channel, token)
    except AuthenticationFailed:
        channel.close()
        raise DistributedError(
            f"worker {address} rejected the authentication: its {TOKEN_VARIABLE} differs from this master's",
            hint=f"set the same {TOKEN_VARIABLE} in the environment of the master and of every worker agent",
        ) from None
    except ConnectionLost as error:
        channel.close()
        raise DistributedError(f"worker {address}: handshake failed: {error}") from None
    except DistributedError:
        channel.close()
        raise
    log.info("worker %s: connected and authenticated", address)
    return WorkerLink(address, channel)


def run_net_job(plan: Plan, config: DictConfig, run_dir: Path, devices: int, workers_path: str) -> None:
    """Run the plan as node 0 of a job with the agents of `workers_path`; raise on any host's failure."""
    workers = parse_workers_file(workers_path)
    workers_text = Path(workers_path).read_text(encoding="utf-8")
    token = worker_token()
    links: list[WorkerLink] = []
    try:
        for address in workers:
            links.append(connect_worker(address, token, workers_path))
        # The address this host used to reach the first agent is one the agents can reach back.
        master_addr = os.environ.get("MASTER_ADDR") or links[0].local_address
        master_port = int(os.environ.get("MASTER_PORT") or free_port())
        node_names = (f"{socket.gethostname()} (master)",) + tuple(str(address) for address in workers)
        job = RankJob(
            plan=plan, config=config, run_dir=run_dir, devices=devices, num_nodes=len(workers) + 1, node_rank=0,
            node_names=node_names, master_addr=master_addr, master_port=master_port,
            threads=threads_per_rank(config, devices), log_setup=capture_log_setup(run_dir),
        )
        log.info("net_train(): %d hosts with %d device(s) each, torch.distributed master %s:%d",
                 job.num_nodes, devices, master_addr, master_port)

        message = _job_message(plan, config, job, workers_path, workers_text)
        for node_rank, link in enumerate(links, start=1):
            link.channel.send(dict(message, node_rank=node_rank))
        for link in links:
            try:
                expect(link.channel, "accepted", timeout=ACCEPT_TIMEOUT_S)
            except ConnectionLost as error:
                raise DistributedError(f"worker {link.address} did not accept the job: {error}") from None
            except DistributedError as error:
                raise DistributedError(f"worker {link.address} rejected the job:\n{error.message}") from None
        for link in links:
            link.start_watching()

        run_ranks(job, abort_reason=lambda: next((link.failure for link in links if link.failure), None))
        _wait_for_workers(links)
    except BaseException as error:
        for link in links:
            link.abort(f"the master stopped: {error}")
        raise
    finally:
        for link in links:
            link.close()


def _job_message(plan: Plan, config: DictConfig, job: RankJob, workers_path: str, workers_text: str) -> dict:
    return {
        "type": "job",
        "scripts": [{"path": script.path, "text": script.text} for script in plan.scripts],
        "config_yaml": OmegaConf.to_yaml(config),
        "overridden": overridden_names(),
        "num_nodes": job.num_nodes,
        "devices": job.devices,
        "master_addr": job.master_addr,
        "master_port": job.master_port,
        "node_names": list(job.node_names),
        "workers_file": {"path": workers_path, "text": workers_text},
    }


def _wait_for_workers(links: list[WorkerLink]) -> None:
    for link in links:
        if not link.finished.wait(FINISH_TIMEOUT_S) and link.failure is None:
            link.failure = f"worker {link.address} did not report the end of its ranks within {FINISH_TIMEOUT_S:.0f} s"
        if link.failure:
            raise DistributedError(f"{link.failure}\n(the master's own ranks finished)")
