"""The asyncio side of the Python ``Pool`` handle (mixed into ``client.Pool``): start and close
without blocking the event loop, and an async form of every blocking call (docs/asyncio.md).

    async with Pool.start_async(cfg) as pool:        # or: pool = await Pool.start_async(cfg)
        await pool.execute_async("echo", {"x": 1})   # handle.py; direct_async.py
        await pool.stats_async()
        async with pool.session_async() as s:
            await s.execute_async("session_counter")
    # left the block: await pool.aclose() ran

How each call avoids blocking the loop:

* ``start_async`` and ``aclose`` run ``Pool.start`` / ``Pool.close`` on a thread of their own
  (they fork processes and wait for them). Cancelling the awaiting task does not stop them
  half-way: a start that completes anyway is closed at once; a close always completes.
* ``stats_async`` / ``workers_async`` and the actor path's ``execute_async`` await the
  gateway's reply as a future of this loop (no thread).
* The session calls and ``recycle_async`` run the sync call on the loop's default executor:
  one short round trip through the actors each, validated exactly as the sync call.

Cancelling ``execute_async`` cancels the request where it is: in the line for a worker, on the
worker (the gRPC call on the direct path; a ``CancelRequest`` to the Pool on the actor path,
which fails it if queued or has its Worker cancel the call). Shield the call
(``asyncio.shield``) to let it run on instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from snakepit_actors.client.replies import CONTROL_TIMEOUT_S, reply_wait_s
from snakepit_actors.client.session_api import Session
from snakepit_actors.core.request_checks import check_seconds
from snakepit_actors.errors import PoolNotReadyError, SnakepitError
from snakepit_actors.messages import (
    CancelRequest,
    Execute,
    GetStats,
    ListWorkers,
    PoolStats,
    SessionInfo,
    WorkerInfo,
)

if TYPE_CHECKING:
    from snakepit_actors.client.direct_async import AsyncDirect
    from snakepit_actors.config import PoolConfig

P = TypeVar("P", bound="AsyncMethods")
R = TypeVar("R")



class PoolStart(Generic[P]):
    """What ``Pool.start_async`` returns: await it for the pool, or use it directly as
    ``async with Pool.start_async(cfg) as pool:`` (the pool is closed on leaving the block)."""

    def __init__(self, start: Callable[[], P]) -> None:
        self._start = start
        self._pool: P | None = None

    def __await__(self) -> Generator[Any, None, P]:
        return _in_thread(self._start, on_orphan=_close_pool).__await__()

    async def __aenter__(self) -> P:
        self._pool = await self
        return self._pool

    async def __aexit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            await self._pool.aclose()


class AsyncMethods:
    """The asyncio part of ``Pool``; see the module docstring."""

    if TYPE_CHECKING:  # provided by client.Pool
        config: PoolConfig
        _aio: AsyncDirect | None
        _gateway: Any
        _pool: Any
        _closed: bool

        def _check_open(self) -> None: ...
        def _no_reply(self, request: Execute, wait_s: float | None) -> SnakepitError: ...
        def close(self, timeout: float = 10.0) -> None: ...
        def recycle(self, worker_id: str, timeout: float = CONTROL_TIMEOUT_S) -> None: ...
        def with_own_waiters(self, stats: PoolStats) -> PoolStats: ...
        @classmethod
        def start(cls: type[P], config: PoolConfig | None = None, *,
                  on_progress: Callable[[int, int], None] | None = None,
                  **overrides: Any) -> P: ...
        def create_session(self, session_id: str | None = None, *, ttl: float | None = None,
                           metadata: Mapping[str, str] | None = None,
                           data: Mapping[str, Any] | None = None,
                           timeout: float = CONTROL_TIMEOUT_S) -> SessionInfo: ...
        def delete_session(self, session_id: str, *,
                           timeout: float = CONTROL_TIMEOUT_S) -> bool: ...

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def start_async(cls: type[P], config: PoolConfig | None = None, *,
                    on_progress: Callable[[int, int], None] | None = None,
                    **overrides: Any) -> PoolStart[P]:
        """``Pool.start`` for asyncio: ``pool = await Pool.start_async(cfg)``, or
        ``async with Pool.start_async(cfg) as pool:`` (closed with ``aclose`` on exit).

        The start runs on a thread of its own, so the event loop goes on meanwhile. Same
        parameters and errors as ``Pool.start`` (``on_progress`` is called on the pool's
        gateway thread, not on the loop). Cancelling the awaiting task leaves nothing
        running: a start that completes anyway is closed at once.
        """
        return PoolStart(functools.partial(cls.start, config, on_progress=on_progress,
                                           **overrides))

    async def aclose(self, timeout: float = 10.0) -> None:
        """``close`` for asyncio: the same steps on a thread of its own (requests in flight
        get up to ``timeout`` seconds, then every process stops). Idempotent. The close
        completes even if the awaiting task is cancelled.

        Raises:
            InvalidArgumentsError: ``timeout`` is not a finite number > 0 (the pool stays open).
        """
        timeout = check_seconds(timeout)
        await _in_thread(functools.partial(self.close, timeout))

    async def __aenter__(self: P) -> P:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- requests on the actor path -----------------------------------------------------------

    async def _execute_via_actors(self, request: Execute) -> Any:
        """Send ``request`` through the actors and await the reply on this loop. Cancelled:
        the Pool is told (``CancelRequest``), so the request leaves its queue or its Worker
        cancels the call."""
        future = self._gateway.submit(self._pool, request)
        wait_s = reply_wait_s(request.deadline_unix_s)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), wait_s)
        except TimeoutError as exc:
            if isinstance(exc, SnakepitError):  # the reply itself: a Queue/RequestTimeoutError
                raise
            raise self._no_reply(request, wait_s) from None
        except asyncio.CancelledError:
            if future.cancelled():  # no reply yet (one arriving later is dropped)
                self._gateway.submit(self._pool, CancelRequest(request.request_id), key="")
            raise

    # --- observation --------------------------------------------------------------------------

    async def stats_async(self) -> PoolStats:
        """``stats`` for asyncio: one actor round trip, awaited on the loop.

        Raises:
            PoolClosedError: the pool is closed. PoolNotReadyError: no answer within 10 s.
        """
        reply: PoolStats = await self._control_async(GetStats(self._gateway.new_id()))
        return self.with_own_waiters(reply)

    async def workers_async(self) -> list[WorkerInfo]:
        """``workers`` for asyncio: one actor round trip, awaited on the loop.

        Raises:
            PoolClosedError: the pool is closed. PoolNotReadyError: no answer within 10 s.
        """
        reply = await self._control_async(ListWorkers(self._gateway.new_id()))
        return list(reply.workers)

    async def recycle_async(self, worker_id: str, timeout: float = CONTROL_TIMEOUT_S) -> None:
        """``recycle`` for asyncio (same errors; the round trip runs on the loop's executor)."""
        await _executor(self.recycle, worker_id, timeout)

    async def _control_async(self, message: GetStats | ListWorkers) -> Any:
        self._check_open()
        future = self._gateway.submit(self._pool, message, message.request_id)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), CONTROL_TIMEOUT_S)
        except TimeoutError:
            raise PoolNotReadyError(f"no answer to {type(message).__name__} within "
                                    f"{CONTROL_TIMEOUT_S}s", reason="no_answer") from None

    # --- sessions and programs (session_api.py): the sync call on the loop's executor ---------

    async def create_session_async(self, session_id: str | None = None, *,
                                   ttl: float | None = None,
                                   metadata: Mapping[str, str] | None = None,
                                   data: Mapping[str, Any] | None = None,
                                   timeout: float = CONTROL_TIMEOUT_S) -> SessionInfo:
        """``create_session`` for asyncio (same parameters and errors)."""
        return await _executor(functools.partial(
            self.create_session, session_id, ttl=ttl, metadata=metadata, data=data,
            timeout=timeout))

    async def get_session_async(self, session_id: str, *,
                                timeout: float = CONTROL_TIMEOUT_S) -> SessionInfo:
        """``get_session`` for asyncio (same parameters and errors)."""
        return await _executor(functools.partial(
            self.get_session, session_id, timeout=timeout))  # type: ignore[attr-defined]

    async def update_session_async(self, session_id: str, data: Mapping[str, Any], *,
                                   timeout: float = CONTROL_TIMEOUT_S) -> SessionInfo:
        """``update_session`` for asyncio (same parameters and errors)."""
        return await _executor(functools.partial(
            self.update_session, session_id, data, timeout=timeout))  # type: ignore[attr-defined]

    async def delete_session_async(self, session_id: str, *,
                                   timeout: float = CONTROL_TIMEOUT_S) -> bool:
        """``delete_session`` for asyncio (same parameters and errors)."""
        return await _executor(functools.partial(self.delete_session, session_id,
                                                 timeout=timeout))

    async def list_sessions_async(self, *,
                                  timeout: float = CONTROL_TIMEOUT_S) -> list[SessionInfo]:
        """``list_sessions`` for asyncio (same parameters and errors)."""
        return await _executor(functools.partial(
            self.list_sessions, timeout=timeout))  # type: ignore[attr-defined]

    async def set_program_async(self, name: str, value: Any, *,
                                timeout: float = CONTROL_TIMEOUT_S) -> None:
        """``set_program`` for asyncio (same parameters and errors)."""
        await _executor(functools.partial(
            self.set_program, name, value, timeout=timeout))  # type: ignore[attr-defined]

    async def get_program_async(self, name: str, default: Any = None, *,
                                timeout: float = CONTROL_TIMEOUT_S) -> Any:
        """``get_program`` for asyncio (same parameters and errors)."""
        return await _executor(functools.partial(
            self.get_program, name, default, timeout=timeout))  # type: ignore[attr-defined]

    async def delete_program_async(self, name: str, *,
                                   timeout: float = CONTROL_TIMEOUT_S) -> bool:
        """``delete_program`` for asyncio (same parameters and errors)."""
        return await _executor(functools.partial(
            self.delete_program, name, timeout=timeout))  # type: ignore[attr-defined]

    @contextlib.asynccontextmanager
    async def session_async(self, session_id: str | None = None, *, ttl: float | None = None,
                            metadata: Mapping[str, str] | None = None,
                            data: Mapping[str, Any] | None = None) -> AsyncIterator[Session]:
        """``session`` for asyncio: ``async with pool.session_async() as s: await
        s.execute_async(...)``; the session is created (or joined) on entry and deleted on
        exit (its per-session state on the worker is freed)."""
        info = await self.create_session_async(session_id, ttl=ttl, metadata=metadata,
                                               data=data)
        try:
            yield Session(self, info.session_id)  # type: ignore[arg-type]
        finally:
            if not self._closed:
                await self.delete_session_async(info.session_id)


async def _executor(call: Callable[..., R], *args: Any) -> R:
    """``call(*args)`` on the running loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, call, *args)


def _in_thread(call: Callable[[], R],
               on_orphan: Callable[[R], None] | None = None) -> Awaitable[R]:
    """Run ``call`` on a thread of its own, to completion whatever happens to the awaiting
    task; if that task is cancelled, ``on_orphan`` gets the result nobody will take."""
    done: Future[R] = Future()

    def run() -> None:
        try:
            done.set_result(call())
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=run, name="snakepit-async-lifecycle", daemon=True).start()
    return _await_shielded(done, on_orphan)


async def _await_shielded(done: Future[R], on_orphan: Callable[[R], None] | None) -> R:
    try:
        return await asyncio.shield(asyncio.wrap_future(done))
    except asyncio.CancelledError:
        if on_orphan is not None:
            done.add_done_callback(lambda f: f.exception() is None and on_orphan(f.result()))
        raise


def _close_pool(pool: AsyncMethods) -> None:
    """A pool whose ``start_async`` was cancelled: close it (on the starting thread)."""
    with contextlib.suppress(Exception):
        pool.close()
