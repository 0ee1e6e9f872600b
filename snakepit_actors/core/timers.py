"""The Pool's timers: what a ``WakeupMessage`` the Pool scheduled for itself is about.

``PoolCore`` asks for a wake-up with ``WakeAt(when, timer)``; the Pool actor passes ``timer``
as the payload of ``wakeupAfter`` and, when it fires, dispatches on the payload's type back to
the core. Every payload is one of ``PoolTimer``; the Pool logs any other payload as an error
(``timer.unknown``) and ignores it, so a wake-up never falls through to the wrong step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExpireQueue:
    """A queued request's queue deadline or an affinity hold may have ended: expire and
    release what is due, then wake again for the next one."""


@dataclass(frozen=True, slots=True)
class CheckHolders:
    """Check that the client processes holding leases still live (every ``HOLDER_CHECK_S``
    while leases are out or lease requests wait)."""


@dataclass(frozen=True, slots=True)
class StartupDeadline:
    """``startup_timeout`` after ``InitPool``: if the pool has not started, it failed to."""


@dataclass(frozen=True, slots=True)
class FlushSessions:
    """Report the sessions that ran since the last flush to the SessionStore."""


@dataclass(frozen=True, slots=True)
class RevokeParked:
    """The grace for ``worker_id``'s exit status ended: revoke the leases parked for it."""

    worker_id: str


PoolTimer = ExpireQueue | CheckHolders | StartupDeadline | FlushSessions | RevokeParked
