"""The workers file of net_train(): one worker agent per line, `host` or `host:port`.

Blank lines and `#` comments are ignored. IPv6 addresses take brackets: `[fd00::2]:10000`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gptpipe.distributed.protocol import DEFAULT_WORKER_PORT
from gptpipe.errors import ConfigError

_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?$")
_FORMAT_HINT = "write one worker per line as host or host:port (default port 10000), e.g. 10.0.0.2:10000"


@dataclass(frozen=True)
class WorkerAddress:
    """The host and TCP port a worker agent listens on."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_workers_file(path: str | Path) -> list[WorkerAddress]:
    """Read the workers file; raise ConfigError naming file:line for a malformed or duplicate line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"workers file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the workers file {file}: {error}") from None
    return parse_workers_text(text, str(file))


def parse_workers_text(text: str, source: str) -> list[WorkerAddress]:
    """Parse the lines of a workers file; `source` names the file in error messages."""
    workers: list[WorkerAddress] = []
    first_line: dict[WorkerAddress, int] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        entry = raw_line.split("#", 1)[0].strip()
        if not entry:
            continue
        worker = _parse_entry(entry, f"{source}:{number}")
        if worker in first_line:
            raise ConfigError(f"{source}:{number}: worker {worker} is listed twice (first on line "
                              f"{first_line[worker]})", hint="list each worker agent once")
        first_line[worker] = number
        workers.append(worker)
    if not workers:
        raise ConfigError(f"{source}: the workers file lists no workers", hint=_FORMAT_HINT)
    return workers


def _parse_entry(entry: str, where: str) -> WorkerAddress:
    def invalid(reason: str) -> ConfigError:
        return ConfigError(f"{where}: invalid worker {entry!r}: {reason}", hint=_FORMAT_HINT)

    if any(character.isspace() for character in entry):
        raise invalid("it contains a space; put one worker on each line")
    port_text = None
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or not host:
            raise invalid("an IPv6 address needs a closing bracket, e.g. [fd00::2]:10000")
        if rest:
            if not rest.startswith(":"):
                raise invalid(f"unexpected text {rest!r} after the address")
            port_text = rest[1:]
    elif entry.count(":") > 1:
        raise invalid("an IPv6 address needs brackets, e.g. [fd00::2]:10000")
    else:
        host, colon, port_text = entry.partition(":")
        if not colon:
            port_text = None
        if not _HOST_NAME.match(host):
            raise invalid(f"{host!r} is not a host name or IPv4 address")
    if port_text is None:
        return WorkerAddress(host, DEFAULT_WORKER_PORT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise invalid(f"port {port_text!r} is not a number from 1 to 65535")
    return WorkerAddress(host, int(port_text))
