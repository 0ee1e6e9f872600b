"""The decisions of a supervisor, with no actors: restart intensity, backoff and strategies.

A ``SupervisorCore`` (supervisor_core.py) owns one ``RestartPlanner``: when a child exits, it
calls ``RestartPlanner.plan`` with the children in start order, the exited child, whether the
exit was normal and the time, and turns the returned decision into effects for the actor:

* ``Restart(stop_ids, restart_ids, after_s)``: stop the still-running siblings ``stop_ids``
  (last started first), then, once they are gone and ``after_s`` has passed, start
  ``restart_ids`` in order;
* ``Escalate(reason)``: the restart intensity was exceeded; stop everything and exit;
* ``Ignore(reason)``: the child is not restarted (temporary, or transient and normal) and is
  forgotten.

Everything here takes the clock as an argument (``now``, seconds on any monotonic scale), so
tests drive it directly with hypothesis and never sleep.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .messages import STRATEGIES, ChildSpec, RestartType, Strategy


@dataclass(frozen=True, slots=True)
class Restart:
    """Stop ``stop_ids`` (in this order), then start ``restart_ids`` (in this order) once they
    have exited and ``after_s`` seconds have passed."""

    stop_ids: tuple[str, ...]
    restart_ids: tuple[str, ...]
    after_s: float


@dataclass(frozen=True, slots=True)
class Escalate:
    """Give up: stop every child and exit, so the supervisor's own parent decides."""

    reason: str


@dataclass(frozen=True, slots=True)
class Ignore:
    """Do not restart the exited child; forget it."""

    reason: str


Decision = Restart | Escalate | Ignore


