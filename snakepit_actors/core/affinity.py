"""Session affinity as plain state: which worker a session is pinned to, and what a request of
that session may do about it (the Pool's local cache, O(1) per decision; docs/sessions.md).

A pin is ``(worker_id, incarnation)``: the incarnation is the pid of the worker's process when
the session last ran there. A restarted worker keeps its id but gets a new process, and the
session's state on the old one is gone; the incarnation tells the two apart.

Modes (``PoolConfig.affinity``):

* ``hint``: prefer the pinned worker; when it is busy (after the short ``affinity_wait_s`` hold)
  or gone, any worker serves and the session is re-pinned there.
* ``strict_queue``: wait (until the queue deadline) for the pinned worker.
* ``strict_fail_fast``: ``SessionAffinityError`` at once when the pinned worker is busy.

In both strict modes a request whose pinned worker died fails with ``SessionAffinityError``
naming that worker; the pin is dropped, so the session's next request starts afresh anywhere.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Mode = Literal["hint", "strict_queue", "strict_fail_fast"]

#: Sessions whose pin the Pool remembers (least recently used go first).
MAX_PINS = 100_000


@dataclass(frozen=True, slots=True)
class Pin:
    """The worker (and its process) a session last ran on."""

    worker_id: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Route:
    """Submit the request preferring ``preferred`` (None: any worker); ``strict`` says it may
    run nowhere else."""

    preferred: str | None
    strict: Mode = "hint"


@dataclass(frozen=True, slots=True)
class PinLost:
    """The session's worker died since the session last ran there (strict modes only)."""

    session_id: str
    pin: Pin


class AffinityTable:
    """session_id -> ``Pin``, LRU-bounded, and the routing rule of one ``mode``.

    Args:
        mode: the pool's affinity mode.
        max_pins: how many sessions are remembered.
    """

    def __init__(self, mode: Mode = "hint", max_pins: int = MAX_PINS) -> None:
        self.mode: Mode = mode
        self._max_pins = max_pins
        self._pins: OrderedDict[str, Pin] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pins)

    def get(self, session_id: str) -> Pin | None:
        return self._pins.get(session_id)

    def pin(self, session_id: str | None, worker_id: str, incarnation: int) -> None:
        """``session_id`` ran (or is about to run) on ``worker_id`` in process ``incarnation``."""
        if not session_id:
            return
        self._pins[session_id] = Pin(worker_id, incarnation)
        self._pins.move_to_end(session_id)
        if len(self._pins) > self._max_pins:
            self._pins.popitem(last=False)

    def sessions(self) -> dict[str, str]:
        """Every pinned session -> the worker it is pinned to (least recently used first)."""
        return {session_id: pin.worker_id for session_id, pin in self._pins.items()}

    def forget(self, session_id: str) -> Pin | None:
        """Drop the session's pin (it was deleted or expired); returns it."""
        return self._pins.pop(session_id, None)

    def route(self, session_id: str | None,
              incarnation_of: Callable[[str], int | None]) -> Route | PinLost:
        """How to submit a request of ``session_id``.

        Args:
            session_id: the request's session (None or "": no affinity).
            incarnation_of: the current process id of a ready worker, None if it has none.
        """
        pin = self._pins.get(session_id) if session_id else None
        if pin is None or session_id is None:
            return Route(None)
        alive = incarnation_of(pin.worker_id) == pin.incarnation
        if self.mode == "hint":
            return Route(pin.worker_id if alive else None)
        if not alive:
            del self._pins[session_id]
            return PinLost(session_id, pin)
        return Route(pin.worker_id, self.mode)
