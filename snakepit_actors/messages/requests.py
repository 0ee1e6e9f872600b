"""The actor data path::

    Pool --RunRequest | RunBatch--> Worker --(gRPC)--> process
    Worker --ExecuteResult/ExecuteFailed | ExecuteReplies--> reply_to
    Worker --Checkin | CheckinBatch--> Pool

The batches carry what one handler produced for one target in one transport hop (the TCP base
carries one message per sender->target pair at a time, ~0.5 ms of CPU each). Each message has a
short ``str``: Thespian formats every message it sends and receives, even with logging off.
"""

from __future__ import annotations

from dataclasses import dataclass

from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages.api import ActorAddress, Execute

# --- internal: the request path ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RunRequest:
    """Pool -> Worker: run ``request`` and reply to ``reply_to``; ``deadline_unix_s`` is final.
    ``session_moved_from``: the worker the request's session last ran on, when the session
    moves to this one (hint affinity); the Worker passes it to its process (its context starts
    afresh and says so). "" when the session stays, is new, or there is none.
    ``queue_deadline_unix_s``: when a request sent ahead (``PoolConfig.prefetch``) stops
    waiting at the Worker for a call thread (``QueueTimeoutError``); None: no limit."""

    request: Execute
    reply_to: ActorAddress
    deadline_unix_s: float | None
    session_moved_from: str = ""
    queue_deadline_unix_s: float | None = None

    def __str__(self) -> str:
        return f"RunRequest({self.request.request_id!r}, {self.request.tool!r})"


@dataclass(frozen=True, slots=True)
class RunBatch:
    """Pool -> Worker: several ``RunRequest`` at once, handled in order. The Worker runs
    ``capacity`` of its requests at a time and queues the rest (the Pool sends a worker more
    than its capacity only while requests wait for a slot: ``PoolConfig.prefetch``)."""

    runs: tuple[RunRequest, ...]

    def __str__(self) -> str:
        return f"RunBatch({len(self.runs)})"


@dataclass(frozen=True, slots=True)
class Checkin:
    """Worker -> Pool: ``request_id`` is done; ``ok`` is False when it failed. ``worker_lost``
    means the worker is going away and must not get more work. ``crash`` is set when the worker
    died under the request and did NOT reply: the Pool replies with it, or retries (at once
    when ``never_ran``: a request sent ahead that was still waiting for the process)."""

    worker_id: str
    request_id: str
    ok: bool
    elapsed_ms: float
    worker_lost: bool = False
    crash: SnakepitError | None = None
    queue_timed_out: bool = False  # it failed QueueTimeoutError at the worker (sent ahead)
    never_ran: bool = False  # with ``crash``: it waited at the worker and never started
    held_ms: float = 0.0  # how long the Worker held this check-in back after the reply

    def __str__(self) -> str:
        return f"Checkin({self.worker_id!r}, {self.request_id!r}, ok={self.ok})"


@dataclass(frozen=True, slots=True)
class CheckinBatch:
    """Worker -> Pool: several ``Checkin`` at once (the calls one wake-up found finished),
    handled in order."""

    checkins: tuple[Checkin, ...]

    def __str__(self) -> str:
        return f"CheckinBatch({len(self.checkins)})"
