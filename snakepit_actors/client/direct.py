"""The Python handle's direct data path (docs/architecture.md, "Two data paths"): lease a worker
slot from the Pool, call the worker's gRPC endpoint from the caller's own thread, give the
slot back (asyncio callers: ``direct_async.py``, on the same leases).

    caller thread / asyncio task
        | acquire (LeaseClient): an idle lease at once, or wait in FIFO order for one
        v
    ExecuteTool over a cached channel to the lease's endpoint (one channel per worker process)
        | result, ToolFailure, DEADLINE_EXCEEDED, or any other status (the process is gone)
        v
    release: the next waiter gets the lease at once, or it idles and the gateway returns it

Errors are the actor path's. A ``ToolFailure`` becomes its typed error; DEADLINE_EXCEEDED
becomes ``RequestTimeoutError`` and the lease goes back with ``recycle=True`` (the Worker
replaces its process, cancelling the stuck tool); any other status means the process is gone:
the lease goes back with ``worker_lost=True`` and the caller waits (bounded) for the Pool's
``LeaseRevoked``, whose ``WorkerCrashedError`` carries the exit code or signal the Worker saw
through its pidfd. An idempotent request then runs once more on another lease. A caller waits
for a lease until its queue deadline (``scheduling.queue_expiry``, the Pool's rule), with
queue_timeout counted from the last time the line of waiting callers moved: a long line that
moves never times out (docs/asyncio.md, "Bursts").

The client process is GIL-bound under load, so this path keeps its Python small: one lock
round trip to take a lease, one to give it back (with the counters), and no gateway wake-up.
grpc is imported on the first call, long after the actor system started (never at import).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, ParamSpec, TypeVar

from snakepit_actors.client.lease_client import LeaseClient, ThreadWaiter
from snakepit_actors.client.tracing import with_trace
from snakepit_actors.config import PoolConfig
from snakepit_actors.core import pool_errors as errs
from snakepit_actors.core.leases import Lease
from snakepit_actors.core.scheduling_decisions import queue_expiry
from snakepit_actors.errors import (
    QueueTimeoutError,
    SnakepitError,
    WorkerCrashedError,
)
from snakepit_actors.messages import Execute
from snakepit_actors.protocols import (
    WireProtocol,
    close_lost_channel,
    lease_channel_options,
    wire_for,
)
from snakepit_actors.telemetry import get_logger, wants
from snakepit_actors.worker_token import token_metadata

log = get_logger("client")

#: How long a caller whose call failed on a vanished worker waits for the Pool's revocation
#: (which carries the exit code); after that it fails without one.
REVOCATION_WAIT_S = 3.0
_grpc: Any = None  # the grpc module, imported by the first call


P = ParamSpec("P")
T = TypeVar("T")

class _Call:
    """What one gRPC call came to: ``value``, ``error``, or ``lost`` (the status text) when the
    worker seems gone."""

    __slots__ = ("error", "lost", "value")

    def __init__(self, value: Any = None, error: SnakepitError | None = None,
                 lost: str = "") -> None:
        self.value, self.error, self.lost = value, error, lost


class DirectPath:
    """Direct gRPC calls on leased workers for one ``Pool`` handle. Thread-safe.

    Args:
        config: the pool's configuration (queue_timeout, retry_idempotent, payload limit).
        leases: the handle's lease client (its gateway thread carries the lease traffic).
        token: the pool's token, sent with every call (``snakepit_actors.worker_token``).
    """

    def __init__(self, config: PoolConfig, leases: LeaseClient, token: str = "") -> None:
        self._cfg = config
        #: sent with every call: the pool's token (explicit metadata costs less than a
        #: client interceptor on this hot path)
        self.metadata = token_metadata(token)
        self.leases = leases
        self._channels: dict[str, tuple[int, Any, Any]] = {}  # endpoint -> (pid, channel, stub)
        self._channels_lock = threading.Lock()
        self._wire_name = config.protocol
        self.wire: WireProtocol | None = None  # the workers' protocol, loaded with grpc
        leases.on_lost_in_use = self.process_lost

    # --- requests -----------------------------------------------------------------------------

    def execute(self, request: Execute) -> Any:
        """Run ``request`` on a leased worker; see ``Pool.execute`` for blocking and errors."""
        started = time.perf_counter()
        attempt = 1
        while True:
            lease = self._counted(self._acquire, request, started)
            call = self._call(lease, request, started)
            if not call.lost:
                break
            error = self._wait_gone(lease, call.lost)
            attempt = self._counted(self._retry_or_raise, request, attempt, error)
        if call.error is not None:
            raise call.error
        return call.value

    def _counted(self, step: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``step(*args)``, counting a SnakepitError it raises in the pool's figures."""
        try:
            return step(*args, **kwargs)
        except SnakepitError as exc:
            self.leases.count_failure(exc)
            raise

    def _retry_or_raise(self, request: Execute, attempt: int, error: SnakepitError) -> int:
        if attempt > 1 or self.leases.closed or not isinstance(error, WorkerCrashedError) or not (
                request.idempotent or self._cfg.retry_idempotent):
            raise error
        log.info("request.retried", request_id=request.request_id,
                 worker_id=error.details.get("worker_id"))
        return attempt + 1

    # --- taking a lease -----------------------------------------------------------------------

    def _acquire(self, request: Execute, started: float) -> Lease:
        """A lease for ``request``: an idle one, else wait in line until one is handed over
        or the queue wait expires (``queue_expiry``, counted from ``LeaseClient.waited_since``:
        a line that moves does not time out).

        Raises:
            QueueTimeoutError: the wait expired. PoolSaturatedError, PoolClosedError.
        """
        since = time.time()
        while True:
            waiter = ThreadWaiter()
            lease = self.leases.acquire(waiter, request.session_id)
            while lease is None:
                expiry, why = self.queue_expiry(request, since)
                if waiter.wait(_remaining(expiry)):
                    lease = waiter.outcome()
                elif self.queue_expiry(request, since)[0] == expiry:  # the line did not move
                    if self.leases.abandon(waiter):
                        raise self._queue_timeout(request, why, started)
                    waiter.wait(None)  # answered as the wait ended: the answer is on its way
                    lease = waiter.outcome()
            if self._usable(lease, request, started):
                return lease

    def queue_expiry(self, request: Execute, since: float) -> tuple[float | None, str]:
        """When a caller waiting for a lease since ``since`` (Unix seconds) gives up, and why:
        the pool's rule (``queue_expiry``), with queue_timeout counted from the last time the
        line of waiting callers moved (``LeaseClient.waited_since``)."""
        return queue_expiry(self.leases.waited_since(since), request.deadline_unix_s,
                            self._cfg.queue_timeout)

    def _usable(self, lease: Lease, request: Execute, started: float) -> bool:
        """False if the lease was revoked before its call started (nothing ran: acquire
        again). Raises QueueTimeoutError if the request's own deadline passed meanwhile."""
        if lease.gone is not None:
            self.leases.release_unused(lease)
            return False
        deadline = request.deadline_unix_s
        if deadline is not None and deadline <= time.time():
            self.leases.release_unused(lease)
            raise self._queue_timeout(request, "deadline_in_queue", started)
        return True

    def _queue_timeout(self, request: Execute, why: str, started: float) -> QueueTimeoutError:
        waited = time.perf_counter() - started
        log.info("request.queue_timeout", request_id=request.request_id, waited_s=waited)
        return QueueTimeoutError(
            f"request {request.request_id} waited {waited:.3f}s in the queue and never reached "
            f"a worker ({why.replace('_', ' ')})", reason=why)

    # --- one call -----------------------------------------------------------------------------

    def _call(self, lease: Lease, request: Execute, started: float) -> _Call:
        stub = lease.stub or self._stub(lease)
        try:
            response = stub.ExecuteTool(self._request(request, lease), timeout=_timeout(request),
                                        metadata=with_trace(self.metadata, request.trace_context))
        except (_grpc.RpcError, ValueError) as exc:  # ValueError: a closed channel
            return self._settle_error(lease, request, exc, started)
        except BaseException:  # interrupted: the tool may still run; the slot is free for us
            self.leases.release_unused(lease)
            raise
        return self._settle(lease, request, response, started)

    def _settle(self, lease: Lease, request: Execute, response: Any, started: float) -> _Call:
        """The worker answered: free the lease and count (one lock), then decode."""
        wire = self._loaded_wire()
        ok = wire.succeeded(response)
        self.leases.release(lease, "ok", request.session_id, started, ok=ok)
        if wants("debug"):
            log.debug("request.completed", request_id=request.request_id,
                      worker_id=lease.worker_id, ok=ok, path="direct",
                      duration_ms=(time.perf_counter() - started) * 1e3,
                      session_id=request.session_id)
        value, error = wire.decode(response, lease.worker_id)
        return _Call(value, error)

    def _settle_error(self, lease: Lease, request: Execute, exc: BaseException,
                      started: float) -> _Call:
        code = exc.code() if callable(getattr(exc, "code", None)) else None  # type: ignore[attr-defined]
        if code == _grpc.StatusCode.DEADLINE_EXCEEDED:
            rid = request.request_id
            log.info("request.timeout", request_id=rid, worker_id=lease.worker_id)
            self.leases.release(lease, "recycle", request.session_id, started, ok=False,
                                reason=f"request {rid} passed its deadline")
            return _Call(error=errs.timed_out_on(rid, request.tool, lease.worker_id))
        failure = None if code is None else self._loaded_wire().call_failure(exc, lease.worker_id)
        if failure is not None:  # the process answered: the tool failed
            self.leases.release(lease, "ok", request.session_id, started, ok=False)
            return _Call(error=failure)
        detail = (f"{code.name}: {exc.details()}"  # type: ignore[attr-defined]
                  if code is not None else f"{type(exc).__name__}: {exc}")
        self.leases.release(lease, "lost", request.session_id, None, ok=False, reason=detail)
        return _Call(lost=detail)

    # --- a vanished worker --------------------------------------------------------------------

    def _wait_gone(self, lease: Lease, detail: str) -> SnakepitError:
        try:
            return self.leases.gone_future(lease).result(REVOCATION_WAIT_S)
        except FutureTimeout:
            return self._unconfirmed(lease, detail)

    def _unconfirmed(self, lease: Lease, detail: str) -> SnakepitError:
        self.leases.forget_gone(lease)
        return WorkerCrashedError(
            f"worker {lease.worker_id} could not be reached while running the request "
            f"({detail}); its exit was not confirmed within {REVOCATION_WAIT_S}s",
            details={"worker_id": lease.worker_id, "exit_code": None, "signal": None})

    # --- gRPC channels ------------------------------------------------------------------------

    def _stub(self, lease: Lease) -> Any:
        """The stub for the lease's process: one channel per endpoint, replaced when a new
        process (pid) serves it; cached on the lease."""
        self._loaded_wire()
        with self._channels_lock:
            entry = self._channels.get(lease.endpoint)
        if entry is None or entry[0] != lease.pid:
            entry = self._open(lease)
        lease.stub = entry[2]
        return lease.stub

    def _open(self, lease: Lease) -> tuple[int, Any, Any]:
        channel = _grpc.insecure_channel(
            lease.endpoint, options=lease_channel_options(self._cfg.max_payload_bytes))
        entry = (lease.pid, channel, self._loaded_wire().stub(channel))
        with self._channels_lock:
            old = self._channels.get(lease.endpoint)
            if old is not None and old[0] == lease.pid:
                entry, old = old, entry  # another caller was first: keep its channel
            else:
                self._channels[lease.endpoint] = entry
        if old is not None:
            old[1].close()
        return entry

    def process_lost(self, endpoint: str, pid: int) -> None:
        """The Pool revoked a lease on ``endpoint`` (process ``pid``) while a call ran on it:
        that process is gone, or being stopped. Its channel is closed ``LOST_CALL_GRACE_S``
        later (``close_lost_channel``), which ends any call still waiting on it (the caller
        then gets the revocation's error). A process stopped with SIGSTOP and then killed
        could leave a call waiting on its channel forever: measured, 1 time in 4 under load,
        with no deadline on the call. Gateway thread; never blocks."""
        close_lost_channel(self._channels, endpoint, pid)

    def close_channels(self) -> None:
        """Close every gRPC channel (after the pool stopped)."""
        with self._channels_lock:
            channels, self._channels = list(self._channels.values()), {}
        for _pid, channel, _stub in channels:
            with contextlib.suppress(Exception):
                channel.close()


    def _loaded_wire(self) -> WireProtocol:
        """The workers' protocol (the first call imports grpc and the stubs)."""
        global _grpc
        if self.wire is None:
            import grpc

            _grpc, self.wire = grpc, wire_for(self._wire_name)
        return self.wire

    def _request(self, request: Execute, lease: Lease) -> Any:
        return self._loaded_wire().request(
            request.request_id, request.session_id or "", request.tool,
            request.args_json or b"{}", request.deadline_unix_s or 0.0, lease.session_from)


def _remaining(expiry: float | None) -> float | None:
    return None if expiry is None else max(0.0, expiry - time.time())


def _timeout(request: Execute) -> float | None:
    deadline = request.deadline_unix_s
    return None if deadline is None else max(0.001, deadline - time.time())
