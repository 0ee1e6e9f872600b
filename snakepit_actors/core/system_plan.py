"""The handle's decisions when its actor system (or its PoolRoot) dies, as plain state.

    loss of admin / logger / PoolRoot (what, now) ──> SystemPlan ──> RestartSystem(attempt)
                                                        │            | GiveUp(reason)
                                                        └ RestartIntensity: at most
                                                          SYSTEM_MAX_RESTARTS in SYSTEM_MAX_SECONDS

Above the PoolRoot nothing but the handle remains; with ``PoolConfig.on_system_loss="restart"``
it plays the supervisor of the whole system: it starts a new actor system and pool tree with
the same configuration (``client/system_restart.py``). A system that keeps dying is given up
(the handle closes for good), as OTP escalates past a supervisor's intensity.

No Thespian, no clock of its own: ``now`` comes in (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

from snakepit_supervision.intensity import RestartIntensity

#: The handle gives its system up when it died more than this often within SYSTEM_MAX_SECONDS.
SYSTEM_MAX_RESTARTS = 3
SYSTEM_MAX_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RestartSystem:
    """Start a new actor system and pool tree; ``attempt`` counts restarts in the window."""

    attempt: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Close the handle for good: ``reason`` is "configured" (on_system_loss="close"),
    "closing" (the handle is being closed) or "intensity" (too many losses)."""

    reason: str


class SystemPlan:
    """What to do on each loss of the handle's system. Args:
        mode: ``PoolConfig.on_system_loss`` ("close" or "restart").
        max_restarts / max_seconds: the intensity (restarts allowed in a sliding window).
    """

    def __init__(self, mode: str, max_restarts: int = SYSTEM_MAX_RESTARTS,
                 max_seconds: float = SYSTEM_MAX_SECONDS) -> None:
        self.mode = mode
        self._intensity = RestartIntensity(max_restarts, max_seconds)
        self.restarts = 0  # restarts decided in all

    def on_loss(self, now: float, closing: bool) -> RestartSystem | GiveUp:
        """The system died at ``now``; ``closing``: the handle's ``close`` has begun."""
        if self.mode != "restart":
            return GiveUp("configured")
        if closing:
            return GiveUp("closing")
        if not self._intensity.record(now):
            return GiveUp("intensity")
        self.restarts += 1
        return RestartSystem(self._intensity.recent(now))
