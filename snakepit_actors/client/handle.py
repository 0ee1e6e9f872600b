"""``Pool``: the handle plain Python code uses (sync and asyncio, thread-safe).

Two data paths (``PoolConfig.data_path``; docs/architecture.md, "Two data paths"): "direct"
(the default) runs ``execute`` through ``direct.DirectPath``: leases from the Pool, gRPC
straight to the worker from the caller's thread (the gateway thread only carries lease
traffic). "actor" sends every request through the actors as drawn here. ``execute_stream``
takes the configured path too (``direct_stream.py``); ``execute_stream_async`` always takes the
actor path.

Data flow (actor path)::

    caller threads / asyncio tasks
        │  execute(): encode args, fix the deadline, hand the Execute to the gateway
        ▼
    gateway thread (gateway.py: the only user of the ActorSystem endpoint)
        │  one Execute or one ExecuteBatch to the Pool actor; replies matched to Futures
        ▼
    Pool actor -> Worker actor -> gRPC -> worker process; the Worker replies to the gateway

One deadline, applied once: each call turns its ``timeout`` (or, when None, the pool's
``request_timeout``) into one absolute ``deadline_unix_s`` (``_deadline_at``), sends it in the
``Execute`` and derives every later wait from it: the wait for the reply (deadline +
``REPLY_GRACE_S``), each wait for a stream's next chunk (the time left, never reset per chunk),
the direct path's wait for a lease and its gRPC deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from snakepit_actors.client.async_api import AsyncMethods
from snakepit_actors.client.fanout_api import FanoutMethods
from snakepit_actors.client.gateway import Gateway
from snakepit_actors.client.host_tools import HostToolMethods
from snakepit_actors.client.launch import launch
from snakepit_actors.client.metrics import MetricsMethods
from snakepit_actors.client.replies import (
    CONTROL_TIMEOUT_S,
    REPLY_GRACE_S,
    StreamSink,
    reply_wait_s,
    values_or_end,
)
from snakepit_actors.client.session_api import SessionMethods
from snakepit_actors.client.system_restart import SystemRestarter, copy_worker_output, data_path
from snakepit_actors.client.system_watch import close_lost_system
from snakepit_actors.client.tracing import trace_context, traced
from snakepit_actors.config import PoolConfig
from snakepit_actors.core.request_checks import check_call, check_seconds
from snakepit_actors.errors import ConfigError, PoolClosedError, RequestTimeoutError, SnakepitError
from snakepit_actors.json_codec import encode_args
from snakepit_actors.messages import (
    CancelRequest,
    ClosePool,
    Execute,
    GetStats,
    ListWorkers,
    PoolStats,
    RequestRecycle,
    WorkerInfo,
)
from snakepit_actors.system import (
    StartedSystem,
    remove_run_dir,
    shutdown_actor_system,
)
from snakepit_actors.telemetry import close_event_inbox
from snakepit_actors.tree.reaper import sweep_orphans


class Pool(SessionMethods, HostToolMethods, FanoutMethods, MetricsMethods, AsyncMethods):
    """A running pool of external Python workers. Create it with ``Pool.start`` (or, in
    asyncio, ``Pool.start_async``: async_api.py).

    All methods are thread-safe; ``execute_async`` may be awaited from any event loop.
    """

    def __init__(self, config: PoolConfig, system: StartedSystem, run_dir: str,
                 gateway: Gateway, pool_address: Any, admin_pid: int, run_id: str = "",
                 process_db: str = "", worker_token: str = "") -> None:
        self.config = config
        self.run_id = run_id
        self._process_db = process_db
        self._system = system
        self._run_dir = run_dir
        self._gateway = gateway
        self._pool = pool_address
        gateway.pool = pool_address
        gateway.on_pool_replaced = self._pool_replaced
        self._direct, self._aio = data_path(config, gateway, pool_address, worker_token)
        self.admin_pid = admin_pid
        #: The token every gRPC call to this pool's workers must carry, for your own direct
        #: calls (``snakepit_actors.worker_token.with_token``). A secret: do not log it.
        self.worker_token = worker_token
        self._closed = False
        self._close_lock = threading.Lock()
        self._output = copy_worker_output(config.name, run_dir)
        self._restarts = SystemRestarter(self)  # on_system_loss="restart" (system_restart.py)

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
            ConfigError: an invalid field (all of them are named), ``config`` is not a
                ``PoolConfig``, or ``on_progress`` is not callable.
            PoolNotReadyError: a worker failed to start (its error, e.g. the adapter's import
                error, is in the message) or startup timed out. Nothing is left running.
        """
        if on_progress is not None and not callable(on_progress):
            raise ConfigError(f"on_progress must be a function (workers_ready, pool_size) or "
                              f"None, got {on_progress!r:.80}: e.g. on_progress=print")
        if config is not None and not isinstance(config, PoolConfig):
            raise ConfigError(f"config must be a PoolConfig or None, got {config!r:.80} "
                              f"({type(config).__name__}): e.g. Pool.start(PoolConfig("
                              "pool_size=2)) or Pool.start(pool_size=2)")
        cfg = (config or PoolConfig()).with_overrides(**overrides) if overrides else (
            config or PoolConfig())
        up = launch(cfg, on_progress, CONTROL_TIMEOUT_S)
        return cls(cfg, up.system, up.run_dir, up.gateway, up.pool, up.admin_pid, up.run_id,
                   up.process_db, up.worker_token)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the pool: refuse new requests, fail queued ones with ``PoolClosedError``, let
        in-flight requests finish for up to ``timeout`` seconds, then stop every actor and
        worker process. Idempotent; blocks until everything is gone.

        Raises:
            InvalidArgumentsError: ``timeout`` is not a finite number > 0 (the pool stays open).
        """
        timeout = check_seconds(timeout)
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        self._restarts.stop(timeout)  # a restart under way is aborted; nothing new starts
        self._stop_fanout()
        lost = self._gateway.gone_error is not None
        if not lost:
            with contextlib.suppress(SnakepitError):
                self._gateway.call(self._pool, ClosePool(), "close",
                                   min(timeout, CONTROL_TIMEOUT_S))
        if self._direct is not None:
            self._direct.leases.close(self._gateway.gone_error)
        if not lost:
            self._gateway.wait_idle(deadline)
        self._gateway.stop()
        if self._direct is not None:
            self._direct.close_channels()
        self._stop_host_tools()
        self._stop_metrics_servers()
        if self._gateway.gone_error is None:
            shutdown_actor_system(self._system, self.admin_pid)
        else:  # nobody answers a shutdown: close our endpoint, kill what is left
            close_lost_system(self._system, self._gateway)
        if self._output is not None:
            self._output.stop()
        close_event_inbox(self._run_dir)  # after the last actor: what they sent is delivered
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

    @traced
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
            InvalidArgumentsError: a parameter of the wrong type or value (``tool``, ``args``,
                ``session_id``, ``timeout``: finite and > 0, ``idempotent``: a bool); nothing ran.
            UnknownToolError, SerializationError (NaN/inf, non-str keys, too deep: the path is
                named), PayloadTooLargeError: bad input, ``reason`` "args" (nothing ran) or
                "result" (the tool ran; its value could not be sent).
            PoolSaturatedError, QueueTimeoutError: the request never reached a worker.
            RequestTimeoutError: the deadline passed while a worker had it.
            WorkerCrashedError: the worker died under it.
            PoolClosedError: the pool is closed.
            PoolNotReadyError: ``reason="system_restarting"``: its actor system died and the
                handle starts a new one (``on_system_loss="restart"``); retry in a moment.
        """
        if self._direct is not None and self._uses_direct_path(session_id):
            return self._direct.execute(self._request(tool, args, session_id, timeout,
                                                      idempotent))
        future, request = self._submit(tool, args, session_id, timeout, idempotent)
        wait_s = reply_wait_s(request.deadline_unix_s)
        try:
            return future.result(wait_s)
        except FutureTimeout as exc:
            if isinstance(exc, SnakepitError):  # the reply itself: a Queue/RequestTimeoutError
                raise
            raise self._no_reply(request, wait_s) from None

    @traced
    async def execute_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                            session_id: str | None = None, timeout: float | None = None,
                            idempotent: bool = False) -> Any:
        """``execute`` for asyncio: same parameters and errors; never blocks the loop.

        Any number of calls may wait at once at O(1) cost each: a handle keeps one lease
        request per worker slot at the Pool and lets ``max_queue`` more callers wait in its
        own line (the next gets ``PoolSaturatedError`` at once); ``queue_timeout`` counts from
        the last time that line moved (docs/asyncio.md, "Bursts").

        Cancelling the awaiting task cancels the request: it leaves the line, or its call is
        cancelled on the worker (the tool sees ``ctx.cancelled``) and the worker serves the
        next caller. ``await asyncio.shield(pool.execute_async(...))`` lets it run on.
        """
        request = self._request(tool, args, session_id, timeout, idempotent)
        if self._aio is not None and self._uses_direct_path(session_id):
            return await self._aio.execute(request)
        return await self._execute_via_actors(request)

    def execute_stream(self, tool: str, args: Mapping[str, Any] | None = None, *,
                       session_id: str | None = None,
                       timeout: float | None = None) -> Iterator[Any]:
        """Run a generator tool and iterate over the values it yields, as they arrive.

        Same parameters and errors as ``execute`` (raised by the iteration). Each ``next()``
        blocks until the next value. ``timeout`` bounds the whole stream, not each value: the
        deadline is fixed at this call. Leaving the loop early cancels the tool on its worker.
        On the actor path values are buffered here without bound: consume them.
        """
        request = self._request(tool, args, session_id, timeout, False, stream=True)
        if self._direct is not None and self._uses_direct_path(session_id):
            from snakepit_actors.client.direct_stream import stream

            return stream(self._direct, request)
        sink = StreamSink()
        self._gateway.submit(self._pool, request, sink=sink)
        return self._iterate(sink, request)

    def _iterate(self, sink: StreamSink, request: Execute) -> Iterator[Any]:
        finished = False
        try:
            while not finished:
                kind, value = sink.take_at(request.deadline_unix_s)
                finished = kind != "values"
                yield from values_or_end(kind, value)
        finally:
            if not finished:
                self._gateway.submit(self._pool, CancelRequest(request.request_id), key="")

    async def execute_stream_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                                   session_id: str | None = None,
                                   timeout: float | None = None) -> AsyncIterator[Any]:
        """``execute_stream`` for asyncio: ``async for value in pool.execute_stream_async(...)``.
        Never blocks the loop. The deadline is fixed when the iteration starts. Direct path:
        a thread per stream reads at most 64 values ahead; actor path: buffered unbounded."""
        request = self._request(tool, args, session_id, timeout, False, stream=True)
        if self._aio is not None and self._uses_direct_path(session_id):
            from snakepit_actors.client.direct_stream_async import stream_async

            async with contextlib.aclosing(stream_async(self._aio, request)) as values:
                async for value in values:
                    yield value
            return
        loop = asyncio.get_running_loop()
        sink = StreamSink(loop)
        self._gateway.submit(self._pool, request, sink=sink)
        finished = False
        try:
            while not finished:
                kind, value = await sink.take_at_async(request.deadline_unix_s)
                finished = kind != "values"
                for item in values_or_end(kind, value):
                    yield item
        finally:
            if not finished:
                self._gateway.submit(self._pool, CancelRequest(request.request_id), key="")

    def _request(self, tool: str, args: Mapping[str, Any] | None, session_id: str | None,
                 timeout: float | None, idempotent: bool, stream: bool = False) -> Execute:
        """The ``Execute`` of one call, with its one deadline. Raises PoolClosedError and the
        argument errors of ``execute``."""
        self._check_open()
        timeout = check_call(tool, args, session_id, timeout, idempotent)
        payload = encode_args(tool, {} if args is None else args, self.config.max_payload_bytes)
        return Execute(request_id=self._gateway.new_id(), tool=tool, session_id=session_id,
                       deadline_unix_s=self._deadline_at(timeout), idempotent=idempotent,
                       args_json=payload, stream=stream, batch_replies=True,
                       trace_context=trace_context())

    def _deadline_at(self, timeout: float | None) -> float | None:
        """The only place a request's timeout is turned into its deadline (Unix seconds):
        ``timeout`` from now, the pool's ``request_timeout`` when None; None: no deadline."""
        timeout = self.config.request_timeout if timeout is None else timeout
        return None if timeout is None else time.time() + timeout

    def _submit(self, tool: str, args: Mapping[str, Any] | None, session_id: str | None,
                timeout: float | None, idempotent: bool) -> tuple[Future[Any], Execute]:
        request = self._request(tool, args, session_id, timeout, idempotent)
        return self._gateway.submit(self._pool, request), request

    def _pool_replaced(self, pool: Any) -> None:
        """Gateway thread: the PoolRoot restarted the Pool actor; send to the new one."""
        self._pool = pool

    def _check_open(self) -> None:
        """Raises PoolClosedError: closed by ``close``, or its actor system died
        (reason "actor_system_gone"); PoolNotReadyError while it restarts (system_restart.py)."""
        if self._gateway.gone_error is not None:
            raise self._gateway.gone_error
        if self._closed:
            raise PoolClosedError(f"pool {self.config.name!r} is closed")

    def _no_reply(self, request: Execute, wait_s: float | None) -> SnakepitError:
        if self._closed:
            return PoolClosedError(f"pool {self.config.name!r} was closed")
        return RequestTimeoutError(
            f"no reply for {request.tool!r} (request {request.request_id}) within {wait_s:.3f}s"
            f": its deadline plus {REPLY_GRACE_S}s for the pool's answer passed",
            reason="no_reply")

    # --- observation --------------------------------------------------------------------------

    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters. Blocks for one actor round trip."""
        return self.with_own_waiters(self._control(GetStats(self._gateway.new_id())))

    def with_own_waiters(self, stats: PoolStats) -> PoolStats:
        """``stats`` with this handle's callers waiting for a slot it holds counted as queued
        (the Pool's queue holds no lease request for those: core/leases.py)."""
        extra = self._direct.leases.waiting_on_own_slots if self._direct is not None else 0
        return dataclasses.replace(stats, queued=stats.queued + extra) if extra else stats

    def workers(self) -> list[WorkerInfo]:
        """The workers, ordered by id. Blocks for one actor round trip."""
        reply = self._control(ListWorkers(self._gateway.new_id()))
        return list(reply.workers)

    def recycle(self, worker_id: str, timeout: float = CONTROL_TIMEOUT_S) -> None:
        """Replace ``worker_id``'s process gracefully: it gets no new work, its running requests
        finish, a replacement process starts before the old one stops. Returns once the Pool
        accepted (one actor round trip); the swap completes in the background (watch
        ``workers()`` for the new pid, ``stats().recycled`` for the count).

        Raises:
            InvalidArgumentsError: unknown worker, not ready, already being recycled, or
                ``worker_id`` / ``timeout`` of the wrong type or value.
            PoolClosedError: the pool is closed.
        """
        from snakepit_actors.errors import InvalidArgumentsError

        self._check_open()
        if type(worker_id) is not str or not worker_id:
            raise InvalidArgumentsError(
                f"worker_id must be a worker's id (a str), got {worker_id!r}: e.g. "
                "pool.recycle(pool.workers()[0].worker_id)", reason="invalid_worker_id")
        timeout = check_seconds(timeout)
        request_id = self._gateway.new_id()
        reply = self._gateway.call(self._pool, RequestRecycle(worker_id, "manual", request_id),
                                   request_id, timeout)
        if not reply.accepted:
            raise InvalidArgumentsError(f"cannot recycle {worker_id!r}: {reply.detail}",
                                        reason="recycle_refused")

    def _control(self, msg: GetStats | ListWorkers) -> Any:
        self._check_open()
        return self._gateway.call(self._pool, msg, msg.request_id, CONTROL_TIMEOUT_S)


