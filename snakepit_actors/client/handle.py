"""``Pool``: the handle plain Python code uses (sync and asyncio, thread-safe).

Two data paths (``PoolConfig.data_path``, DESIGN §3): "direct" (the default) runs ``execute``
through ``direct.DirectPath``: leases from the Pool, gRPC straight to the worker from the
caller's thread; the gateway below then only carries lease traffic, for a
``lease_client.LeaseClient``. "actor" sends every request through the actors as drawn here.
``execute_stream`` takes the configured path too (``direct_stream.py``); ``execute_stream_async``
always takes the actor path.

Data flow (actor path)::

    caller threads / asyncio tasks
        │  execute(): encode args, register a Future, put the message in the outbox
        ▼
    gateway thread (the only user of the ActorSystem endpoint)
        │  drains the outbox -> one Execute or one ExecuteBatch to the Pool actor
        │  waits in Thespian's select() on its sockets AND a wake pipe (so a new request
        │  never waits for a poll tick), then matches replies to Futures by request id
        ▼
    Pool actor -> Worker actor -> gRPC -> worker process; the Worker replies to the gateway

One ``timeout`` becomes one absolute deadline at the edge and travels with the request.
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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from snakepit_actors.client.direct import DirectPath
from snakepit_actors.client.host_tools import HostToolMethods
from snakepit_actors.client.lease_client import LeaseClient
from snakepit_actors.client.session_api import SESSION_REPLIES, SessionMethods
from snakepit_actors.config import PoolConfig
from snakepit_actors.errors import (
    PoolClosedError,
    PoolNotReadyError,
    RequestTimeoutError,
    SnakepitError,
)
from snakepit_actors.json_codec import encode_args
from snakepit_actors.messages import (
    CancelRequest,
    ClosePool,
    Execute,
    ExecuteBatch,
    ExecuteFailed,
    ExecuteResult,
    GetStats,
    ListWorkers,
    PoolClosed,
    PoolStarted,
    PoolStartFailed,
    PoolStats,
    RecycleRequested,
    RequestRecycle,
    StartPool,
    StartProgress,
    StreamChunk,
    WorkerInfo,
    WorkerList,
)
from snakepit_actors.ops.reaper import sweep_orphans
from snakepit_actors.system import (
    StartedSystem,
    make_run_dir,
    remove_run_dir,
    shutdown_actor_system,
    start_actor_system,
)
from snakepit_actors.tree.process_registry import default_data_dir, process_db_path

#: Extra time a caller waits past a request's deadline for the pool's own timeout reply.
_REPLY_GRACE_S = 5.0
_CONTROL_TIMEOUT_S = 10.0


class Pool(SessionMethods, HostToolMethods):
    """A running pool of external Python workers. Create it with ``Pool.start``.

    All methods are thread-safe; ``execute_async`` may be awaited from any event loop.
    """

    def __init__(self, config: PoolConfig, system: StartedSystem, run_dir: str,
                 gateway: _Gateway, pool_address: Any, admin_pid: int, run_id: str = "",
                 process_db: str = "") -> None:
        self.config = config
        self.run_id = run_id
        self._process_db = process_db
        self._system = system
        self._run_dir = run_dir
        self._gateway = gateway
        self._pool = pool_address
        self._direct: DirectPath | None = None
        if config.data_path == "direct":
            leases = LeaseClient(pool_address, gateway.new_id, gateway.wake,
                                 affinity_wait_s=config.affinity_wait_s
                                 if config.affinity == "hint" else 0.0)
            self._direct = DirectPath(config, leases)
            gateway.attach(leases)
        self.admin_pid = admin_pid
        self._closed = False
        self._close_lock = threading.Lock()
        self._output = _copy_worker_output(config.name, run_dir)

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def start(cls, config: PoolConfig | None = None, *,
              on_progress: Callable[[int, int], None] | None = None,
              **overrides: Any) -> Pool:
        """Start an actor system, the pool's actor tree and ``pool_size`` worker processes.

        Blocks until every worker is ready (about one worker's start time: they start
        concurrently) or ``startup_timeout`` passes. ``overrides`` replace fields of ``config``.
        ``on_progress(workers_ready, pool_size)`` is called as each worker becomes ready, on
        the pool's gateway thread: keep it short (print a line, set a value); what it raises
        is ignored.

        Raises:
            ConfigError: an invalid field (all of them are named).
            PoolNotReadyError: a worker failed to start (its error, e.g. the adapter's import
                error, is in the message) or startup timed out. Nothing is left running.
        """
        cfg = (config or PoolConfig()).with_overrides(**overrides) if overrides else (
            config or PoolConfig())
        process_db = process_db_path(default_data_dir(os.environ))
        sweep_orphans(process_db)  # what SIGKILLed runs left behind, verified before killing
        run_id = uuid.uuid4().hex[:12]
        run_dir = make_run_dir(cfg.name)
        system = start_actor_system(cfg.system, run_dir)
        gateway: _Gateway | None = None
        admin_pid = 0
        try:
            from snakepit_actors.tree.launcher_watch import watch_launcher
            from snakepit_actors.tree.pool_root import PoolRoot

            asys = system.actor_system
            admin_pid = watch_launcher(asys, _CONTROL_TIMEOUT_S)
            root = asys.createActor(PoolRoot)
            gateway = _Gateway(asys, cfg.name, on_progress)
            started = gateway.call(root, StartPool(cfg, run_id, run_dir, process_db, os.getpid(),
                                                   report_progress=on_progress is not None),
                                   "start", cfg.startup_timeout + _REPLY_GRACE_S)
        except BaseException as exc:
            if gateway is not None:
                gateway.stop()
            shutdown_actor_system(system, admin_pid)
            sweep_orphans(process_db, ended_runs={run_id})
            remove_run_dir(run_dir)
            if isinstance(exc, SnakepitError):
                raise exc from None
            raise
        return cls(cfg, system, run_dir, gateway, started.pool, admin_pid, run_id, process_db)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the pool: refuse new requests, fail queued ones with ``PoolClosedError``, let
        in-flight requests finish for up to ``timeout`` seconds, then stop every actor and
        worker process. Idempotent; blocks until everything is gone."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        with contextlib.suppress(SnakepitError):
            self._gateway.call(self._pool, ClosePool(), "close", min(timeout, _CONTROL_TIMEOUT_S))
        if self._direct is not None:
            self._direct.leases.close()
        self._gateway.wait_idle(deadline)
        self._gateway.stop()
        if self._direct is not None:
            self._direct.close_channels()
        self._stop_host_tools()
        shutdown_actor_system(self._system, self.admin_pid)
        if self._output is not None:
            self._output.stop()
        if self._process_db:
            sweep_orphans(self._process_db, ended_runs={self.run_id})
        remove_run_dir(self._run_dir)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- requests -----------------------------------------------------------------------------

    def execute(self, tool: str, args: Mapping[str, Any] | None = None, *,
                session_id: str | None = None, timeout: float | None = None,
                idempotent: bool = False) -> Any:
        """Run ``tool(**args)`` on a worker and return its result (JSON-decoded).

        Blocks until the result arrives. ``timeout`` (seconds) covers queueing and running;
        ``None`` means the pool's ``request_timeout`` (which may itself be None: no deadline).
        ``idempotent=True`` says the tool may safely run twice: if its worker dies under it, it
        is re-run once on another worker instead of failing (``retry_idempotent`` in the config
        does this for every request).

        Raises:
            ToolError: the tool raised (python type, message and traceback attached).
            UnknownToolError, InvalidArgumentsError, SerializationError,
            PayloadTooLargeError: bad input; nothing ran (or the result could not be sent).
            PoolSaturatedError, QueueTimeoutError: the request never reached a worker.
            RequestTimeoutError: the deadline passed while a worker had it.
            WorkerCrashedError: the worker died under it.
            PoolClosedError: the pool is closed.
        """
        if self._direct is not None and self._uses_direct_path(session_id):
            return self._direct.execute(self._request(tool, args, session_id, timeout,
                                                      idempotent))
        future, wait_s = self._submit(tool, args, session_id, timeout, idempotent)
        try:
            return future.result(wait_s)
        except FutureTimeout:
            raise self._no_reply(tool, wait_s) from None

    async def execute_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                            session_id: str | None = None, timeout: float | None = None,
                            idempotent: bool = False) -> Any:
        """``execute`` for asyncio: same parameters and errors; never blocks the loop."""
        if self._direct is not None and self._uses_direct_path(session_id):
            return await self._direct.execute_async(self._request(tool, args, session_id,
                                                                  timeout, idempotent))
        future, wait_s = self._submit(tool, args, session_id, timeout, idempotent)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), wait_s)
        except TimeoutError:
            raise self._no_reply(tool, wait_s) from None

    def execute_stream(self, tool: str, args: Mapping[str, Any] | None = None, *,
                       session_id: str | None = None,
                       timeout: float | None = None) -> Iterator[Any]:
        """Run a generator tool and iterate over the values it yields, as they arrive.

        Same parameters and errors as ``execute`` (raised by the iteration). Each ``next()``
        blocks until the next value. Leaving the loop early cancels the tool on its worker.
        On the actor path values are buffered here without bound: consume them.
        """
        request = self._request(tool, args, session_id, timeout, False, stream=True)
        if self._direct is not None and self._uses_direct_path(session_id):
            from snakepit_actors.client.direct_stream import stream

            return stream(self._direct, request)
        sink = _StreamSink()
        self._gateway.submit(self._pool, request, sink=sink)
        return self._iterate(sink, request, timeout)

    def _iterate(self, sink: _StreamSink, request: Execute,
                 timeout: float | None) -> Iterator[Any]:
        finished = False
        try:
            while True:
                kind, value = sink.take(None if timeout is None else timeout + _REPLY_GRACE_S)
                if kind == "values":
                    yield from value
                elif kind == "error":
                    finished = True
                    raise value
                else:
                    finished = True
                    return
        finally:
            if not finished:
                self._gateway.submit(self._pool, CancelRequest(request.request_id), key="")

    async def execute_stream_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                                   session_id: str | None = None,
                                   timeout: float | None = None) -> AsyncIterator[Any]:
        """``execute_stream`` for asyncio: ``async for value in pool.execute_stream_async(...)``.
        Never blocks the event loop."""
        loop = asyncio.get_running_loop()
        sink = _StreamSink(loop)
        request = self._request(tool, args, session_id, timeout, False, stream=True)
        self._gateway.submit(self._pool, request, sink=sink)
        finished = False
        try:
            while True:
                kind, value = await sink.take_async(
                    None if timeout is None else timeout + _REPLY_GRACE_S)
                if kind == "values":
                    for item in value:
                        yield item
                elif kind == "error":
                    finished = True
                    raise value
                else:
                    finished = True
                    return
        finally:
            if not finished:
                self._gateway.submit(self._pool, CancelRequest(request.request_id), key="")

    def _request(self, tool: str, args: Mapping[str, Any] | None, session_id: str | None,
                 timeout: float | None, idempotent: bool, stream: bool = False) -> Execute:
        if self._closed:
            raise PoolClosedError(f"pool {self.config.name!r} is closed")
        if not isinstance(tool, str) or not tool:
            raise _invalid_tool(tool)
        payload = encode_args(tool, {} if args is None else args, self.config.max_payload_bytes)
        timeout = self.config.request_timeout if timeout is None else timeout
        deadline = None if timeout is None else time.time() + timeout
        return Execute(request_id=self._gateway.new_id(), tool=tool, session_id=session_id,
                       deadline_unix_s=deadline, idempotent=idempotent, args_json=payload,
                       stream=stream)

    def _submit(self, tool: str, args: Mapping[str, Any] | None, session_id: str | None,
                timeout: float | None, idempotent: bool) -> tuple[Future[Any], float | None]:
        request = self._request(tool, args, session_id, timeout, idempotent)
        future = self._gateway.submit(self._pool, request)
        timeout = self.config.request_timeout if timeout is None else timeout
        return future, None if timeout is None else timeout + _REPLY_GRACE_S

    def _no_reply(self, tool: str, wait_s: float | None) -> SnakepitError:
        if self._closed:
            return PoolClosedError(f"pool {self.config.name!r} was closed")
        return RequestTimeoutError(f"no reply for {tool!r} within {wait_s}s", reason="no_reply")

    # --- observation --------------------------------------------------------------------------

    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters. Blocks for one actor round trip."""
        return self._control(GetStats(self._gateway.new_id()))  # type: ignore[no-any-return]

    def workers(self) -> list[WorkerInfo]:
        """The workers, ordered by id. Blocks for one actor round trip."""
        reply = self._control(ListWorkers(self._gateway.new_id()))
        return list(reply.workers)

    def recycle(self, worker_id: str, timeout: float = _CONTROL_TIMEOUT_S) -> None:
        """Replace ``worker_id``'s process gracefully: it gets no new work, its running requests
        finish, a replacement process starts before the old one stops. Returns once the Pool
        accepted (one actor round trip); the swap completes in the background (watch
        ``workers()`` for the new pid, ``stats().recycled`` for the count).

        Raises:
            InvalidArgumentsError: unknown worker, not ready, or already being recycled.
            PoolClosedError: the pool is closed.
        """
        from snakepit_actors.errors import InvalidArgumentsError

        if self._closed:
            raise PoolClosedError(f"pool {self.config.name!r} is closed")
        request_id = self._gateway.new_id()
        reply = self._gateway.call(self._pool, RequestRecycle(worker_id, "manual", request_id),
                                   request_id, timeout)
        if not reply.accepted:
            raise InvalidArgumentsError(f"cannot recycle {worker_id!r}: {reply.detail}",
                                        reason="recycle_refused")

    def _control(self, msg: GetStats | ListWorkers) -> Any:
        if self._closed:
            raise PoolClosedError(f"pool {self.config.name!r} is closed")
        return self._gateway.call(self._pool, msg, msg.request_id, _CONTROL_TIMEOUT_S)


