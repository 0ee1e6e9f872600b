"""The gateway thread of a ``Pool`` handle: the one user of its ActorSystem endpoint.

    caller threads / asyncio tasks
        │  submit(target, message): register a Future (a ``StreamSink`` for a stream) under
        │  the reply's key, put the message in the outbox, write a byte to the wake pipe
        ▼
    gateway thread
        │  drains the outbox -> one Execute or one ExecuteBatch per target (lease traffic of
        │  a ``LeaseClient`` first); waits in Thespian's select() on its sockets AND the wake
        │  pipe (so a new request never waits for a poll tick)
        ▼
    replies: matched to Futures by request id; ``StreamChunk`` values go to their sink

The gateway also watches the actor system itself (``watch_system``): pidfds of the admin, the
logger and the pool's PoolRoot sit in the same select(). When one dies (kill -9 of the admin;
of the logger, which the admin follows within 0.2 s; of the PoolRoot, which takes the pool's
tree along), the pool is gone for good: every pending Future and every later ``submit`` fails
at once with ``PoolClosedError`` (reason "actor_system_gone", or "pool_tree_gone" for the
PoolRoot) and the handle's ``on_gone`` cleans up what is left.

Thespian endpoints are not shared safely between threads, hence one thread. A caller never
waits here without a bound derived from its request's deadline (``reply_wait_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from snakepit_actors.client.lease_client import LeaseClient
from snakepit_actors.client.session_api import SESSION_REPLIES
from snakepit_actors.errors import PoolClosedError, PoolNotReadyError, RequestTimeoutError
from snakepit_actors.messages import (
    Execute,
    ExecuteBatch,
    ExecuteFailed,
    ExecuteResult,
    PoolClosed,
    PoolStarted,
    PoolStartFailed,
    PoolStats,
    RecycleRequested,
    StartProgress,
    StreamChunk,
    WorkerList,
)

#: How long past a request's deadline a caller still waits for the pool's own answer (its
#: ``RequestTimeoutError`` is sent at the deadline and must travel back through the actors).
REPLY_GRACE_S = 5.0


def reply_wait_s(deadline_unix_s: float | None) -> float | None:
    """How long to wait now for an answer to a request with ``deadline_unix_s``: the time
    left to the deadline plus ``REPLY_GRACE_S`` (never negative); None: no deadline, no limit.
    Recomputed before every wait, so a stream's waits never reset the deadline."""
    if deadline_unix_s is None:
        return None
    return max(0.0, deadline_unix_s - time.time()) + REPLY_GRACE_S


class StreamSink(Future[Any]):
    """The receiving end of one stream: chunks and the final reply, in order. Fed by the
    gateway thread; read by one consumer (a thread, or a coroutine on ``loop``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        self._loop = loop
        self._items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._async_items: asyncio.Queue[tuple[str, Any]] | None = (
            asyncio.Queue() if loop is not None else None)

    def _deliver(self, item: tuple[str, Any]) -> None:
        if self._loop is not None and self._async_items is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is reading
                self._loop.call_soon_threadsafe(self._async_items.put_nowait, item)
        else:
            self._items.put(item)

    def add_values(self, values: tuple[Any, ...]) -> None:
        self._deliver(("values", values))

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self._deliver(("end", result))

    def set_exception(self, exception: BaseException | None) -> None:
        super().set_exception(exception)
        self._deliver(("error", exception))

    def take_at(self, deadline_unix_s: float | None) -> tuple[str, Any]:
        """The next item: ("values", tuple), ("end", result) or ("error", exception). Blocks
        until one arrives or ``deadline_unix_s`` (+ ``REPLY_GRACE_S``) passes, then returns a
        ``RequestTimeoutError``; None: no limit."""
        wait_s = reply_wait_s(deadline_unix_s)
        try:
            return self._items.get(timeout=wait_s)
        except queue.Empty:
            return "error", _stream_timeout(wait_s)

    async def take_at_async(self, deadline_unix_s: float | None) -> tuple[str, Any]:
        """``take_at`` for the sink's event loop."""
        assert self._async_items is not None
        wait_s = reply_wait_s(deadline_unix_s)
        try:
            return await asyncio.wait_for(self._async_items.get(), wait_s)
        except TimeoutError:
            return "error", _stream_timeout(wait_s)


def _stream_timeout(wait_s: float | None) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"the stream passed its deadline: no data, nor the pool's answer, within the last "
        f"{wait_s:.3f}s (deadline + {REPLY_GRACE_S}s grace)", reason="no_reply")


