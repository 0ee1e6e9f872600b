"""The Pool's sessions, as plain state: where each session runs, and what the store must hear.

    caller --SessionCommand--> Pool --Forward (reply_to filled in)--> SessionStore --> caller
    Pool --SessionsTouched (batched, every TOUCH_FLUSH_S)--> SessionStore --SessionsEnded--> Pool
    Pool --EndWorkerSession--> Worker (CleanupSession on its process)

Routing decides from the Pool's own ``affinity.AffinityTable`` (O(1), no round trip to the
store): a request of a session is submitted to the ``Scheduler`` preferring (hint) or requiring
(strict modes) the worker the session last ran on. Lease requests of the direct path only ever
get the hint: a pooled lease serves whichever caller waits next, so the Python handle sends the
requests of sessions in strict modes through the actor path instead. ``PoolCore`` owns one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from snakepit_actors.core import pool_errors as errs
from snakepit_actors.core.affinity import AffinityTable, Mode, PinLost, Route
from snakepit_actors.core.pool_decisions import Decision, EndSession, Forward, TouchSessions, WakeAt
from snakepit_actors.core.timers import FlushSessions
from snakepit_actors.errors import SessionAffinityError
from snakepit_actors.messages import (
    EndWorkerSession,
    Execute,
    RequestLease,
    SessionCommand,
    SessionsEnded,
    SessionsTouched,
)
from snakepit_actors.telemetry import get_logger

log = get_logger("pool")

#: How often the Pool reports sessions that ran to the SessionStore (their last access).
TOUCH_FLUSH_S = 1.0


class SessionPins:
    """Session pins of one pool (``mode``: its affinity) and the accesses not yet reported to
    its SessionStore (``store``: an address; None tracks no sessions)."""

    def __init__(self, mode: Mode = "hint", store: Any = None) -> None:
        self.table = AffinityTable(mode)
        self._store = store
        self._touched: dict[str, str] = {}  # session_id -> worker_id, since the last flush

    def route(self, request: Execute | RequestLease,
              incarnation_of: Callable[[str], int | None]) -> Route | SessionAffinityError:
        """How to submit ``request``: the worker to prefer (and whether strictly), or the
        error when its strict session's worker died (the pin is dropped)."""
        route = self.table.route(request.session_id, incarnation_of)
        if isinstance(route, PinLost):
            log.info("session.affinity_lost", session_id=route.session_id,
                     worker_id=route.pin.worker_id)
            return errs.pin_lost(route)
        return Route(route.preferred) if isinstance(request, RequestLease) else route

    def moved_from(self, request: Execute | RequestLease, worker_id: str,
                   incarnation: int | None) -> str:
        """The worker ``request``'s session moves from if it runs on ``worker_id`` (process
        ``incarnation``) now: its pin names another worker, or another process of this one
        (logged as ``session.moved``). "" when it stays, is new, has no session, or is a lease
        request (a lease serves any caller of its client, which reports its own moves)."""
        pin = self.table.get(request.session_id) if request.session_id else None
        if pin is None or isinstance(request, RequestLease):
            return ""
        if pin.worker_id == worker_id and (not pin.incarnation or pin.incarnation == incarnation):
            return ""
        log.info("session.moved", session_id=request.session_id, from_worker=pin.worker_id,
                 worker_id=worker_id, path="actor")
        return pin.worker_id

    def busy_error(self, session_id: str | None) -> SessionAffinityError:
        """``strict_fail_fast`` and the session's worker is busy."""
        pin = self.table.get(session_id) if session_id else None
        return errs.affinity_busy(session_id, pin.worker_id if pin is not None else "?")

    def remember(self, session_id: str | None, worker_id: str, incarnation: int,
                 now: float) -> list[Decision]:
        """``session_id`` runs on ``worker_id`` (process ``incarnation``): pin it there and
        report the access at the next flush (scheduled with the first access after one)."""
        if not session_id:
            return []
        self.table.pin(session_id, worker_id, incarnation)
        if self._store is None:
            return []
        first = not self._touched
        self._touched[session_id] = worker_id
        return [WakeAt(now + TOUCH_FLUSH_S, FlushSessions())] if first else []

    def forget(self, session_id: str | None) -> None:
        if session_id:
            self.table.forget(session_id)

    def flush(self, now: float) -> list[Decision]:
        """Tell the store which sessions ran since the last flush."""
        touched, self._touched = self._touched, {}
        if not touched or self._store is None:
            return []
        return [TouchSessions(self._store, SessionsTouched(tuple(touched.items()), now))]

    def store_replaced(self, store: Any, now: float) -> list[Decision]:
        """A new, empty SessionStore runs at ``store``: report every pinned session to it at
        once, so those sessions exist there again (without their data) and still expire."""
        self._store = store
        self._touched = {**self.table.sessions(), **self._touched}
        return self.flush(now)

    def command(self, msg: SessionCommand, sender: Any, now: float) -> list[Decision]:
        """Forward ``msg`` to the store (replying to ``sender`` unless it names ``reply_to``),
        after the accesses it has not heard of yet."""
        if self._store is None:
            return []
        if getattr(msg, "reply_to", None) is None:
            msg = replace(msg, reply_to=sender)  # type: ignore[call-arg]
        return [*self.flush(now), Forward(self._store, msg)]

    def ended(self, msg: SessionsEnded, address_of: Callable[[str], Any]) -> list[Decision]:
        """The store ended sessions: drop their pins; their workers (``address_of``: None if
        unknown) free their state. A replaced process simply has nothing to free."""
        known = dict(zip(msg.session_ids, msg.worker_ids, strict=False))
        out: list[Decision] = []
        for session_id in msg.session_ids:
            self._touched.pop(session_id, None)
            pin = self.table.forget(session_id)
            address = address_of(pin.worker_id if pin is not None else known.get(session_id, ""))
            if address is not None:
                out.append(EndSession(address, EndWorkerSession(session_id)))
        return out
