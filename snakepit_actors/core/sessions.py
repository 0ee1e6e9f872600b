"""The SessionStore's decisions as plain state (no actors, no clock of its own): sessions with
a TTL counted from their last access, a ``max_sessions`` quota, host-side session data, and
global programs (named values shared by every session).

Expiry is O(expired) per sweep: a heap of ``(expires_at, session_id)`` checked lazily (a
session touched since it was pushed is pushed again with its new time), and at most ``batch``
sessions end per sweep, so a sweep never stalls the store's actor.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from snakepit_actors.errors import SessionNotFoundError, SessionQuotaError
from snakepit_actors.messages import SessionInfo

#: Sessions ended per sweep at most (the rest wait for the next sweep).
SWEEP_BATCH = 1000


@dataclass(slots=True)
class _Session:
    session_id: str
    created_at: float
    last_accessed: float
    ttl_s: float
    worker_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def expires_at(self) -> float:
        return self.last_accessed + self.ttl_s

    def info(self, request_id: str = "") -> SessionInfo:
        return SessionInfo(self.session_id, self.created_at, self.last_accessed, self.ttl_s,
                           self.worker_id, dict(self.metadata), dict(self.data), request_id)


class SessionBook:
    """Sessions and global programs of one pool.

    Args:
        ttl_s: the default time to live, from the last access.
        max_sessions: how many sessions may exist at once.
        batch: how many sessions one ``expire`` call ends at most.
    """

    def __init__(self, *, ttl_s: float, max_sessions: int, batch: int = SWEEP_BATCH) -> None:
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._batch = batch
        self._sessions: dict[str, _Session] = {}
        self._expiry: list[tuple[float, str]] = []
        self.programs: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def create(self, session_id: str, now: float, *, ttl_s: float | None = None,
               metadata: Mapping[str, str] | None = None,
               data: Mapping[str, Any] | None = None) -> SessionInfo:
        """Create ``session_id``, or touch it and merge ``metadata``/``data`` if it exists.

        Raises:
            SessionQuotaError: a new session would exceed ``max_sessions``.
        """
        session = self._sessions.get(session_id)
        if session is None:
            if len(self._sessions) >= self._max:
                raise SessionQuotaError(
                    f"cannot create session {session_id!r}: max_sessions={self._max} sessions "
                    "exist; delete sessions you no longer need or raise max_sessions",
                    details={"max_sessions": self._max})
            session = _Session(session_id, now, now, self._ttl_s if ttl_s is None else ttl_s)
            self._sessions[session_id] = session
            heapq.heappush(self._expiry, (session.expires_at, session_id))
        else:
            session.last_accessed = now
        session.metadata.update(metadata or {})
        session.data.update(data or {})
        return session.info()

    def get(self, session_id: str, now: float | None = None) -> SessionInfo:
        """The session's snapshot (touching it when ``now`` is given).

        Raises:
            SessionNotFoundError: no such session.
        """
        session = self._find(session_id)
        if now is not None:
            session.last_accessed = now
        return session.info()

    def update_data(self, session_id: str, data: Mapping[str, Any], now: float) -> SessionInfo:
        """Merge ``data`` into the session's data (and touch it).

        Raises:
            SessionNotFoundError: no such session.
        """
        session = self._find(session_id)
        session.data.update(data)
        session.last_accessed = now
        return session.info()

    def touch(self, session_id: str, worker_id: str, now: float) -> bool:
        """``session_id`` ran on ``worker_id``: refresh its access time. A session used
        without ``create`` is created here while the quota allows; False if it could not be."""
        session = self._sessions.get(session_id)
        if session is None:
            try:
                self.create(session_id, now)
            except SessionQuotaError:
                return False
            session = self._sessions[session_id]
        session.last_accessed = max(session.last_accessed, now)
        session.worker_id = worker_id
        return True

    def delete(self, session_id: str) -> SessionInfo | None:
        """Forget the session; returns its last snapshot (None if there was none)."""
        session = self._sessions.pop(session_id, None)
        return None if session is None else session.info()

    def snapshot(self) -> list[SessionInfo]:
        """Every session, oldest first."""
        return [s.info() for s in sorted(self._sessions.values(), key=lambda s: s.created_at)]

    def expire(self, now: float) -> list[SessionInfo]:
        """End up to ``batch`` sessions not accessed for their TTL; returns them."""
        out: list[SessionInfo] = []
        while self._expiry and self._expiry[0][0] <= now and len(out) < self._batch:
            _, session_id = heapq.heappop(self._expiry)
            session = self._sessions.get(session_id)
            if session is None:
                continue
            if session.expires_at > now:  # touched since: look again at its new time
                heapq.heappush(self._expiry, (session.expires_at, session_id))
                continue
            del self._sessions[session_id]
            out.append(session.info())
        return out

    def _find(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFoundError(
                f"no session {session_id!r}: it was never created, was deleted, or expired "
                "(session_ttl counts from its last access)", details={"session_id": session_id})
        return session