class Gateway:
    """The one thread that owns the ActorSystem endpoint; see the module docstring.

    Args:
        actor_system: the handle's ActorSystem (its endpoint is used by this thread only).
        name: the pool's name (names the thread).
        on_progress: called with (workers_ready, pool_size) on each ``StartProgress``.
    """

    def __init__(self, actor_system: Any, name: str,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self._asys = actor_system
        self._on_progress = on_progress
        self._outbox: queue.SimpleQueue[tuple[Any, Any, Future[Any]] | None] = queue.SimpleQueue()
        self._pending: dict[str, Future[Any]] = {}
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:8]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._running = True
        self._leases: LeaseClient | None = None
        self._transport = actor_system._systemBase.transport
        self._transport.set_watch([self._wake_r])
        self._system_fds: dict[int, str] = {}  # pidfd -> what it is ("admin", "logger", ...)
        self._polled_pids: dict[int, str] = {}  # no pidfd for these: checked every loop
        self.on_gone: Callable[[], None] | None = None
        self.gone_error: PoolClosedError | None = None
        self._thread = threading.Thread(target=self._run, name=f"snakepit-gateway-{name}",
                                        daemon=True)
        self._thread.start()

    def watch_system(self, pids: dict[int, str], on_gone: Callable[[], None]) -> None:
        """Treat the death of any of ``pids`` (pid -> "admin", "logger" or "PoolRoot"; 0 is
        skipped) as the end of the pool: fail everything (``gone_error``), then call
        ``on_gone`` once, on the gateway thread. Call before any request; a pid already gone
        counts at once."""
        self.on_gone = on_gone
        for pid, what in pids.items():
            if pid <= 0:
                continue
            try:
                self._system_fds[os.pidfd_open(pid)] = what
            except (OSError, AttributeError):  # gone already (ESRCH), or no pidfds here
                self._polled_pids[pid] = what
        self._transport.set_watch([self._wake_r, *self._system_fds])
        self.wake()

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def attach(self, leases: LeaseClient) -> None:
        """Carry ``leases``' traffic: flush it every loop, hand it the Pool's lease answers."""
        self._leases = leases
        self.wake()

    def wake(self) -> None:
        """Make the gateway loop once now (any thread; never blocks)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def submit(self, target: Any, message: Any, key: str | None = None,
               sink: StreamSink | None = None) -> Future[Any]:
        """Send ``message``; the returned Future gets the reply matched by ``key`` (default
        the message's request id; "" expects no reply)."""
        future: Future[Any] = sink if sink is not None else Future()
        if self.gone_error is not None:
            future.set_exception(self.gone_error)
            return future
        if not self._running:
            future.set_exception(PoolClosedError("the pool's gateway is stopped"))
            return future
        future.key = key or message.request_id  # type: ignore[attr-defined]
        self._outbox.put((target, message, future))
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self.gone_error is not None and not future.done():  # lost a race with _system_gone
            with contextlib.suppress(InvalidStateError):
                future.set_exception(self.gone_error)
        return future

    def call(self, target: Any, message: Any, key: str, timeout_s: float) -> Any:
        """``submit`` and block for the reply at most ``timeout_s`` seconds.

        Raises:
            PoolNotReadyError: no answer in time.
            PoolClosedError: the gateway stopped.
            SnakepitError: the error the reply carried.
        """
        try:
            return self.submit(target, message, key).result(timeout_s)
        except FutureTimeout:
            raise PoolNotReadyError(f"no answer to {type(message).__name__} within "
                                    f"{timeout_s}s", reason="no_answer") from None

    def wait_idle(self, deadline: float) -> None:
        """Wait until no request is pending (nor any direct call running), or the monotonic
        ``deadline``."""
        while (self._pending or (self._leases is not None and self._leases.busy)) \
                and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the thread; every pending Future fails with ``PoolClosedError``."""
        self._running = False
        self._outbox.put(None)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(5.0)
        self._transport.set_watch([])
        for fd in (self._wake_r, self._wake_w, *self._system_fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        error = self.gone_error or PoolClosedError(
            "the pool was closed before the reply arrived", reason="closed_in_flight")
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    # --- the gateway thread -------------------------------------------------------------------

    def _run(self) -> None:
        while self._running:
            dead = [what for pid, what in self._polled_pids.items() if not _alive(pid)]
            if dead:
                self._system_gone(dead[0])
                return
            self._send_outbox()
            self._receive(self._wait_s())

    def _wait_s(self) -> float | None:
        wait = None if not self._pending else 1.0
        if self._polled_pids:
            wait = 0.2 if wait is None else min(wait, 0.2)
        due = self._leases.next_wait_s() if self._leases is not None else None
        return due if wait is None or (due is not None and due < wait) else wait

    def _send_outbox(self) -> None:
        batches: dict[str, tuple[Any, list[Any]]] = {}
        self._send_leases(force_usage=False)
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._running = False
                return
            target, message, future = item
            if future.key:  # type: ignore[attr-defined]
                self._pending[future.key] = future  # type: ignore[attr-defined]
            batches.setdefault(str(target), (target, []))[1].append(message)
        if batches:
            self._send_leases(force_usage=True)  # counters first: a stats query may follow
        for target, messages in batches.values():
            executes = [m for m in messages if isinstance(m, Execute)]
            others = [m for m in messages if not isinstance(m, Execute)]
            if len(executes) > 1:
                self._asys.tell(target, ExecuteBatch(tuple(executes)))
            elif executes:
                self._asys.tell(target, executes[0])
            for message in others:
                self._asys.tell(target, message)

    def _send_leases(self, force_usage: bool) -> None:
        if self._leases is not None:
            batch = self._leases.flush(force_usage)
            if batch is not None:
                self._asys.tell(self._leases.pool, batch)

    def _receive(self, timeout_s: float | None) -> None:
        """Block in Thespian's select until a reply or the wake pipe; dispatch replies."""
        from datetime import timedelta

        wait = timedelta(seconds=timeout_s if timeout_s is not None else 3600.0)
        while True:
            envelope = self._asys._systemBase._run_transport(wait)
            wait = timedelta(0)
            if envelope is None or not hasattr(envelope, "message"):
                return
            message = envelope.message
            if type(message).__name__ == "WatchMessage":
                dead = [self._system_fds[fd] for fd in message.ready if fd in self._system_fds]
                if dead:
                    self._system_gone(dead[0])
                    return
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                return
            self._dispatch(message)

    def _system_gone(self, what: str) -> None:
        """``what`` (the admin, the logger or the PoolRoot) died: nothing will answer again.
        Stop the loop, fail every pending Future and every lease waiter, then let the handle
        clean up (``on_gone``)."""
        self._running = False
        tree = what == "PoolRoot"
        self.gone_error = PoolClosedError(
            f"the pool's {'actor tree' if tree else 'actor system'} died (its {what} process "
            f"exited); a request that had reached a worker may have run; start a new pool",
            reason="pool_tree_gone" if tree else "actor_system_gone", details={"exited": what})
        for future in list(self._pending.values()):
            if not future.done():
                with contextlib.suppress(InvalidStateError):
                    future.set_exception(self.gone_error)
        self._pending.clear()
        while True:  # requests submitted before gone_error was set
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                break
            if item is not None and not item[2].done():
                with contextlib.suppress(InvalidStateError):
                    item[2].set_exception(self.gone_error)
        if self._leases is not None:
            self._leases.close(self.gone_error)
        if self.on_gone is not None:
            with contextlib.suppress(Exception):
                self.on_gone()

    def _dispatch(self, message: Any) -> None:
        if self._leases is not None and self._leases.handle(message):
            return
        if isinstance(message, StartProgress):
            if self._on_progress is not None:
                with contextlib.suppress(Exception):
                    self._on_progress(message.workers_ready, message.pool_size)
            return
        if isinstance(message, StreamChunk):
            sink = self._pending.get(message.request_id)
            if isinstance(sink, StreamSink):
                sink.add_values(message.values)
            return
        key = _reply_key(message)
        future = self._pending.pop(key, None) if key is not None else None
        if future is None or future.done():
            return
        if isinstance(message, ExecuteFailed):
            future.set_exception(message.error)
        elif isinstance(message, ExecuteResult):
            future.set_result(message.result)
        elif isinstance(message, PoolStartFailed):
            future.set_exception(message.error)
        else:
            future.set_result(message)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _reply_key(message: Any) -> str | None:
    if isinstance(message, ExecuteResult | ExecuteFailed | PoolStats | WorkerList
                  | RecycleRequested):
        return message.request_id
    if isinstance(message, SESSION_REPLIES):
        return message.request_id
    if isinstance(message, PoolStarted | PoolStartFailed):
        return "start"
    if isinstance(message, PoolClosed):
        return "close"
    return None
