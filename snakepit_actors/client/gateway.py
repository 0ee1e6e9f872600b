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
    replies: matched to Futures by request id (``ExecuteReplies`` unpacked); ``StreamChunk``
    values go to their sink

The gateway also watches the actor system (``watch_system``): pidfds of the admin, the logger
and the PoolRoot sit in the same select(). When one dies the pool is gone for good: every
pending Future and every later ``submit`` fails at once with ``PoolClosedError`` (reason
"actor_system_gone", or "pool_tree_gone"; ``lost_error`` may choose another: system_restart.py)
and the handle's ``on_gone`` cleans up the rest.

One thread, as Thespian endpoints are not thread-safe. A caller never waits here longer than
its request's deadline allows (``reply_wait_s`` in ``replies.py``).
"""

from __future__ import annotations

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

import psutil

from snakepit_actors.client.endpoint import Endpoint
from snakepit_actors.client.lease_client import LeaseClient
from snakepit_actors.client.replies import StreamSink
from snakepit_actors.client.session_api import SESSION_REPLIES, fail_session_calls
from snakepit_actors.client.system_watch import system_lost_error
from snakepit_actors.client.wake_pipe import WakePipe
from snakepit_actors.core import pool_errors as errs
from snakepit_actors.errors import (
    PoolClosedError,
    PoolNotReadyError,
    SerializationError,
    SnakepitError,
)
from snakepit_actors.messages import (
    Execute,
    ExecuteBatch,
    ExecuteFailed,
    ExecuteReplies,
    ExecuteResult,
    PoolClosed,
    PoolReplaced,
    PoolStarted,
    PoolStartFailed,
    PoolStats,
    RecycleRequested,
    SessionStoreReplaced,
    StartProgress,
    StreamChunk,
    TreeDescription,
    WorkerList,
)

#: What the loop may spend sending what is left when it stops (seconds).
FLUSH_ON_STOP_S = 1.0


class Gateway:
    """The one thread that owns the ActorSystem endpoint (see the module docstring). Args:
        actor_system: the handle's ActorSystem (its endpoint is used by this thread only).
        name: the pool's name (names the thread).
        on_progress: called with (workers_ready, pool_size) on each ``StartProgress``.
    """

    def __init__(self, actor_system: Any, name: str,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self._on_progress = on_progress
        self._outbox: queue.SimpleQueue[tuple[Any, Any, Future[Any]] | None] = queue.SimpleQueue()
        self._pending: dict[str, Future[Any]] = {}
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:8]
        self._wake = WakePipe()
        self._running = True
        self._leases: LeaseClient | None = None
        self._endpoint = Endpoint(actor_system, on_sent=self._sent)
        self._unsent: dict[str, tuple[Any, list[Any]]] = {}  # per target, while it is busy
        self._endpoint.watch([self._wake.fileno()])
        self._system_fds: dict[int, str] = {}  # pidfd -> what it is ("admin", "logger", ...)
        self._polled_pids: dict[int, str] = {}  # no pidfd for these: checked every loop
        self.on_gone: Callable[[], None] | None = None
        self.gone_error: SnakepitError | None = None
        self.lost_error: Callable[[str], SnakepitError] = system_lost_error  # what callers get
        self.pool: Any = None  # the Pool actor now (``PoolReplaced`` moves it)
        self.root: Any = None  # the PoolRoot (answers ``DescribeTree``)
        self.on_pool_replaced: Callable[[Any], None] | None = None
        self._retired: list[Any] = []  # earlier Pool addresses: what is sent there goes to pool
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
        self._endpoint.watch(self._watched())
        self.wake()

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def attach(self, leases: LeaseClient) -> None:
        """Carry ``leases``' traffic: flush it every loop, hand it the Pool's lease answers."""
        self._leases = leases
        self.wake()

    def wake(self) -> None:
        """Make the gateway loop once now (any thread; never blocks; one byte per loop at
        most: ``wake_pipe.py``)."""
        self._wake.wake()

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
        future.key = message.request_id if key is None else key  # type: ignore[attr-defined]
        future.target = target  # type: ignore[attr-defined]
        self._outbox.put((target, message, future))
        self._wake.kick()
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
        except FutureTimeout as exc:
            if isinstance(exc, SnakepitError):  # the reply itself: a QueueTimeoutError
                raise
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
        self._wake.kick()
        self._thread.join(5.0)
        self._endpoint.watch([])
        self._wake.close()
        for fd in self._system_fds:
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
            dead = [what for pid, what in self._polled_pids.items() if not psutil.pid_exists(pid)]
            if dead:
                self._system_gone(dead[0])
                return
            self._send_outbox()
            self._receive(self._wait_s())
        self._send_outbox()  # stopped: what is held or still queued goes out, then waits
        self._endpoint.flush(FLUSH_ON_STOP_S)

    def _wait_s(self) -> float | None:
        wait = None if not self._pending else 1.0
        if self._polled_pids:
            wait = 0.2 if wait is None else min(wait, 0.2)
        due = self._leases.next_wait_s() if self._leases is not None else None
        return due if wait is None or (due is not None and due < wait) else wait

    def _send_outbox(self) -> None:
        """Send what callers submitted, one batch per target; a target still busy with an
        earlier send keeps it for the next batch (``Endpoint.busy``)."""
        batches, self._unsent = self._unsent, {}
        self._send_leases(force_usage=False)
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                break
            if item is None:  # stop: what came before it is still sent
                self._running = False
                break
            target, message, future = item
            if any(target == old for old in self._retired):
                target = future.target = self.pool  # type: ignore[attr-defined]
            if future.key:  # type: ignore[attr-defined]
                self._pending[future.key] = future  # type: ignore[attr-defined]
            batches.setdefault(str(target), (target, []))[1].append(message)
        if batches:
            self._send_leases(force_usage=True)  # counters first: a stats query may follow
        self._send_batches(batches, hold=self._running)

    def _send_batches(self, batches: dict[str, tuple[Any, list[Any]]], hold: bool) -> None:
        for key, (target, messages) in batches.items():
            if hold and self._endpoint.busy(target):
                self._unsent[key] = (target, messages)
                continue
            executes = [m for m in messages if isinstance(m, Execute)]
            others = [m for m in messages if not isinstance(m, Execute)]
            if len(executes) > 1 and self._tell(target, ExecuteBatch(tuple(executes)), ()):
                executes = []
            for message in executes + others:
                self._tell(target, message, (message,))

    def _send_leases(self, force_usage: bool) -> None:
        if self._leases is not None:
            batch = self._leases.flush(force_usage)
            if batch is not None:
                self._tell(self._leases.pool, batch)

    def _tell(self, target: Any, message: Any, owners: tuple[Any, ...] = ()) -> bool:
        """Queue ``message`` (``Endpoint.send``: never a wait for the target, so a Pool killed
        mid-send cannot hold this thread and the ``PoolReplaced`` that follows); False if it
        cannot be pickled (a value nested too deeply, an unpicklable object): then the futures
        of ``owners`` fail with ``SerializationError``. A message to a dead target is lost
        only: its Future is failed by what follows that death (``PoolReplaced``, or the system
        watch)."""
        try:
            self._endpoint.send(target, message)
        except Exception as exc:
            for owner in owners:
                future = self._pending.pop(getattr(owner, "request_id", ""), None)
                if future is not None and not future.done():
                    future.set_exception(SerializationError(
                        f"{type(owner).__name__} {owner.request_id!r} cannot be sent to the "
                        f"pool ({type(exc).__name__}: {exc}): send plain, shallow values",
                        reason="args"))
            return False
        return True

    def _sent(self) -> None:
        """A send was acknowledged: what waits for its target goes out on the next loop."""
        if self._unsent:
            self._wake.wake()

    def _watched(self) -> list[int]:
        """The fds the gateway's receive selects on beside Thespian's sockets."""
        return [self._wake.fileno(), *self._system_fds]

    def _receive(self, timeout_s: float | None) -> None:
        """Block in Thespian's select until a reply or the wake pipe; dispatch replies."""
        wait = timeout_s if timeout_s is not None else 3600.0
        while True:
            envelope = self._endpoint.receive(wait)
            wait = 0.0
            if envelope is None or not hasattr(envelope, "message"):
                return
            message = envelope.message
            if type(message).__name__ == "WatchMessage":
                dead = [self._system_fds[fd] for fd in message.ready if fd in self._system_fds]
                if dead:
                    self._system_gone(dead[0])
                    return
                self._wake.drain()  # then the loop flushes: see wake_pipe.py
                return
            self._dispatch(message)

    def _pool_replaced(self, pool: Any) -> None:
        """The PoolRoot restarted the Pool at ``pool``: fail what the old one never answered
        (``PoolNotReadyError(reason="pool_restarted")``, it may have run), send everything
        later to ``pool``; the lease client re-sends its lease requests there."""
        old, self.pool = self.pool, pool
        self._retired.append(old)
        self._unsent.pop(str(old), None)  # its futures fail below
        error = errs.pool_restarted(sent=True)
        for key, future in list(self._pending.items()):
            if future.target == old and not future.done():  # type: ignore[attr-defined]
                del self._pending[key]
                with contextlib.suppress(InvalidStateError):
                    future.set_exception(error)
        if self._leases is not None:
            self._leases.pool_replaced(pool, errs.pool_restarted(sent=False))
        if self.on_pool_replaced is not None:
            with contextlib.suppress(Exception):
                self.on_pool_replaced(pool)

    def _system_gone(self, what: str) -> None:
        """``what`` (the admin, the logger or the PoolRoot) died: nothing will answer again.
        Stop the loop, fail every pending Future and every lease waiter, then let the handle
        clean up (``on_gone``)."""
        self._running = False
        self.gone_error = self.lost_error(what)
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
        if isinstance(message, PoolReplaced):
            self._pool_replaced(message.pool)
            return
        if isinstance(message, SessionStoreReplaced):
            fail_session_calls(self._pending)
            return
        if isinstance(message, StartProgress):
            if self._on_progress is not None:
                with contextlib.suppress(Exception):
                    self._on_progress(message.workers_ready, message.pool_size)
            return
        if isinstance(message, ExecuteReplies):
            for reply in message.replies:
                self._dispatch(reply)
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


def _reply_key(message: Any) -> str | None:
    if isinstance(message, (ExecuteResult, ExecuteFailed, PoolStats, WorkerList,
                            RecycleRequested, TreeDescription, *SESSION_REPLIES)):
        return str(message.request_id)
    if isinstance(message, PoolStarted | PoolStartFailed):
        return "start"
    if isinstance(message, PoolClosed):
        return "close"
    return None
