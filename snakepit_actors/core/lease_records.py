"""The records ``LeaseBroker`` (leases.py) hands out: a ``Lease`` the client holds, the
``Handoff`` of a lease to a waiting caller, the ``Refusal`` that fails one, and the ``Outgoing``
traffic for the Pool. Plain data."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import RequestLease, ReturnLease

T = TypeVar("T", bound=Hashable)

Outcome = Literal["ok", "recycle", "lost"]


@dataclass(slots=True, eq=False)
class Lease:
    """One worker slot lent to this client. ``pid`` identifies the process behind
    ``endpoint`` (a restarted worker keeps its endpoint). ``gone`` is set when the Pool revoked
    it: the error a call that failed on it should raise. ``session_from`` is set when the
    lease is handed to a caller whose session *moves* to it: the worker (or the previous
    process of this one) the session's last request here ran on; "" when it does not move."""

    lease_id: str
    worker_id: str
    endpoint: str
    pid: int
    granted_at: float
    in_use: bool = False
    idle_since: float = 0.0
    recalled: bool = False
    lost: bool = False
    gone: SnakepitError | None = None
    stub: Any = None  # the caller's gRPC stub for endpoint + pid, cached on first use
    session_from: str = ""


@dataclass(frozen=True, slots=True)
class Handoff(Generic[T]):
    """Give ``lease`` (already marked in use) to the waiting caller ``item``."""

    item: T
    lease: Lease


@dataclass(frozen=True, slots=True)
class Refusal(Generic[T]):
    """Fail the waiting caller ``item`` with ``error`` (it never reached a worker)."""

    item: T
    error: SnakepitError


@dataclass(slots=True)
class Outgoing:
    """What the broker wants sent to the Pool (one ``LeaseBatch``)."""

    requests: list[RequestLease] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    returns: list[ReturnLease] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.requests or self.withdrawn or self.returns)
