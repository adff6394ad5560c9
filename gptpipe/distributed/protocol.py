"""The master-worker wire protocol: length-prefixed JSON messages and a mutual HMAC handshake.

Each message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON with a
"type" field. The shared secret (GPTPIPE_WORKER_TOKEN) never crosses the wire: each side sends
a random nonce, and the other side proves it has the token by returning an HMAC-SHA256 over
both nonces.

    worker -> master  {"type": "hello", "version": 1, "nonce": NW}
    master -> worker  {"type": "auth", "nonce": NM, "mac": HMAC(token, "master" NW NM)}
    worker -> master  {"type": "welcome", "mac": HMAC(token, "worker" NM NW)}   or {"type": "error", ...}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import struct
import threading
from typing import Any

from gptpipe.errors import DistributedError

PROTOCOL_VERSION = 1
TOKEN_VARIABLE = "GPTPIPE_WORKER_TOKEN"
DEFAULT_WORKER_PORT = 10000
MAX_MESSAGE_BYTES = 64 << 20
HEARTBEAT_INTERVAL_S = 5.0
HEARTBEAT_TIMEOUT_S = 30.0
"""A peer that sends nothing (not even a heartbeat) for this long is taken as lost."""

_LENGTH = struct.Struct(">I")


class ConnectionLost(Exception):
    """The peer closed the connection, reset it or stayed silent past the timeout."""


class AuthenticationFailed(Exception):
    """The peer's HMAC does not match: the two sides hold different tokens."""


def worker_token() -> str:
    """Return the shared secret from the environment ('' when unset)."""
    return os.environ.get(TOKEN_VARIABLE, "")


def _mac(token: str, role: str, first_nonce: str, second_nonce: str) -> str:
    message = f"{role}:{first_nonce}:{second_nonce}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def send_heartbeats(channel: "Channel", stopped: threading.Event) -> None:
    """Send a heartbeat every HEARTBEAT_INTERVAL_S until `stopped` is set or the connection is lost."""
    while not stopped.wait(HEARTBEAT_INTERVAL_S):
        try:
            channel.send({"type": "heartbeat"})
        except ConnectionLost:
            return


class Channel:
    """A socket that sends and receives whole messages; sends are safe from several threads."""

    def __init__(self, sock: socket.socket, peer: str):
        self.sock = sock
        self.peer = peer
        self._send_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode("utf-8")
        with self._send_lock:
            try:
                self.sock.sendall(_LENGTH.pack(len(payload)) + payload)
            except OSError as error:
                raise ConnectionLost(f"sending to {self.peer} failed: {error}") from None

    def receive(self, timeout: float | None = HEARTBEAT_TIMEOUT_S) -> dict[str, Any]:
        """Return the next message; raise ConnectionLost on close, reset or `timeout` seconds of silence."""
        self.sock.settimeout(timeout)
        header = self._receive_exactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(header)
        if length > MAX_MESSAGE_BYTES:
            raise ConnectionLost(f"{self.peer} sent a message of {length} bytes, more than the limit of "
                                 f"{MAX_MESSAGE_BYTES}; it is not a gptpipe peer of this version")
        try:
            message = json.loads(self._receive_exactly(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ConnectionLost(f"{self.peer} sent a message that is not JSON; it is not a gptpipe peer") from None
        if not isinstance(message, dict) or "type" not in message:
            raise ConnectionLost(f"{self.peer} sent a message without a type; it is not a gptpipe peer")
        return message

    def _receive_exactly(self, count: int) -> bytes:
        chunks = []
        remaining = count
        while remaining > 0:
            try:
                chunk = self.sock.recv(remaining)
            except socket.timeout:
                raise ConnectionLost(f"{self.peer} sent nothing for {self.sock.gettimeout():.0f} s") from None
            except OSError as error:
                raise ConnectionLost(f"connection to {self.peer} failed: {error}") from None
            if not chunk:
                raise ConnectionLost(f"{self.peer} closed the connection")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def expect(channel: Channel, message_type: str, timeout: float | None = HEARTBEAT_TIMEOUT_S) -> dict[str, Any]:
    """Receive one message of `message_type`; an "error" message from the peer raises DistributedError."""
    message = channel.receive(timeout)
    if message["type"] == "error":
        raise DistributedError(str(message.get("message", "unknown error")))
    if message["type"] != message_type:
        raise ConnectionLost(f"{channel.peer} sent {message['type']!r} where {message_type!r} was expected")
    return message


def authenticate_as_master(channel: Channel, token: str) -> None:
    """Run the master's half of the handshake; raise AuthenticationFailed on a token mismatch."""
    hello = expect(channel, "hello")
    if hello.get("version") != PROTOCOL_VERSION:
        raise DistributedError(
            f"{channel.peer} speaks protocol version {hello.get('version')}, this master speaks "
            f"{PROTOCOL_VERSION}; install the same gptpipe version on every host"
        )
    master_nonce = secrets.token_hex(16)
    channel.send({"type": "auth", "nonce": master_nonce, "mac": _mac(token, "master", hello["nonce"], master_nonce)})
    message = channel.receive()
    if message["type"] == "error" and message.get("reason") == "authentication":
        raise AuthenticationFailed(message.get("message", "authentication failed"))
    if message["type"] == "error":
        raise DistributedError(f"{channel.peer}: {message.get('message', 'unknown error')}")
    if message["type"] != "welcome":
        raise ConnectionLost(f"{channel.peer} sent {message['type']!r} where 'welcome' was expected")
    if not hmac.compare_digest(message.get("mac", ""), _mac(token, "worker", master_nonce, hello["nonce"])):
        raise AuthenticationFailed("the worker's reply does not match this master's token")


def authenticate_as_worker(channel: Channel, token: str) -> None:
    """Run the worker's half of the handshake; on a mismatch tell the master, then raise AuthenticationFailed."""
    worker_nonce = secrets.token_hex(16)
    channel.send({"type": "hello", "version": PROTOCOL_VERSION, "nonce": worker_nonce})
    auth = channel.receive()
    if auth.get("type") != "auth" or not isinstance(auth.get("nonce"), str):
        raise ConnectionLost(f"{channel.peer} did not start the gptpipe handshake")
    expected = _mac(token, "master", worker_nonce, auth["nonce"])
    if not hmac.compare_digest(str(auth.get("mac", "")), expected):
        channel.send({"type": "error", "reason": "authentication",
                      "message": "the worker rejected the master's token"})
        raise AuthenticationFailed(f"{channel.peer} sent a token proof that does not match this worker's token")
    channel.send({"type": "welcome", "mac": _mac(token, "worker", auth["nonce"], worker_nonce)})
