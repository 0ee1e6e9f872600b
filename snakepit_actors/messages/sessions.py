"""Sessions and global programs: the public commands (forwarded by the Pool to the
SessionStore) and the internal traffic between Pool, SessionStore and Worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from snakepit_actors.config import PoolConfig
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages.api import ActorAddress

# --- public: sessions and global programs (session_store.py; docs/sessions.md) --------------
#
#    you  --CreateSession / GetSession / DeleteSession / ListSessions / UpdateSessionData-->
#         Pool (forwards) --> SessionStore  -> SessionInfo | SessionList | SessionDeleted
#                                              | SessionFailed (one of them, to reply_to)
#    you  --SetProgram / GetProgram / DeleteProgram--> Pool --> SessionStore -> ProgramValue
#
# Internals: Pool --SessionsTouched--> SessionStore (batched, about once a second);
# SessionStore --SessionsEnded--> Pool --EndWorkerSession--> Worker (CleanupSession over gRPC).

@dataclass(frozen=True, slots=True)
class SessionCommand:
    """Base of every message the Pool forwards to its SessionStore (the reply goes to
    ``reply_to``, or to the sender when it is None)."""


@dataclass(frozen=True, slots=True)
class CreateSession(SessionCommand):
    """Create ``session_id`` (idempotent: an existing session is touched and returned).
    ``ttl_s`` None: the pool's ``session_ttl``. -> ``SessionInfo`` or ``SessionFailed``
    (``SessionQuotaError`` past ``max_sessions``)."""

    request_id: str
    session_id: str
    ttl_s: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class GetSession(SessionCommand):
    """-> ``SessionInfo`` (touches the session) or ``SessionFailed(SessionNotFoundError)``."""

    request_id: str
    session_id: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class UpdateSessionData(SessionCommand):
    """Merge ``data`` into the session's host-side data. -> ``SessionInfo`` or
    ``SessionFailed(SessionNotFoundError)``."""

    request_id: str
    session_id: str
    data: Mapping[str, Any]
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class DeleteSession(SessionCommand):
    """Forget the session; its worker frees its per-session state. -> ``SessionDeleted``."""

    request_id: str
    session_id: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class ListSessions(SessionCommand):
    """-> ``SessionList`` (every live session, oldest first)."""

    request_id: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class SetProgram(SessionCommand):
    """Store the global program ``name`` (a JSON-like value shared by all sessions).
    -> ``ProgramValue``."""

    request_id: str
    name: str
    value: Any
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class GetProgram(SessionCommand):
    """-> ``ProgramValue`` (``found`` False when there is no such program)."""

    request_id: str
    name: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class DeleteProgram(SessionCommand):
    """-> ``ProgramValue`` with the value removed (``found`` False if there was none)."""

    request_id: str
    name: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A snapshot of one session. ``worker_id``: the worker it last ran on (None: not yet)."""

    session_id: str
    created_at_unix_s: float
    last_accessed_unix_s: float
    ttl_s: float
    worker_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class SessionList:
    """The reply to ``ListSessions``."""

    sessions: tuple[SessionInfo, ...]
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class SessionDeleted:
    """The reply to ``DeleteSession``: ``existed`` False if there was no such session."""

    request_id: str
    session_id: str
    existed: bool


@dataclass(frozen=True, slots=True)
class ProgramValue:
    """The reply to ``SetProgram`` / ``GetProgram`` / ``DeleteProgram``."""

    request_id: str
    name: str
    value: Any
    found: bool


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """A session command failed (``SessionNotFoundError``, ``SessionQuotaError``, ...)."""

    request_id: str
    error: SnakepitError


@dataclass(frozen=True, slots=True)
class InitSessionStore:
    """PoolRoot -> SessionStore: the pool's config (TTL, quota, sweep) and its Pool."""

    config: PoolConfig
    pool: ActorAddress


@dataclass(frozen=True, slots=True)
class SessionsTouched:
    """Pool -> SessionStore: these ``(session_id, worker_id)`` ran at about ``at_unix_s``."""

    touches: tuple[tuple[str, str], ...]
    at_unix_s: float


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """SessionStore -> Pool: these sessions were deleted or expired (``reason``); drop their
    pins and free their state on their workers."""

    session_ids: tuple[str, ...]
    reason: str
    worker_ids: tuple[str, ...] = ()  # the worker each last ran on, as far as the store knows


@dataclass(frozen=True, slots=True)
class EndWorkerSession:
    """Pool -> Worker: call ``CleanupSession(session_id)`` on your process (fire and forget)."""

    session_id: str
