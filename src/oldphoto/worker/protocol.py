"""Length-prefixed JSON messages over an ``AF_UNIX`` stream socket, and the worker errors.

A message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.  A peer that
closes the connection between two messages raises :class:`ConnectionClosed`; one that closes it in
the middle of a message raises :class:`ProtocolError` (as does a message that is not JSON or is
larger than :data:`MAX_MESSAGE_BYTES`).

Messages from a client to a worker are dicts with an ``op``:

- ``{"op": "ping"}`` → ``{"ok": true, "pid": ..., "token": ...}`` (readiness handshake);
- ``{"op": "shutdown"}`` → ``{"ok": true, ...}``, then the worker exits;
- ``{"op": "run", "handler": "mod:fn", "cwd": ..., "request": {...}}`` → the handler's result dict
  plus a ``worker`` entry, or ``{"ok": false, "respawn": reason}`` when this worker cannot serve
  the request (another handler, or an ``env`` it was not started with).
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

from oldphoto.errors import OldPhotoError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")


class ConnectionClosed(EOFError):
    """The peer closed the connection cleanly, between two messages."""


class ProtocolError(OSError):
    """A truncated, oversized or non-JSON message."""


class WorkerError(OldPhotoError):
    """A worker could not be started or reached; ``path`` is the worker's log file."""

    kind = "worker error"


class WorkerDied(WorkerError):
    """The worker serving a request died before answering (crash, signal, out-of-memory kill).

    ``returncode`` is its exit status as :mod:`subprocess` writes it (``-11`` for SIGSEGV), or
    None when it could not be learnt.
    """

    kind = "worker died"

    def __init__(self, path: str | Path | None, reason: str,
                 returncode: int | None = None) -> None:
        self.returncode = returncode
        super().__init__(path, reason)


def send_message(sock: socket.socket, obj: Any) -> None:
    """Send ``obj`` as one JSON message (raises ``TypeError`` for what JSON cannot hold)."""
    payload = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def recv_message(sock: socket.socket) -> Any:
    """Receive one JSON message; :class:`ConnectionClosed` on a clean end of stream."""
    header = _recv_exactly(sock, _HEADER.size, at_boundary=True)
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"announced message of {length} bytes exceeds {MAX_MESSAGE_BYTES}")
    payload = _recv_exactly(sock, length, at_boundary=False)
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"message is not UTF-8 JSON: {err}") from None


def _recv_exactly(sock: socket.socket, size: int, *, at_boundary: bool) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            if at_boundary and remaining == size:
                raise ConnectionClosed("peer closed the connection")
            raise ProtocolError(f"connection closed {size - remaining} bytes into a "
                                f"{size}-byte read")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
