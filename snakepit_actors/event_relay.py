"""Telemetry events of a pool's actor processes, relayed to the process that started the pool.

Every actor of a pool runs in its own process, while ``telemetry.subscribe`` handlers live in
the caller's. This module carries the events between them, one Unix socket per pool run::

    actor process (PoolRoot and everything forked below it)
        telemetry event --EventSender.send: one JSON message, MSG_DONTWAIT--+
                                                                           v
    caller's process:  <run_dir>/events.sock (SOCK_SEQPACKET, mode 0600, bound only while
        the process has subscribers)  --EventInbox thread--> bounded buffer --> subscribers

* Never blocking an actor: each sender process has one connection (made on its first event,
  retried at most every ``RETRY_S`` while the inbox is absent) and sends with ``MSG_DONTWAIT``.
  A full socket buffer (the subscriber is slower than the events) drops the event and counts
  it; the count travels in the sender's next message that gets through.
* Bounded: per sender, the kernel's socket buffer; in the caller, ``EventInbox`` reads into a
  buffer of at most ``max_buffered`` events and counts what did not fit.
* Messages keep their boundaries (SEQPACKET): no framing, no partial writes.
* Nobody listening costs an actor one clock read per event: while the socket file does not
  exist (no subscriber) events are not even encoded.

Only processes of this host relay: actors on other members of a convention (multi-host
placement) log where they run.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

#: The socket's file name inside a pool's run directory.
SOCKET_NAME = "events.sock"
#: How often a sender tries again to reach an absent inbox (seconds).
RETRY_S = 0.5
#: A message larger than this is dropped (and counted), never cut.
MAX_MESSAGE_BYTES = 60 * 1024
_DROPPED_KEY = "_relay_dropped"

Deliver = Callable[[str, dict[str, Any]], None]


def socket_path(run_dir: str) -> str:
    """The relay socket of the pool run whose run directory is ``run_dir``."""
    return os.path.join(run_dir, SOCKET_NAME)


class EventSender:
    """The sending end, one per process (threads share it; a forked child makes its own
    connection on its first event). ``send`` never blocks and never raises."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dropped = 0  # not yet reported to the inbox
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = 0
        self._next_try = 0.0

    def active(self) -> bool:
        """Whether an event would be sent now (connected, or due to try the inbox again)."""
        return (self._sock is not None and self._pid == os.getpid()) or (
            time.monotonic() >= self._next_try)

    def send(self, fields: dict[str, Any]) -> bool:
        """Send one event (``fields`` with its ``event`` name); False if it was dropped or
        nobody listens."""
        with self._lock:
            sock = self._connected()
            if sock is None:
                return False
            if self.dropped:
                fields = {**fields, _DROPPED_KEY: self.dropped}
            try:
                data = json.dumps(fields, default=str).encode("utf-8", "replace")
            except (TypeError, ValueError):
                self.dropped += 1
                return False
            if len(data) > MAX_MESSAGE_BYTES:
                self.dropped += 1
                return False
            try:
                sock.send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                self.dropped += 1  # the subscriber is behind: drop, never wait
                return False
            except OSError:
                self._disconnect()  # the inbox went away (no subscriber any more)
                return False
            self.dropped = 0
            return True

    def _connected(self) -> socket.socket | None:
        if self._sock is not None and self._pid == os.getpid():
            return self._sock
        if self._sock is not None:  # inherited through fork: the parent's connection
            self._sock.detach()
            self._sock = None
        now = time.monotonic()
        if now < self._next_try:
            return None
        self._next_try = now + RETRY_S
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return None
        self._sock, self._pid = sock, os.getpid()
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._next_try = time.monotonic() + RETRY_S


class EventInbox:
    """The receiving end in the caller's process: a daemon thread that accepts the senders'
    connections, reads their events into a buffer of at most ``max_buffered`` and hands them
    to ``deliver(event, fields)`` (``telemetry``'s subscribers), in order per sender.

    The socket exists only between ``listen(True)`` and ``listen(False)`` (the telemetry
    module calls these as the first subscriber comes and the last goes). Only the inbox
    thread touches the sockets and the selector.

    Args:
        run_dir: the pool run's private directory (the socket goes there).
        deliver: called on the inbox thread for every event; what it raises is ignored.
        max_buffered: events read but not yet delivered, at most.
    """

    def __init__(self, run_dir: str, deliver: Deliver, max_buffered: int = 4096) -> None:
        self.path = socket_path(run_dir)
        self.dropped = 0  # events lost: reported by senders, or over max_buffered here
        self.delivered = 0
        self._deliver = deliver
        self._max = max_buffered
        self._buffer: deque[dict[str, Any]] = deque()
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._want_listen = False
        self._stop = False
        self._settled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snakepit-events", daemon=True)
        self._thread.start()

    def listen(self, on: bool, timeout_s: float = 2.0) -> None:
        """Bind the socket (``on``) or remove it and close every connection (not ``on``);
        returns once done (at most ``timeout_s``)."""
        self._want_listen = on
        self._settled.clear()
        self._wake()
        if threading.current_thread() is not self._thread:  # (a subscriber may unsubscribe)
            self._settled.wait(timeout_s)

    def close(self, drain_s: float = 1.0) -> None:
        """Deliver what the senders already sent, then stop the thread (waiting at most
        ``drain_s`` for it) and remove the socket. Idempotent."""
        if self._stop:
            return
        self._stop = True
        self._wake()
        self._thread.join(drain_s)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        try:
            while not self._stop:
                self._settle()
                self._read(0.5)
                self._deliver_buffered()
            self._read(0.0)  # what arrived before the stop
            self._deliver_buffered()
        finally:
            self._want_listen = False
            self._settle()
            self._selector.close()

    def _settle(self) -> None:
        if self._want_listen and self._listener is None:
            self._bind()
        elif not self._want_listen and self._listener is not None:
            self._unbind()
        self._settled.set()

    def _bind(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind(self.path)
            os.chmod(self.path, 0o600)
            listener.listen(128)
        except OSError:
            listener.close()
            return
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, "accept")

    def _unbind(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        for key in list(self._selector.get_map().values()):
            if key.data in ("accept", "conn"):
                self._selector.unregister(key.fileobj)
                with contextlib.suppress(OSError):
                    key.fileobj.close()  # type: ignore[union-attr]
        self._listener = None

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _read(self, timeout_s: float) -> None:
        """Accept connections and read the messages available now, waiting at most
        ``timeout_s`` for the first one."""
        for key, _ in self._selector.select(timeout_s):
            if key.data == "wake":
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            elif key.data == "accept":
                self._accept(key.fileobj)  # type: ignore[arg-type]
            else:
                self._drain(key.fileobj)  # type: ignore[arg-type]

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                conn.setblocking(False)
                self._selector.register(conn, selectors.EVENT_READ, "conn")

    def _drain(self, conn: socket.socket, most: int = 256) -> None:
        """Read at most ``most`` messages of one sender (the others get their turn)."""
        for _ in range(most):
            try:
                data = conn.recv(MAX_MESSAGE_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:  # the sender's process ended
                self._selector.unregister(conn)
                conn.close()
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        try:
            fields = json.loads(data)
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            self.dropped += 1
            return
        self.dropped += int(fields.pop(_DROPPED_KEY, 0) or 0)
        if len(self._buffer) >= self._max:
            self.dropped += 1
            return
        self._buffer.append(fields)

    def _deliver_buffered(self) -> None:
        while self._buffer:
            fields = self._buffer.popleft()
            with contextlib.suppress(Exception):
                self._deliver(str(fields.get("event", "")), fields)
            self.delivered += 1
