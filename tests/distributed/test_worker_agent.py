"""The worker agent's start-up rules: no token means loopback only."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from gptpipe.distributed.worker import is_loopback, serve
from gptpipe.errors import DistributedError


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True),
    ("127.0.0.2", True),
    ("localhost", True),
    ("::1", True),
    ("0.0.0.0", False),
    ("10.0.0.2", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_agent_without_token_rejects_network(monkeypatch):
    monkeypatch.delenv("GPTPIPE_WORKER_TOKEN", raising=False)
    config = OmegaConf.create({"worker_host": "0.0.0.0", "worker_port": 1})
    with pytest.raises(DistributedError, match="GPTPIPE_WORKER_TOKEN is not set"):
        serve(config)
