"""The workers file of net_train(): accepted lines and the errors for malformed ones."""

from __future__ import annotations

import pytest

from gptpipe.distributed.workers_file import WorkerAddress, parse_workers_file, parse_workers_text
from gptpipe.errors import ConfigError


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1", [WorkerAddress("127.0.0.1", 10000)]),
    ("localhost:10001", [WorkerAddress("localhost", 10001)]),
    ("# workers\n\nnode-a.example:2000  # first\nnode-b\n",
     [WorkerAddress("node-a.example", 2000), WorkerAddress("node-b", 10000)]),
    ("[::1]:10002", [WorkerAddress("::1", 10002)]),
    ("[fd00::2]", [WorkerAddress("fd00::2", 10000)]),
])
def test_workers_text_valid(text, expected):
    assert parse_workers_text(text, "workers.txt") == expected


@pytest.mark.parametrize(("text", "message"), [
    ("host:", "workers.txt:1: invalid worker 'host:': port '' is not a number from 1 to 65535"),
    ("host:70000", "workers.txt:1: invalid worker 'host:70000': port '70000' is not a number"),
    ("ok\nhost:port", "workers.txt:2: invalid worker 'host:port': port 'port' is not a number"),
    ("a b", "workers.txt:1: invalid worker 'a b': it contains a space"),
    ("fd00::2", "workers.txt:1: invalid worker 'fd00::2': an IPv6 address needs brackets"),
    ("[fd00::2", "workers.txt:1: invalid worker '[fd00::2': an IPv6 address needs a closing bracket"),
    ("-bad-:1", "workers.txt:1: invalid worker '-bad-:1': '-bad-' is not a host name"),
    ("h:1\n\nh:1", "workers.txt:3: worker h:1 is listed twice (first on line 1)"),
    ("# nothing\n\n", "workers.txt: the workers file lists no workers"),
])
def test_workers_text_invalid(text, message):
    with pytest.raises(ConfigError) as raised:
        parse_workers_text(text, "workers.txt")
    assert raised.value.message.startswith(message)


def test_workers_file_missing(tmp_path):
    with pytest.raises(ConfigError, match="workers file not found"):
        parse_workers_file(tmp_path / "absent.txt")


def test_worker_address_text():
    assert [str(WorkerAddress("h", 1)), str(WorkerAddress("::1", 2))] == ["h:1", "[::1]:2"]
