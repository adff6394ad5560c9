"""The master-worker handshake: a shared token succeeds, a different token fails on both sides."""

from __future__ import annotations

import socket
import threading

import pytest

from gptpipe.distributed.protocol import (
    AuthenticationFailed,
    Channel,
    ConnectionLost,
    authenticate_as_master,
    authenticate_as_worker,
)


def handshake(master_token: str, worker_token: str) -> tuple[BaseException | None, BaseException | None]:
    """Run both halves over a socket pair; return (master error, worker error)."""
    master_socket, worker_socket = socket.socketpair()
    outcome: dict[str, BaseException | None] = {"worker": None}

    def worker_side():
        try:
            authenticate_as_worker(Channel(worker_socket, "master"), worker_token)
        except (AuthenticationFailed, ConnectionLost) as error:
            outcome["worker"] = error

    thread = threading.Thread(target=worker_side)
    thread.start()
    master_error = None
    try:
        authenticate_as_master(Channel(master_socket, "worker"), master_token)
    except (AuthenticationFailed, ConnectionLost) as error:
        master_error = error
    thread.join(10)
    master_socket.close()
    worker_socket.close()
    return master_error, outcome["worker"]


def test_handshake_same_token():
    assert handshake("s3cret", "s3cret") == (None, None)


def test_handshake_empty_tokens():
    assert handshake("", "") == (None, None)


@pytest.mark.parametrize(("master_token", "worker_token"), [("s3cret", "other"), ("", "s3cret"), ("s3cret", "")])
def test_handshake_wrong_token(master_token, worker_token):
    master_error, worker_error = handshake(master_token, worker_token)
    assert isinstance(master_error, AuthenticationFailed)
    assert isinstance(worker_error, AuthenticationFailed)


def test_handshake_token_not_sent():
    master_socket, worker_socket = socket.socketpair()
    sent = []

    class RecordingChannel(Channel):
        def send(self, message):
            sent.append(repr(message))
            super().send(message)

    thread = threading.Thread(target=lambda: authenticate_as_worker(Channel(worker_socket, "master"), "s3cret"))
    thread.start()
    authenticate_as_master(RecordingChannel(master_socket, "worker"), "s3cret")
    thread.join(10)
    assert not any("s3cret" in message for message in sent)


def test_channel_closed_peer():
    first, second = socket.socketpair()
    second.close()
    with pytest.raises(ConnectionLost, match="closed the connection"):
        Channel(first, "peer").receive(timeout=5)
