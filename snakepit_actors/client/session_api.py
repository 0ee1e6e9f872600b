"""Sessions and global programs on the Python ``Pool`` handle (mixed into ``client.Pool``).

    pool.create_session / get_session / update_session / delete_session / list_sessions
    pool.set_program / get_program / delete_program
    with pool.session("s1") as s: s.execute("session_counter")    # deleted on exit

Every call here is one control round trip through the Pool actor to the SessionStore
(``messages.SessionCommand``); it blocks for at most ``timeout`` seconds (default 10 s) and
raises ``PoolNotReadyError`` when no answer came in time (at once, with reason
"session_store_restarted", when the SessionStore died before answering). Requests of a
session go through ``execute(..., session_id=...)`` as usual: affinity keeps them on the
session's worker.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any

from snakepit_actors.core.request_checks import check_session_call
from snakepit_actors.errors import PoolNotReadyError
from snakepit_actors.messages import (
    CreateSession,
    DeleteProgram,
    DeleteSession,
    GetProgram,
    GetSession,
    ListSessions,
    ProgramValue,
    SessionDeleted,
    SessionFailed,
    SessionInfo,
    SessionList,
    SetProgram,
    UpdateSessionData,
)

if TYPE_CHECKING:
    from snakepit_actors.config import PoolConfig

_SESSION_TIMEOUT_S = 10.0
#: The replies a gateway matches to session calls by request id.
SESSION_REPLIES = (SessionInfo, SessionList, SessionDeleted, ProgramValue, SessionFailed)
#: The prefix of a session call's request id (how ``fail_session_calls`` knows them).
SESSION_CALL = "session-"


def fail_session_calls(pending: dict[str, Future[Any]]) -> None:
    """The SessionStore died and was restarted (``SessionStoreReplaced``): the session calls
    among ``pending`` (request id -> Future) still unanswered never will be; they fail with
    ``PoolNotReadyError(reason="session_store_restarted")`` and leave ``pending``."""
    error = PoolNotReadyError(
        "the pool's SessionStore died and was restarted before this session call was "
        "answered: it may have run; a session comes back without its data, global programs "
        "are lost; retry", reason="session_store_restarted", details={"may_have_run": True})
    for key in [key for key in pending if key.startswith(SESSION_CALL)]:
        future = pending.pop(key)
        with contextlib.suppress(InvalidStateError):
            future.set_exception(error)


class SessionMethods:
    """The session part of ``Pool``; see the module docstring."""

    if TYPE_CHECKING:  # provided by client.Pool
        config: PoolConfig
        _closed: bool
        _gateway: Any
        _pool: Any

        def _check_open(self) -> None: ...

        def execute(self, tool: str, args: Mapping[str, Any] | None = None, *,
                    session_id: str | None = None, timeout: float | None = None,
                    idempotent: bool = False) -> Any: ...
        async def execute_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                                session_id: str | None = None, timeout: float | None = None,
                                idempotent: bool = False) -> Any: ...
        def execute_stream(self, tool: str, args: Mapping[str, Any] | None = None, *,
                           session_id: str | None = None,
                           timeout: float | None = None) -> Iterator[Any]: ...
        def execute_stream_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                                 session_id: str | None = None,
                                 timeout: float | None = None) -> AsyncIterator[Any]: ...

    def create_session(self, session_id: str | None = None, *, ttl: float | None = None,
                       metadata: Mapping[str, str] | None = None,
                       data: Mapping[str, Any] | None = None,
                       timeout: float = _SESSION_TIMEOUT_S) -> SessionInfo:
        """Create a session (a new random id when ``session_id`` is None). Idempotent: an
        existing session is touched, and ``metadata``/``data`` merged into it.

        Args:
            ttl: seconds it lives after its last access; None: the pool's ``session_ttl``.

        Raises:
            SessionQuotaError: ``max_sessions`` sessions exist already.
            InvalidArgumentsError: a parameter of the wrong type or value (named in the message).
        """
        check_session_call(session_id, required=False, ttl=ttl, metadata=metadata, data=data,
                           timeout=timeout)
        sid = session_id if session_id is not None else uuid.uuid4().hex
        return self._session_call(lambda rid: CreateSession(  # type: ignore[no-any-return]
            rid, sid, ttl, dict(metadata or {}), dict(data or {})), timeout)

    def get_session(self, session_id: str, *,
                    timeout: float = _SESSION_TIMEOUT_S) -> SessionInfo:
        """The session's snapshot (counts as an access).

        Raises:
            SessionNotFoundError: never created, deleted, or expired.
        """
        check_session_call(session_id, timeout=timeout)
        return self._session_call(lambda rid: GetSession(rid, session_id), timeout)  # type: ignore[no-any-return]

    def update_session(self, session_id: str, data: Mapping[str, Any], *,
                       timeout: float = _SESSION_TIMEOUT_S) -> SessionInfo:
        """Merge ``data`` into the session's host-side data.

        Raises:
            SessionNotFoundError: no such session.
        """
        check_session_call(session_id, data=data, timeout=timeout)
        return self._session_call(  # type: ignore[no-any-return]
            lambda rid: UpdateSessionData(rid, session_id, dict(data)), timeout)

    def delete_session(self, session_id: str, *, timeout: float = _SESSION_TIMEOUT_S) -> bool:
        """Forget the session; its worker frees its per-session state (``CleanupSession``).
        Returns False if there was no such session."""
        check_session_call(session_id, timeout=timeout)
        reply = self._session_call(lambda rid: DeleteSession(rid, session_id), timeout)
        assert isinstance(reply, SessionDeleted)
        return reply.existed

    def list_sessions(self, *, timeout: float = _SESSION_TIMEOUT_S) -> list[SessionInfo]:
        """Every live session, oldest first."""
        check_session_call(required=False, timeout=timeout)
        reply = self._session_call(lambda rid: ListSessions(rid), timeout)
        assert isinstance(reply, SessionList)
        return list(reply.sessions)

    def set_program(self, name: str, value: Any, *,
                    timeout: float = _SESSION_TIMEOUT_S) -> None:
        """Store the global program ``name``: a value shared by every session of the pool
        (kept in the SessionStore actor; it must pickle)."""
        check_session_call(required=False, name=name, timeout=timeout)
        self._session_call(lambda rid: SetProgram(rid, name, value), timeout)

    def get_program(self, name: str, default: Any = None, *,
                    timeout: float = _SESSION_TIMEOUT_S) -> Any:
        """The global program ``name``, or ``default`` when there is none."""
        check_session_call(required=False, name=name, timeout=timeout)
        reply = self._session_call(lambda rid: GetProgram(rid, name), timeout)
        assert isinstance(reply, ProgramValue)
        return reply.value if reply.found else default

    def delete_program(self, name: str, *, timeout: float = _SESSION_TIMEOUT_S) -> bool:
        """Remove the global program ``name``; False if there was none."""
        check_session_call(required=False, name=name, timeout=timeout)
        reply = self._session_call(lambda rid: DeleteProgram(rid, name), timeout)
        assert isinstance(reply, ProgramValue)
        return reply.found

    @contextlib.contextmanager
    def session(self, session_id: str | None = None, *, ttl: float | None = None,
                metadata: Mapping[str, str] | None = None,
                data: Mapping[str, Any] | None = None) -> Iterator[Session]:
        """``with pool.session() as s: s.execute(...)``: create (or join) a session, delete it
        on exit (its per-session state on the worker is freed)."""
        info = self.create_session(session_id, ttl=ttl, metadata=metadata, data=data)
        try:
            yield Session(self, info.session_id)
        finally:
            if not self._closed:
                self.delete_session(info.session_id)

    def _uses_direct_path(self, session_id: str | None) -> bool:
        """A session's request under strict affinity takes the actor path: only the Pool's
        per-request decision can promise its worker (see core/session_pins.py)."""
        return not session_id or self.config.affinity == "hint"

    def _session_call(self, make: Any, timeout: float) -> Any:
        self._check_open()
        message = make(SESSION_CALL + self._gateway.new_id())
        reply = self._gateway.call(self._pool, message, message.request_id, timeout)
        if isinstance(reply, SessionFailed):
            raise reply.error
        return reply


class Session:
    """One session of a pool: ``execute`` and friends with ``session_id`` filled in. Made by
    ``Pool.session``; thread-safe like the pool."""

    def __init__(self, pool: SessionMethods, session_id: str) -> None:
        self.pool = pool
        self.id = session_id

    def execute(self, tool: str, args: Mapping[str, Any] | None = None, *,
                timeout: float | None = None, idempotent: bool = False) -> Any:
        """``Pool.execute`` in this session."""
        return self.pool.execute(tool, args, session_id=self.id, timeout=timeout,
                                 idempotent=idempotent)

    async def execute_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                            timeout: float | None = None, idempotent: bool = False) -> Any:
        """``Pool.execute_async`` in this session."""
        return await self.pool.execute_async(tool, args, session_id=self.id, timeout=timeout,
                                             idempotent=idempotent)

    def execute_stream(self, tool: str, args: Mapping[str, Any] | None = None, *,
                       timeout: float | None = None) -> Iterator[Any]:
        """``Pool.execute_stream`` in this session."""
        return self.pool.execute_stream(tool, args, session_id=self.id, timeout=timeout)

    def execute_stream_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                             timeout: float | None = None) -> AsyncIterator[Any]:
        """``Pool.execute_stream_async`` in this session."""
        return self.pool.execute_stream_async(tool, args, session_id=self.id, timeout=timeout)

    def info(self) -> SessionInfo:
        """The session's snapshot (``Pool.get_session``)."""
        return self.pool.get_session(self.id)

    def update(self, data: Mapping[str, Any]) -> SessionInfo:
        """Merge ``data`` into the session's host-side data (``Pool.update_session``)."""
        return self.pool.update_session(self.id, data)

    async def info_async(self) -> SessionInfo:
        """``info`` for asyncio (``Pool.get_session_async``)."""
        return await self.pool.get_session_async(self.id)  # type: ignore[attr-defined, no-any-return]

    async def update_async(self, data: Mapping[str, Any]) -> SessionInfo:
        """``update`` for asyncio (``Pool.update_session_async``)."""
        return await self.pool.update_session_async(self.id, data)  # type: ignore[attr-defined, no-any-return]
