"""What ``PoolCore`` remembers: one record per worker, one per accepted request, the counters.

A ``WorkerRecord`` is built from a ``WorkerReady`` fact alone (address, pid, endpoint, node,
restarts, started_at) plus what happened to that worker since (``phase``, ``requests``,
``recycle_reason``). The state a user sees (``WorkerInfo.state``) is never stored: ``state_of``
derives it, by one rule, from the record's phase and the slots the worker holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from snakepit_actors.messages import Execute, RequestLease, WorkerInfo, WorkerReady

#: Where a worker stands for the Pool:
#:
#: * ``ready``: in rotation (the scheduler gives it work). Shown "busy" while it holds a
#:   request or lease, else "ready".
#: * ``recycling``: a graceful recycle drains it; its replacement process is starting. Shown
#:   "stopping".
#: * ``leaving``: out of rotation because its process is going away or being checked (a request
#:   or lease checked in with ``worker_lost``, its process reported lost). Shown "stopping".
#: * ``unreachable``: a client could not reach its process; its Worker was asked to check.
#:   Shown "unhealthy".
#: * ``down``: its Starter reported it gone (exited, supervisor gone); a new process is
#:   expected. Shown "starting", with no pid.
#: * ``lost``: its member node was lost; shown "lost" until it is placed again.
#: * ``parked``: no member node matches its placement (reason ``no_matching_node``); shown
#:   "parked".
#: * ``abandoned``: its Starter gave up (restarts kept failing); shown "abandoned".
Phase = Literal["ready", "recycling", "leaving", "unreachable", "down", "lost", "parked",
                "abandoned"]

_SHOWN: dict[Phase, str] = {"recycling": "stopping", "leaving": "stopping",
                            "unreachable": "unhealthy", "down": "starting", "lost": "lost",
                            "parked": "parked", "abandoned": "abandoned"}
#: Phases of a worker with no process and none being started (``PoolStats.lost_workers``).
GONE: frozenset[Phase] = frozenset({"lost", "parked", "abandoned"})
#: Phases of a worker whose process is gone: its pid is forgotten, the reason kept.
NO_PROCESS: frozenset[Phase] = GONE | {"down"}


def state_of(phase: Phase, held: int) -> str:
    """The ``WorkerInfo.state`` of a worker in ``phase`` holding ``held`` requests and leases:
    the only rule that makes one (see ``Phase``)."""
    if phase == "ready":
        return "busy" if held else "ready"
    return _SHOWN[phase]


@dataclass(slots=True)
class WorkerRecord:
    """One worker as the Pool knows it. ``address`` is opaque (the Worker actor's address);
    ``requests`` counts what its current process served on both data paths."""

    worker_id: str
    address: Any
    pid: int | None  # None once its process is gone: a dead process's pid is never shown
    node: str
    endpoint: str
    restarts: int
    started_at: float
    phase: Phase = "ready"
    requests: int = 0
    recycle_reason: str | None = None  # a graceful recycle runs, from decision to WorkerReady
    reason: str = ""  # why its process is gone ("" while it runs)

    @classmethod
    def from_fact(cls, fact: WorkerReady) -> WorkerRecord:
        return cls(fact.worker_id, fact.address, fact.pid, fact.node, fact.endpoint,
                   fact.restarts, fact.started_at)

    def runs(self, fact: WorkerReady) -> bool:
        """Whether ``fact`` names the process this record already runs (a re-announcement)."""
        return self.phase not in NO_PROCESS and (self.pid, self.started_at) == (
            fact.pid, fact.started_at) and self.address == fact.address

    def enter(self, phase: Phase, reason: str) -> None:
        """Move to ``phase``; if its process (or host) is gone there, forget the pid and keep
        ``reason``, why."""
        self.phase = phase
        if phase in NO_PROCESS:
            self.pid, self.reason = None, reason

    def info(self, held: int) -> WorkerInfo:
        """The snapshot ``ListWorkers`` shows, its state derived by ``state_of``."""
        return WorkerInfo(self.worker_id, self.pid, state_of(self.phase, held), self.node,
                          self.endpoint, self.requests, self.restarts, self.started_at,
                          self.reason)


@dataclass(slots=True)
class Pending:
    """One request the Pool accepted and has not seen finish: an ``Execute`` (run on a worker)
    or a ``RequestLease`` (a slot lent to its holder, ``reply_to``). ``deadline_unix_s`` is the
    request's one deadline (``request_deadline``), None for lease requests (their client keeps
    each caller's)."""

    request: Execute | RequestLease
    reply_to: Any
    deadline_unix_s: float | None
    submitted: float
    attempt: int = 1
    worker_id: str = ""
    sent_to: Any = None  # the Worker actor it was sent to (a later one has the same worker_id)

    @property
    def is_lease(self) -> bool:
        return isinstance(self.request, RequestLease)


@dataclass(slots=True)
class Counters:
    """The totals ``PoolStats`` reports (both data paths)."""

    requests: int = 0
    errors: int = 0
    queue_timeouts: int = 0
    saturated: int = 0
    recycled: int = 0
    session_moves: int = 0  # session requests that ran on another worker than their last