def _copy_worker_output(pool_name: str, run_dir: str) -> Any:
    """Copy the workers' stdout/stderr into the log as ``worker.output`` if anyone listens
    (logging configured at info, or a subscriber); None otherwise."""
    from snakepit_actors.telemetry import wants
    from snakepit_actors.tree.log_capture import WorkerLogTailer

    return WorkerLogTailer([(pool_name, run_dir)]).start() if wants("info") else None


def _invalid_tool(tool: object) -> SnakepitError:
    from snakepit_actors.errors import InvalidArgumentsError

    return InvalidArgumentsError(f"tool must be a non-empty string, got {tool!r}",
                                 reason="invalid_tool")


class _StreamSink(Future[Any]):
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

    def take(self, timeout_s: float | None) -> tuple[str, Any]:
        try:
            return self._items.get(timeout=timeout_s)
        except queue.Empty:
            return "error", RequestTimeoutError(f"no stream data within {timeout_s}s",
                                                reason="no_reply")

    async def take_async(self, timeout_s: float | None) -> tuple[str, Any]:
        assert self._async_items is not None
        try:
            return await asyncio.wait_for(self._async_items.get(), timeout_s)
        except TimeoutError:
            return "error", RequestTimeoutError(f"no stream data within {timeout_s}s",
                                                reason="no_reply")


