"""What ``PoolCore`` decides, as records the Pool actor executes: sends and wake-ups.

Every send carries the finished message: the Pool actor only does ``self.send(d.to,
d.message)`` (``d.to`` is an opaque actor address the core was given: a Worker's from its
``WorkerReady``, a caller's from the message's sender or ``reply_to``). ``WakeAt(when, timer)``
becomes ``wakeupAfter(when - now, payload=timer)``. The record's class says why the message goes
out, so tests read as the Pool's protocol: ``Run`` then ``GrantLease``, ``Revoke``...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snakepit_actors.core.timers import PoolTimer
from snakepit_actors.messages import (
    CancelRequest,
    ClosePool,
    EndWorkerSession,
    ExecuteFailed,
    LeaseGranted,
    LeaseRecalled,
    LeaseRefused,
    LeaseRevoked,
    PoolClosed,
    PoolStarted,
    PoolStartFailed,
    PoolStats,
    RecycleRequested,
    RecycleWorker,
    RunRequest,
    SessionCommand,
    SessionsTouched,
    StartProgress,
    WorkerList,
)


@dataclass(frozen=True, slots=True)
class Run:
    """Tell the Worker of ``worker_id`` (at ``to``) to run the request now."""

    to: Any
    message: RunRequest
    worker_id: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The one reply a caller gets from the Pool itself: a request refused or failed before it
    ran (``ExecuteFailed``, ``LeaseRefused``), or the answer to a query or command."""

    to: Any
    message: (ExecuteFailed | LeaseRefused | PoolStats | WorkerList | PoolClosed
              | RecycleRequested)


@dataclass(frozen=True, slots=True)
class GrantLease:
    """Lend one slot of a worker to the client at ``to``."""

    to: Any
    message: LeaseGranted


@dataclass(frozen=True, slots=True)
class Revoke:
    """The worker of a lease is gone: the holder at ``to`` must stop using it."""

    to: Any
    message: LeaseRevoked


@dataclass(frozen=True, slots=True)
class Recall:
    """The holder at ``to`` should give a lease back when its current call ends."""

    to: Any
    message: LeaseRecalled


@dataclass(frozen=True, slots=True)
class Recycle:
    """Tell the Worker at ``to`` to replace its process (``message.reason`` says how)."""

    to: Any
    message: RecycleWorker


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell whoever started the pool how the start goes (at most one final message)."""

    to: Any
    message: PoolStarted | PoolStartFailed | StartProgress


@dataclass(frozen=True, slots=True)
class Forward:
    """Pass a message on unchanged: a ``CancelRequest`` to the Worker running the request, a
    session command to the SessionStore (its ``reply_to`` filled in)."""

    to: Any
    message: CancelRequest | SessionCommand | ClosePool


@dataclass(frozen=True, slots=True)
class EndSession:
    """Tell the Worker at ``to`` to free a session's state on its process."""

    to: Any
    message: EndWorkerSession


@dataclass(frozen=True, slots=True)
class TouchSessions:
    """Report to the SessionStore at ``to`` which sessions ran, and on which worker."""

    to: Any
    message: SessionsTouched


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Wake the Pool at ``when`` (Unix seconds) with ``timer`` as the payload."""

    when: float
    timer: PoolTimer


Send = (Run | Reply | GrantLease | Revoke | Recall | Recycle | Announce | Forward | EndSession
        | TouchSessions)
Decision = Send | WakeAt
