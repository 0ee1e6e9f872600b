"""The errors the Pool itself answers with, in one place: each names whose fault it is, the
values involved and what to do (STYLE habits 9 and 10). ``PoolCore`` picks one; these only
word it. The end of a running call is worded here too (``timed_out_on``, ``cancelled_running``),
once for the three paths that make gRPC calls: the direct path, the Worker and the DataPlane."""

from __future__ import annotations

from snakepit_actors.core.affinity import PinLost
from snakepit_actors.errors import (
    PoolClosedError,
    PoolNotReadyError,
    PoolSaturatedError,
    QueueTimeoutError,
    RequestCancelledError,
    RequestTimeoutError,
    SessionAffinityError,
    SnakepitError,
    WorkerCrashedError,
)


def still_starting(pool: str) -> PoolNotReadyError:
    return PoolNotReadyError(f"pool {pool!r} is still starting", reason="starting")


def degraded_text(pool: str, last_start_error: SnakepitError | None) -> str:
    cause = f": {last_start_error}" if last_start_error else ""
    return (f"pool {pool!r} is degraded: no worker is running and restarts keep "
            f"failing{cause}")


def degraded(text: str | None, abandoned: set[str]) -> PoolNotReadyError:
    return PoolNotReadyError(text or "pool is degraded", reason="degraded",
                             details={"abandoned": sorted(abandoned)})


def saturated(pool: str, workers: int, max_queue: int) -> PoolSaturatedError:
    return PoolSaturatedError(
        f"pool {pool!r} is saturated: {workers} workers busy and max_queue={max_queue} "
        "requests waiting", details={"max_queue": max_queue})


def affinity_busy(session_id: str | None, worker_id: str) -> SessionAffinityError:
    return SessionAffinityError(
        f"session {session_id!r}: its worker {worker_id} is busy and "
        "affinity='strict_fail_fast'; retry later, or use affinity='strict_queue' to wait",
        reason="worker_busy", details={"session_id": session_id, "worker_id": worker_id})


def closed(pool: str) -> PoolClosedError:
    return PoolClosedError(f"pool {pool!r} is closed")


def closed_queued(pool: str, request_id: str) -> PoolClosedError:
    return PoolClosedError(
        f"pool {pool!r} was closed before request {request_id} reached a worker",
        reason="closed_queued")


def deadline_passed(request_id: str) -> QueueTimeoutError:
    return QueueTimeoutError(f"request {request_id} arrived after its deadline",
                             reason="deadline_passed")


def queue_timeout(request_id: str, waited_s: float, reason: str) -> QueueTimeoutError:
    return QueueTimeoutError(
        f"request {request_id} waited {waited_s:.3f}s in the queue and never reached a worker "
        f"({reason.replace('_', ' ')})", reason=reason)


def cancelled_queued(request_id: str) -> RequestCancelledError:
    return RequestCancelledError(
        f"request {request_id} was cancelled before it reached a worker",
        reason="cancelled_queued")


def timed_out_on(request_id: str, tool: str, worker_id: str) -> RequestTimeoutError:
    """A call passed its deadline while it ran on ``worker_id``."""
    return RequestTimeoutError(
        f"request {request_id} ({tool!r}) passed its deadline on worker {worker_id}; the "
        f"worker is recycled to cancel it", details={"worker_id": worker_id})


def cancelled_running(request_id: str, worker_id: str) -> RequestCancelledError:
    """Its caller cancelled a call while it ran on ``worker_id``."""
    return RequestCancelledError(f"request {request_id} was cancelled while it ran",
                                 details={"worker_id": worker_id})


def crashed_under(worker_id: str, reason: str, request_id: str,
                  exit_code: int | None) -> WorkerCrashedError:
    """A request's worker is gone and only the Starter's fact (no exit status) says so."""
    return WorkerCrashedError(
        f"worker {worker_id} exited ({reason}) while running request {request_id}",
        details={"worker_id": worker_id, "exit_code": exit_code})


def lease_crash_error(worker_id: str, reason: str, exit_code: int | None) -> WorkerCrashedError:
    """The error leases on ``worker_id`` are revoked with when only the Starter's fact (no exit
    status of the process) says it is gone."""
    return WorkerCrashedError(
        f"worker {worker_id} exited ({reason}) while a direct call held it",
        details={"worker_id": worker_id, "exit_code": exit_code,
                 "signal": -exit_code if exit_code is not None and exit_code < 0 else None})


def pin_lost(lost: PinLost) -> SessionAffinityError:
    return SessionAffinityError(
        f"session {lost.session_id!r} was pinned to worker {lost.pin.worker_id} "
        f"(pid {lost.pin.incarnation}), which died or was replaced: its per-session state is "
        "gone and affinity is strict; the session's next request starts afresh",
        reason="worker_dead", details={"session_id": lost.session_id,
                                       "worker_id": lost.pin.worker_id,
                                       "pid": lost.pin.incarnation})


def stranded(request_id: str, session_id: str | None, worker_id: str) -> SessionAffinityError:
    return SessionAffinityError(
        f"request {request_id} of session {session_id!r} waited for worker {worker_id}, which "
        "left (its per-session state is gone) and affinity is strict",
        reason="worker_dead", details={"session_id": session_id, "worker_id": worker_id})


def startup_timeout(pool: str, ready: int, size: int, timeout_s: float) -> PoolNotReadyError:
    return PoolNotReadyError(
        f"pool {pool!r}: {ready} of {size} workers ready after startup_timeout={timeout_s}s",
        reason="startup_timeout")


def pool_restarted(sent: bool) -> PoolNotReadyError:
    """For what a handle sent to a Pool actor that died (``sent``) or a lease it asked for."""
    return PoolNotReadyError(
        "the pool's Pool actor died and was restarted before this "
        + ("request was answered: it may have run (a worker may have had it); retry only if it "
           "is idempotent" if sent else "lease reached a worker: nothing ran; retry"),
        reason="pool_restarted", details={"may_have_run": sent})