class _Gateway:
    """The one thread that owns the ActorSystem endpoint (Thespian endpoints are not shared
    safely between threads). Callers hand it (target, message, Future) through a queue."""

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
        self._thread = threading.Thread(target=self._run, name=f"snakepit-gateway-{name}",
                                        daemon=True)
        self._thread.start()

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
               sink: _StreamSink | None = None) -> Future[Any]:
        """Send ``message``; the returned Future gets the reply matched by ``key`` (default
        the message's request id; "" expects no reply)."""
        future: Future[Any] = sink if sink is not None else Future()
        if not self._running:
            future.set_exception(PoolClosedError("the pool's gateway is stopped"))
            return future
        future.key = key or message.request_id  # type: ignore[attr-defined]
        self._outbox.put((target, message, future))
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        return future

    def call(self, target: Any, message: Any, key: str, timeout_s: float) -> Any:
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
        self._running = False
        self._outbox.put(None)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(5.0)
        self._transport.set_watch([])
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        error = PoolClosedError("the pool was closed before the reply arrived",
                                reason="closed_in_flight")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    # --- the gateway thread -------------------------------------------------------------------

    def _run(self) -> None:
        while self._running:
            self._send_outbox()
            self._receive(self._wait_s())

    def _wait_s(self) -> float | None:
        wait = None if not self._pending else 1.0
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
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                return
            self._dispatch(message)

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
            if isinstance(sink, _StreamSink):
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
