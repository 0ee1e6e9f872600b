"""The fork server's wire: one request and one reply per connection on its unix socket.

    client (Worker actor) ── connect ──────────────────────────────> fork server
           ── length (4 bytes, big-endian) + JSON object, fds ──>   (SCM_RIGHTS, first bytes)
           <── length + JSON object ──                              then the server closes

Shared by the fork server (``bridge/fork_server.py``) and the host side
(``tree/fork_server.py``). Imports neither grpc nor thespian.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_FDS", "MAX_MESSAGE_BYTES", "recv_message", "send_message"]

#: The largest message (a fork request carries the adapter config and the pool's token).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
#: The most descriptors one message carries (a fork request: ready pipe and log file).
MAX_FDS = 4
_HEADER = struct.Struct("!I")


def send_message(sock: socket.socket, payload: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send ``payload`` as one framed JSON message; ``fds`` travel with its first bytes.

    Raises:
        OSError: the peer is gone or the socket timed out.
        ValueError: the message exceeds ``MAX_MESSAGE_BYTES``.
    """
    data = json.dumps(payload, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"fork server message of {len(data)} bytes exceeds "
                         f"{MAX_MESSAGE_BYTES}")
    frame = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [frame], list(fds)) if fds else sock.send(frame)
    if sent < len(frame):
        sock.sendall(frame[sent:])


def recv_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    """Receive one framed JSON object (and up to ``max_fds`` descriptors, which the caller
    then owns).

    Raises:
        EOFError: the peer closed before a whole message arrived.
        OSError: the socket timed out or failed.
        ValueError: the frame is too large or not a JSON object.
    """
    buffer = bytearray()
    fds: list[int] = []
    if max_fds:
        chunk, fds, _flags, _addr = socket.recv_fds(sock, 65536, max_fds)
        buffer += chunk
        if not chunk:
            _close(fds)
            raise EOFError("fork server connection closed")
    try:
        size = _read_exactly(sock, buffer, _HEADER.size)
        (length,) = _HEADER.unpack(bytes(size[:_HEADER.size]))
        if length > MAX_MESSAGE_BYTES:
            raise ValueError(f"fork server message of {length} bytes exceeds "
                             f"{MAX_MESSAGE_BYTES}")
        data = _read_exactly(sock, buffer, _HEADER.size + length)[_HEADER.size:]
        payload = json.loads(bytes(data))
        if not isinstance(payload, dict):
            raise ValueError("fork server message must be a JSON object")
    except BaseException:
        _close(fds)
        raise
    return payload, fds


def _read_exactly(sock: socket.socket, buffer: bytearray, size: int) -> bytearray:
    while len(buffer) < size:
        chunk = sock.recv(max(65536, size - len(buffer)))
        if not chunk:
            raise EOFError("fork server connection closed mid-message")
        buffer += chunk
    return buffer


def _close(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
