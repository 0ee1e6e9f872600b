"""asyncio on the direct data path: ``Pool.execute_async`` on the leases of ``direct.DirectPath``,
with the call made by grpc.aio on the caller's own event loop.

    asyncio task
        | acquire (LeaseClient): an idle lease at once, or wait in line (a TaskWaiter: the
        | lease is handed to this loop; no thread per waiting task)
        v
    ExecuteTool on a grpc.aio channel of this loop (one per worker process and loop)
        | result / ToolFailure / DEADLINE_EXCEEDED / other status: as the sync path
        v
    release: the next waiting caller (task or thread) gets the lease at once

One event loop has no GIL contention between callers, so 64 tasks do at least what 64 threads
do: no gRPC future thread per call, no thread hop to wake the task (a lease released on this
loop is handed to the next task of this loop without touching the self-pipe).

Cancellation: cancelling the awaiting task cancels the call where it is. Still waiting for a
lease: it leaves the line (a lease on its way goes to the next caller). Running on a worker:
the gRPC call is cancelled, which sets the request's cancellation in the worker process
(``SessionContext.cancelled`` / ``wait``: the showcase's ``sleep`` stops at once), and the
lease goes back for the next caller, as leaving a stream early does. A tool that never checks
its cancellation runs on to its end and the worker's next request waits for it. To keep the
old behaviour (the call runs on; its result is dropped) shield it:
``await asyncio.shield(pool.execute_async(...))``.

grpc.aio channels belong to the loop they were made on: each loop gets its own, closed when
the pool closes (``close``) or dropped with their loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
import weakref
from typing import Any

from snakepit_actors.client import direct
from snakepit_actors.client.direct import REVOCATION_WAIT_S, DirectPath, _Call
from snakepit_actors.client.lease_client import TaskWaiter
from snakepit_actors.core.leases import Lease
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import Execute

_Channels = dict[str, tuple[int, Any, Any]]  # endpoint -> (pid, grpc.aio channel, stub)


class AsyncDirect:
    """asyncio calls on ``path``'s leases (see the module docstring). Any number of event loops
    may use one instance, each from its own thread."""

    def __init__(self, path: DirectPath) -> None:
        self._path = path
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Channels] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    async def execute(self, request: Execute) -> Any:
        """Run ``request`` on a leased worker; see ``Pool.execute_async`` for errors and
        cancellation."""
        path = self._path
        started = time.perf_counter()
        attempt = 1
        while True:
            try:
                lease = await self._acquire(request, started)
            except SnakepitError as exc:
                path.leases.count_failure(exc)
                raise
            call = await self._call(lease, request, started)
            if not call.lost:
                break
            error = await self._wait_gone(lease, call.lost)
            attempt = path._counted(path._retry_or_raise, request, attempt, error)
        if call.error is not None:
            raise call.error
        return call.value

    # --- taking a lease -----------------------------------------------------------------------

    async def _acquire(self, request: Execute, started: float) -> Lease:
        """A lease for ``request``: an idle one, else wait in line (see ``_Expiry``).

        A waiting task holds a future and one timer, nothing more: in a burst of 10,000 the
        garbage collector's work grows with what waits, and asyncio.wait_for + shield cost
        five more futures, closures and contexts each."""
        path, since = self._path, time.time()
        loop = asyncio.get_running_loop()
        while True:
            waiter = TaskWaiter(loop, path.leases)
            lease = path.leases.acquire(waiter, request.session_id)
            if lease is None:
                expiry = _Expiry(path, waiter, request, since, started)
                try:
                    lease = await waiter.future
                except asyncio.CancelledError:
                    self._drop_waiter(waiter)
                    raise
                finally:
                    expiry.cancel()
            if path._usable(lease, request, started):
                return lease

    def _drop_waiter(self, waiter: TaskWaiter) -> None:
        """A waiting task was cancelled: stop waiting, or give back what it was handed."""
        leases = self._path.leases
        if leases.abandon(waiter) or waiter.future.cancel():
            return  # a handoff now finds the future done and gives the lease back
        if not waiter.future.cancelled() and waiter.future.exception() is None:
            leases.release_unused(waiter.future.result())

    # --- one call -----------------------------------------------------------------------------

    async def _call(self, lease: Lease, request: Execute, started: float) -> _Call:
        path = self._path
        stub = self._stub(lease)
        grpc = direct._grpc
        try:
            response = await stub.ExecuteTool(direct._proto(request, lease),
                                              timeout=direct._timeout(request),
                                              metadata=path.metadata)
        except asyncio.CancelledError:  # the RPC is cancelled: the worker stops the tool
            path.leases.release(lease, "ok", request.session_id, None, ok=True)
            raise
        except (grpc.RpcError, grpc.aio.UsageError, ValueError) as exc:  # closed channel
            return path._settle_error(lease, request, exc, started)
        return path._settle(lease, request, response, started)

    async def _wait_gone(self, lease: Lease, detail: str) -> SnakepitError:
        future = asyncio.wrap_future(self._path.leases.gone_future(lease))
        try:
            return await asyncio.wait_for(future, REVOCATION_WAIT_S)
        except TimeoutError:
            return self._path._unconfirmed(lease, detail)

    # --- grpc.aio channels, one set per event loop ------------------------------------------

    def _stub(self, lease: Lease) -> Any:
        """This loop's stub for the lease's process, made on first use (and again for a new
        process behind the same endpoint)."""
        loop = asyncio.get_running_loop()
        channels = self._loops.get(loop)
        if channels is None:
            with self._lock:
                channels = self._loops.setdefault(loop, {})
        entry = channels.get(lease.endpoint)
        if entry is None or entry[0] != lease.pid:
            if entry is not None:
                self._close_later(loop, entry[1])
            entry = channels[lease.endpoint] = self._open(lease)
        return entry[2]

    def _open(self, lease: Lease) -> tuple[int, Any, Any]:
        direct._import_grpc()
        from snakepit_actors._proto import bridge_pb2_grpc

        channel = direct._grpc.aio.insecure_channel(lease.endpoint,
                                                    options=self._path.channel_options())
        return lease.pid, channel, bridge_pb2_grpc.BridgeServiceStub(channel)

    def _close_later(self, loop: asyncio.AbstractEventLoop, channel: Any) -> None:
        """Close ``channel`` on its ``loop`` (any thread); a closed loop's channels are freed
        with the loop."""
        def close() -> None:
            task = loop.create_task(channel.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        with contextlib.suppress(RuntimeError):  # the loop is closed
            if asyncio._get_running_loop() is loop:
                close()
            else:
                loop.call_soon_threadsafe(close)

    async def aclose(self) -> None:
        """Close this loop's channels now, and every other loop's on that loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = self._loops.pop(loop, {})
        for _pid, channel, _stub in mine.values():
            with contextlib.suppress(Exception):
                await channel.close()
        self.close()

    def close(self) -> None:
        """Close every loop's channels, each on its own loop (any thread; never blocks)."""
        with self._lock:
            loops = list(self._loops.items())
            self._loops.clear()
        for loop, channels in loops:
            for _pid, channel, _stub in channels.values():
                self._close_later(loop, channel)