class RestartIntensity:
    """At most ``max_restarts`` restarts within any ``max_seconds`` window (OTP's intensity).

    Args:
        max_restarts: restarts allowed in the window; ``>= 0``.
        max_seconds: the window length; ``> 0``.

    Raises:
        ValueError: for a negative ``max_restarts`` or a non-positive ``max_seconds``.
    """

    def __init__(self, max_restarts: int, max_seconds: float) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Count one restart at ``now``. Returns False if that exceeds the intensity (escalate)."""
        self._times.append(now)
        while self._times and self._times[0] <= now - self.max_seconds:
            self._times.popleft()
        return len(self._times) <= self.max_restarts

    def recent(self, now: float) -> int:
        """How many recorded restarts lie within the window ending at ``now``."""
        return sum(1 for t in self._times if t > now - self.max_seconds)


class Backoff:
    """Exponential restart delays for one child: ``initial_s``, doubling, capped at ``max_s``.

    A child that ran ``reset_after_s`` seconds since its last restart starts again from
    ``initial_s``. ``initial_s == 0`` means no delay at all.

    Args:
        initial_s: the first delay; ``>= 0``.
        max_s: the largest delay; ``>= initial_s``.
        reset_after_s: the quiet period that resets the delay; ``> 0``.

    Raises:
        ValueError: for values outside those ranges.
    """

    def __init__(self, initial_s: float, max_s: float, reset_after_s: float) -> None:
        if initial_s < 0:
            raise ValueError(f"backoff_initial_s must be >= 0, got {initial_s}")
        if max_s < initial_s:
            raise ValueError(f"backoff_max_s must be >= backoff_initial_s, got {max_s}")
        if reset_after_s <= 0:
            raise ValueError(f"backoff_reset_s must be > 0, got {reset_after_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.reset_after_s = reset_after_s
        self._attempt = 0
        self._restarted_at: float | None = None

    def next_delay(self, now: float) -> float:
        """The delay before the restart that a failure at ``now`` calls for; advances the state."""
        if self._restarted_at is not None and now - self._restarted_at >= self.reset_after_s:
            self._attempt = 0
        delay = min(self.max_s, self.initial_s * 2.0**self._attempt) if self.initial_s else 0.0
        self._attempt = min(self._attempt + 1, 64)
        self._restarted_at = now + delay
        return delay


def restarts_after_exit(restart: RestartType, normal: bool) -> bool:
    """Whether a child of this restart type is restarted after a (normal or abnormal) exit."""
    if restart == "permanent":
        return True
    if restart == "transient":
        return not normal
    return False


def affected_ids(strategy: Strategy, child_ids: Sequence[str], exited: str) -> tuple[str, ...]:
    """The children that restart with ``exited`` under ``strategy``, in start order.

    Raises:
        ValueError: for an unknown strategy or an ``exited`` not among ``child_ids``.
    """
    if exited not in child_ids:
        raise ValueError(f"exited child {exited!r} is not among {list(child_ids)!r}")
    if strategy == "one_for_one":
        return (exited,)
    if strategy == "one_for_all":
        return tuple(child_ids)
    if strategy == "rest_for_one":
        return tuple(child_ids[list(child_ids).index(exited) :])
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


class RestartPlanner:
    """Decides what a supervisor does when a child exits: strategy, intensity and backoff.

    Args:
        strategy: ``one_for_one``, ``one_for_all`` or ``rest_for_one``.
        max_restarts, max_seconds: the restart intensity (see ``RestartIntensity``).
        backoff_initial_s, backoff_max_s: per-child exponential backoff (see ``Backoff``).
        backoff_reset_s: the quiet period that resets a child's backoff; ``None`` means
            ``max(max_seconds, backoff_max_s)``.

    Raises:
        ValueError: for an unknown strategy or out-of-range numbers.
    """

    def __init__(
        self,
        strategy: Strategy,
        max_restarts: int,
        max_seconds: float,
        backoff_initial_s: float = 0.0,
        backoff_max_s: float = 5.0,
        backoff_reset_s: float | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.intensity = RestartIntensity(max_restarts, max_seconds)
        reset_s = max(max_seconds, backoff_max_s) if backoff_reset_s is None else backoff_reset_s
        Backoff(backoff_initial_s, backoff_max_s, reset_s)  # validate now, not at first crash
        self._backoff_args = (backoff_initial_s, backoff_max_s, reset_s)
        self._backoffs: dict[str, Backoff] = {}

    def plan(
        self, children: Sequence[ChildSpec], exited: str, normal: bool, now: float
    ) -> Decision:
        """What to do now that ``exited`` (one of ``children``, in start order) has exited.

        A restart counts once against the intensity however many children it restarts.
        Temporary siblings caught in a group restart are stopped and not started again.

        Raises:
            ValueError: if ``exited`` is not among ``children``.
        """
        spec = next((c for c in children if c.child_id == exited), None)
        if spec is None:
            raise ValueError(f"exited child {exited!r} is not among the children")
        if not restarts_after_exit(spec.restart, normal):
            return Ignore(f"{spec.restart} child {exited!r} exited {_kind(normal)}")
        if not self.intensity.record(now):
            return Escalate(
                f"restart intensity exceeded: more than {self.intensity.max_restarts} restarts"
                f" in {self.intensity.max_seconds} s (child {exited!r} exited {_kind(normal)})"
            )
        group = affected_ids(self.strategy, [c.child_id for c in children], exited)
        kinds = {c.child_id: c.restart for c in children}
        stop_ids = tuple(cid for cid in reversed(group) if cid != exited)
        restart_ids = tuple(cid for cid in group if kinds[cid] != "temporary")
        return Restart(stop_ids, restart_ids, self._backoff(exited).next_delay(now))

    def forget(self, child_id: str) -> None:
        """Drop the backoff state of a child that was removed."""
        self._backoffs.pop(child_id, None)

    def _backoff(self, child_id: str) -> Backoff:
        if child_id not in self._backoffs:
            self._backoffs[child_id] = Backoff(*self._backoff_args)
        return self._backoffs[child_id]


def _kind(normal: bool) -> str:
    return "normally" if normal else "abnormally"
