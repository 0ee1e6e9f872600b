"""The Pool actor's session desk: affinity routing and the link to the SessionStore, mixed
into ``Pool``.

    caller --SessionCommand--> Pool (this desk) --forward--> SessionStore --reply--> caller
    Pool --SessionsTouched (batched)--> SessionStore --SessionsEnded--> Pool
    Pool --EndWorkerSession--> Worker (CleanupSession on its process)

Routing decides from the Pool's own ``affinity.AffinityTable`` (O(1), no round trip to the
store): a request of a session is submitted to ``PoolCore`` preferring (hint) or requiring
(strict modes) the worker the session last ran on. Lease requests of the direct path only ever
get the hint: a pooled lease serves whichever caller waits next, so the Python handle sends the
requests of sessions in strict modes through the actor path instead.

Split from ``pool.py`` to keep each file readable; it uses the Pool's state (``_core``,
``_workers``) and is not an actor on its own.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from snakepit_actors.core.affinity import AffinityTable, PinLost
from snakepit_actors.core.scheduling import Dispatch
from snakepit_actors.errors import SessionAffinityError, SnakepitError
from snakepit_actors.messages import (
    EndWorkerSession,
    LeaseRecalled,
    RequestLease,
    SessionCommand,
    SessionsEnded,
    SessionsTouched,
)
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree.pool_desk import PoolDesk

if TYPE_CHECKING:
    from snakepit_actors.config import PoolConfig
    from snakepit_actors.core.scheduling import Queued, Rejected

log = get_logger("pool")

#: How often the Pool reports sessions that ran to the SessionStore (their last access).
TOUCH_FLUSH_S = 1.0


class SessionDesk(PoolDesk):
    """Session handlers and affinity routing of the Pool actor; see the module docstring."""

    if TYPE_CHECKING:  # provided by Pool / Thespian
        def _reply_failed(self, pending: Any, error: SnakepitError) -> None: ...

    _pins: AffinityTable
    _session_store: Any
    _touched: dict[str, str]

    def _init_sessions(self, config: PoolConfig | None = None, store: Any = None) -> None:
        self._pins = AffinityTable(config.affinity if config is not None else "hint")
        self._session_store = store
        self._touched = {}

    # --- routing ------------------------------------------------------------------------------

    def _submit_routed(self, pending: Any, now: float) -> Dispatch[Any] | Queued | Rejected:
        """Submit ``pending`` to the core with its session's affinity. Raises
        ``SessionAffinityError`` when a strict session's worker died."""
        request = pending.request
        route = self._pins.route(request.session_id, self._incarnation)
        if isinstance(route, PinLost):
            log.info("session.affinity_lost", session_id=route.session_id,
                     worker_id=route.pin.worker_id)
            raise SessionAffinityError(
                f"session {route.session_id!r} was pinned to worker {route.pin.worker_id} "
                f"(pid {route.pin.incarnation}), which died or was replaced: its per-session "
                "state is gone and affinity is strict; the session's next request starts afresh",
                reason="worker_dead", details={"session_id": route.session_id,
                                               "worker_id": route.pin.worker_id,
                                               "pid": route.pin.incarnation})
        strict = "hint" if isinstance(request, RequestLease) else route.strict
        decision = self._core.submit(request.request_id, pending, now, pending.deadline_unix_s,
                                     route.preferred, expires=not isinstance(request, RequestLease),
                                     strict=strict)
        if strict == "strict_queue" and route.preferred and not isinstance(decision, Dispatch):
            for lease_id, lease in self._ledger.leases_on(route.preferred):  # direct callers
                self.send(lease.holder, LeaseRecalled(lease_id, route.preferred))  # hog it
        return decision

    def _affinity_busy(self, request: Any) -> SessionAffinityError:
        pin = self._pins.get(request.session_id)
        worker = pin.worker_id if pin is not None else "?"
        return SessionAffinityError(
            f"session {request.session_id!r}: its worker {worker} is busy and "
            "affinity='strict_fail_fast'; retry later, or use affinity='strict_queue' to wait",
            reason="worker_busy", details={"session_id": request.session_id,
                                           "worker_id": worker})

    def _incarnation(self, worker_id: str) -> int | None:
        entry = self._workers.get(worker_id)
        return entry.info.pid if entry is not None and self._core.has_worker(worker_id) else None

    def _remember_session(self, session_id: str | None, worker_id: str) -> None:
        if not session_id:
            return
        self._pins.pin(session_id, worker_id, self._incarnation(worker_id) or 0)
        if self._session_store is not None:
            if not self._touched:
                self.wakeupAfter(TOUCH_FLUSH_S, payload="sessions")
            self._touched[session_id] = worker_id

    def _fail_stranded(self) -> None:
        """Strict requests whose worker left while they waited for it fail."""
        for worker_id, rid, pending in self._core.take_stranded():
            sid = pending.request.session_id
            self._reply_failed(pending, SessionAffinityError(
                f"request {rid} of session {sid!r} waited for worker {worker_id}, which left "
                "(its per-session state is gone) and affinity is strict",
                reason="worker_dead", details={"session_id": sid, "worker_id": worker_id}))
            self._pins.forget(sid)

    def _flush_touched(self) -> None:
        if self._touched and self._session_store is not None:
            self.send(self._session_store,
                      SessionsTouched(tuple(self._touched.items()), time.time()))
        self._touched = {}

    # --- handlers -----------------------------------------------------------------------------

    def receiveMsg_SessionCommand(self, msg: Any, sender: Any) -> None:
        if self._session_store is None:
            return
        if isinstance(msg, SessionCommand) and getattr(msg, "reply_to", None) is None:
            msg = replace(msg, reply_to=sender)  # type: ignore[call-arg]
        self._flush_touched()  # the store sees accesses before it answers
        self.send(self._session_store, msg)

    def receiveMsg_SessionsEnded(self, msg: SessionsEnded, sender: Any) -> None:
        known = dict(zip(msg.session_ids, msg.worker_ids, strict=False))
        for session_id in msg.session_ids:
            self._touched.pop(session_id, None)
            pin = self._pins.forget(session_id)
            worker_id = pin.worker_id if pin is not None else known.get(session_id, "")
            if worker_id in self._workers:  # a replaced process simply has nothing to free
                self.send(self._workers[worker_id].address, EndWorkerSession(session_id))