#: The context the expiry timers run in (a timer would otherwise copy the caller's per waiter).
_TIMER_CONTEXT = contextvars.Context()


class _Expiry:
    """The queue deadline of one waiting task (``DirectPath.queue_expiry``): a timer on the
    task's loop that, when it fires, waits on if the line moved meanwhile, else takes the
    caller out of the line and fails its future with ``QueueTimeoutError`` (unless a lease is
    already on its way to it)."""

    __slots__ = ("_path", "_request", "_since", "_started", "_timer", "_waiter", "at")

    def __init__(self, path: DirectPath, waiter: TaskWaiter, request: Execute, since: float,
                 started: float) -> None:
        self._path, self._waiter, self._request = path, waiter, request
        self._since, self._started = since, started
        self._timer: asyncio.TimerHandle | None = None
        self.at: float | None = None
        self._arm()

    def _arm(self) -> None:
        self.at, _why = self._path.queue_expiry(self._request, self._since)
        if self.at is not None:
            loop = self._waiter.future.get_loop()
            self._timer = loop.call_at(loop.time() + max(0.0, self.at - time.time()),
                                       self._fire, context=_TIMER_CONTEXT)

    def _fire(self) -> None:
        future, path = self._waiter.future, self._path
        if future.done():
            return
        at, why = path.queue_expiry(self._request, self._since)
        if at != self.at:
            self._arm()  # the line moved meanwhile: wait on
        elif path.leases.abandon(self._waiter):
            future.set_exception(path._queue_timeout(self._request, why, self._started))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
