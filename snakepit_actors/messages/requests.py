"""The actor data path::

    Pool --RunRequest--> Worker --(gRPC)--> process
    Worker --ExecuteResult/ExecuteFailed--> reply_to        Worker --Checkin--> Pool
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
    afresh and says so). "" when the session stays, is new, or there is none."""

    request: Execute
    reply_to: ActorAddress
    deadline_unix_s: float | None
    session_moved_from: str = ""


@dataclass(frozen=True, slots=True)
class Checkin:
    """Worker -> Pool: ``request_id`` is done; ``ok`` is False when it failed. ``worker_lost``
    means the worker is going away and must not get more work. ``crash`` is set when the worker
    died under the request and did NOT reply: the Pool replies with it, or retries."""

    worker_id: str
    request_id: str
    ok: bool
    elapsed_ms: float
    worker_lost: bool = False
    crash: SnakepitError | None = None
