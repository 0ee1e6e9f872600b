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
* Nobody listening costs an actor one clock read per event: while no subscriber wants an
  event (the inbox's want file, read at most every ``RETRY_S``, names the events wanted) it
  is not even encoded. A subscriber of ``worker.exited`` alone costs the request path nothing.

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
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

#: The socket's file name inside a pool's run directory.
SOCKET_NAME = "events.sock"
#: The file naming the events the subscribers want (a JSON list, or "*" for all); it exists
#: only while someone subscribes.
WANT_NAME = "events.want"
#: How often a sender tries again to reach an absent inbox (seconds).
RETRY_S = 0.5
#: A message larger than this is dropped (and counted), never cut.
MAX_MESSAGE_BYTES = 60 * 1024
_DROPPED_KEY = "_relay_dropped"

Deliver = Callable[[str, dict[str, Any]], None]
_open_inboxes: weakref.WeakSet[EventInbox] = weakref.WeakSet()


def _forget_inboxes_in_child() -> None:
    """A process forked while inboxes run (an actor system started after another pool) must
    not keep their sockets open."""
    for inbox in list(_open_inboxes):
        inbox.forget_in_child()
    _open_inboxes.clear()


os.register_at_fork(after_in_child=_forget_inboxes_in_child)


def socket_path(run_dir: str) -> str:
    """The relay socket of the pool run whose run directory is ``run_dir``."""
    return os.path.join(run_dir, SOCKET_NAME)


class EventSender:
    """The sending end, one per process (threads share it; a forked child makes its own
    connection on its first event). ``send`` never blocks and never raises."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.want_path = os.path.join(os.path.dirname(path), WANT_NAME)
        self.dropped = 0  # not yet reported to the inbox
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = 0
        self._next_try = 0.0
        self._wanted: frozenset[str] | None = frozenset()  # None: every event; empty: none
        self._want_file: tuple[int, int] | None = None  # (inode, mtime) of what was read
        self._checked = -RETRY_S

    def wants(self, event: str | None = None) -> bool:
        """Whether a subscriber of the inbox wants ``event`` (None: any event). Reads the
        inbox's want file at most every ``RETRY_S``: one clock read otherwise."""
        now = time.monotonic()
        if now - self._checked >= RETRY_S:
            self._checked = now
            self._read_wanted()
        wanted = self._wanted
        return wanted is None or (bool(wanted) and (event is None or event in wanted))

    def _read_wanted(self) -> None:
        try:
            st = os.stat(self.want_path)
            if (st.st_ino, st.st_mtime_ns) == self._want_file:
                return
            with open(self.want_path, encoding="utf-8") as f:
                names = json.load(f)
        except (OSError, ValueError):
            self._wanted, self._want_file = frozenset(), None  # no subscriber
            return
        self._wanted = None if names == "*" else frozenset(map(str, names))
        self._want_file = (st.st_ino, st.st_mtime_ns)

    def send(self, fields: dict[str, Any]) -> bool:
        """Send one event (``fields`` with its ``event`` name); False if nobody wants it or
        it was dropped (counted)."""
        if not self.wants(str(fields.get("event", ""))):
            return False
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
        if self._sock is not None:
            # Inherited through fork: close our copy of the fd only, and connect at once. The
            # parent's retry time is not ours: a child forked within RETRY_S of its parent's
            # connect (a Worker actor forked by its Starter) lost its first events.
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock, self._next_try = None, 0.0
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
        self._wanted: frozenset[str] | None = None
        self._written: object = ()  # what the want file says now (() = no file)
        self.want_path = os.path.join(run_dir, WANT_NAME)
        self._stop = False
        self._settled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snakepit-events", daemon=True)
        self._thread.start()
        _open_inboxes.add(self)

    def listen(self, on: bool, wanted: frozenset[str] | None = None,
               timeout_s: float = 2.0) -> None:
        """Bind the socket and name the events ``wanted`` (None: all) to the senders (``on``),
        or remove both and close every connection (not ``on``); returns once done (at most
        ``timeout_s``; at once on the inbox's own thread, i.e. from a subscriber)."""
        self._wanted = wanted
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
        _open_inboxes.discard(self)
        self._wake()
        self._thread.join(drain_s)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def forget_in_child(self) -> None:
        """In a forked child: close this process's copies of the inbox's descriptors (the
        parent keeps serving; nothing is unlinked)."""
        self._stop = True
        for key in list(self._selector.get_map().values()):
            if isinstance(key.fileobj, socket.socket):
                with contextlib.suppress(OSError):
                    key.fileobj.close()
        with contextlib.suppress(OSError):
            self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        try:
            while not self._stop:
                self._settle()
                self._read(0.5)
                self._deliver_buffered()
            while self._read(0.0):  # what the senders sent before the stop, all of it
                self._deliver_buffered()
            self._deliver_buffered()
        finally:
            self._want_listen = False
            self._settle()
            self._selector.close()

    def _settle(self) -> None:
        if self._want_listen:
            if self._listener is None:
                self._bind()
            self._write_wanted(self._wanted)
        elif self._listener is not None:
            self._unbind()
        self._settled.set()

    def _write_wanted(self, wanted: frozenset[str] | None) -> None:
        """Name the wanted events in the want file (replaced atomically: a new inode)."""
        text = json.dumps("*" if wanted is None else sorted(wanted))
        if text == self._written or self._listener is None:
            return
        tmp = self.want_path + ".tmp"
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, self.want_path)
            self._written = text

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
            os.unlink(self.want_path)  # first: senders stop encoding
        self._written = ()
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

    def _read(self, timeout_s: float) -> int:
        """Accept connections and read the messages available now, waiting at most
        ``timeout_s`` for the first one; returns how many were read."""
        read = 0
        for key, _ in self._selector.select(timeout_s):
            if key.data == "wake":
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            elif key.data == "accept":
                self._accept(key.fileobj)  # type: ignore[arg-type]
            else:
                read += self._drain(key.fileobj)  # type: ignore[arg-type]
        return read

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                conn.setblocking(False)
                self._selector.register(conn, selectors.EVENT_READ, "conn")

    def _drain(self, conn: socket.socket, most: int = 256) -> int:
        """Read at most ``most`` messages of one sender (the others get their turn); returns
        how many."""
        for n in range(most):
            try:
                data = conn.recv(MAX_MESSAGE_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                return n
            except OSError:
                data = b""
            if not data:  # the sender's process ended
                self._selector.unregister(conn)
                conn.close()
                return n
            self._take(data)
        return most

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
