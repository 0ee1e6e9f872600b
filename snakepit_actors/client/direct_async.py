"""asyncio on the direct data path: ``Pool.execute_async`` on the leases of ``direct.DirectPath``.

    asyncio task
        | acquire (LeaseClient): an idle lease at once, or wait in line (a TaskWaiter: one
        | future and one timer; the lease is handed to this loop; no thread per waiting task)
        v
    ExecuteTool as a gRPC future on the lease's cached channel; its completion wakes the
    loop, which settles the call (a lease freed there goes to its next task directly)
        | result / ToolFailure / DEADLINE_EXCEEDED / other status: as the sync path
        v
    release: the next waiting caller (task or thread) gets the lease at once

Cancellation: cancelling the awaiting task cancels the call where it is. Still waiting for a
lease: it leaves the line (a lease on its way goes to the next caller). Running on a worker:
the gRPC call is cancelled, which sets the request's cancellation in the worker process
(``SessionContext.cancelled`` / ``wait``: the showcase's ``sleep`` stops at once), and the
lease goes back for the next caller, as leaving a stream early does. A tool that never checks
its cancellation runs on to its end and the worker's next request waits for it. To keep the
old behaviour (the call runs on; its result is dropped) shield it:
``await asyncio.shield(pool.execute_async(...))``.

Why not grpc.aio (one loop, no gRPC thread): a process that used grpc.aio and then started
another pool (forking its actor system) left that system's actor processes spinning in gRPC's
fork handlers and its start hung; the sync stack's fork support (``GRPC_ENABLE_FORK_SUPPORT``)
does not have that problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from typing import Any

from snakepit_actors.client import direct
from snakepit_actors.client.direct import REVOCATION_WAIT_S, DirectPath, _Call
from snakepit_actors.client.lease_client import TaskWaiter
from snakepit_actors.client.tracing import with_trace
from snakepit_actors.core.leases import Lease
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import Execute


class AsyncDirect:
    """asyncio calls on ``path``'s leases (see the module docstring). Any number of event loops
    may use one instance, each from its own thread."""

    def __init__(self, path: DirectPath) -> None:
        self._path = path

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
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Call] = loop.create_future()

        def settle(grpc_call: Any) -> None:  # on the loop: the next task gets the lease
            if grpc_call.cancelled():  # without a thread hop
                return  # the task was cancelled and gave the lease back
            try:
                call = path._settle(lease, request, grpc_call.result(), started)
            except Exception as exc:  # grpc.RpcError (the call itself)
                call = path._settle_error(lease, request, exc, started)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                _resolve(done, call)

        def finished(grpc_call: Any) -> None:  # on a gRPC thread
            try:
                loop.call_soon_threadsafe(settle, grpc_call)
            except RuntimeError:  # the loop is closed: the lease goes back all the same
                settle(grpc_call)

        stub = lease.stub or path._stub(lease)
        try:
            grpc_future = stub.ExecuteTool.future(
                path._request(request, lease), timeout=direct._timeout(request),
                metadata=with_trace(path.metadata, request.trace_context))
        except ValueError as exc:  # a closed channel: its process went
            return path._settle_error(lease, request, exc, started)
        grpc_future.add_done_callback(finished)
        try:
            return await done
        except asyncio.CancelledError:
            if grpc_future.cancel():  # it was running: the worker stops the tool
                path.leases.release(lease, "ok", request.session_id, None, ok=True)
            raise

    async def _wait_gone(self, lease: Lease, detail: str) -> SnakepitError:
        future = asyncio.wrap_future(self._path.leases.gone_future(lease))
        try:
            return await asyncio.wait_for(future, REVOCATION_WAIT_S)
        except TimeoutError:
            return self._path._unconfirmed(lease, detail)


def _resolve(future: asyncio.Future[_Call], call: _Call) -> None:
    if not future.done():
        future.set_result(call)


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
