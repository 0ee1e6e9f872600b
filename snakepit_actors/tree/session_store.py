"""SessionStore actor: session_id -> (created, last access, ttl, data, last worker); global
programs.

    PoolRoot
     └─ SessionStore (this; permanent)  <──SessionsTouched── Pool ──forwards SessionCommand──┐
                                         ──SessionsEnded──>  Pool ──EndWorkerSession──> Worker

A thin shell around ``sessions.SessionBook``. The Pool forwards every ``SessionCommand`` of
callers here and reports, about once a second, which sessions ran on which worker (the TTL
counts from that last access). A sweep every ``session_sweep_interval`` ends expired sessions
(one batch per sweep) and tells the Pool, which drops their affinity pins and has their
workers free the per-session state (``CleanupSession``). The store never does I/O.

If the store dies, PoolRoot starts a new, empty one (as Snakepit's ETS-backed store would
come back): the Pool reports every session it has pinned to it at once (``SessionsTouched``),
so those sessions exist again (with the pool's TTL, no data, no metadata) and still expire and
free their workers' state; global programs and session data are lost. The handle fails the
session commands it sent that have no answer (``PoolNotReadyError(reason=
"session_store_restarted")``, told by ``SessionStoreReplaced``). Requests keep running
throughout: routing never asks the store (affinity is the Pool's own cache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from thespian.actors import ActorTypeDispatcher, WakeupMessage

from snakepit_actors.config import PoolConfig
from snakepit_actors.core.sessions import SessionBook
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import (
    CreateSession,
    DeleteProgram,
    DeleteSession,
    GetProgram,
    GetSession,
    InitRegistry,
    InitSessionStore,
    ListSessions,
    PoolReplaced,
    ProgramValue,
    SessionCommand,
    SessionDeleted,
    SessionFailed,
    SessionInfo,
    SessionList,
    SessionsEnded,
    SessionsTouched,
    SetProgram,
    UpdateSessionData,
)
from snakepit_actors.telemetry import get_logger

log = get_logger("session_store")


@dataclass(frozen=True, slots=True)
class SweepDue:
    """Timer: time for the next sweep of expired sessions (every ``session_sweep_interval``)."""


class SessionStore(ActorTypeDispatcher):
    """Sessions and global programs of one pool; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._book = SessionBook(ttl_s=3600.0, max_sessions=10_000)
        self._pool: Any = None
        self._sweep_s = 60.0
        self._early: list[tuple[Any, Any]] | None = []  # None once InitSessionStore came

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        """What the Pool sends before ``InitSessionStore`` (a restarted store: the Pool may
        hear of it first) waits for it, instead of landing in a book that is then replaced."""
        if self._early is not None and isinstance(message, SessionCommand | SessionsTouched):
            self._early.append((message, sender))
            return None
        return super().receiveMessage(message, sender)

    def receiveMsg_InitRegistry(self, msg: InitRegistry, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()

    def receiveMsg_InitSessionStore(self, msg: InitSessionStore, sender: Any) -> None:
        cfg: PoolConfig = msg.config
        self._book = SessionBook(ttl_s=cfg.session_ttl, max_sessions=cfg.max_sessions)
        self._pool = msg.pool
        self._sweep_s = cfg.session_sweep_interval
        self.wakeupAfter(self._sweep_s, payload=SweepDue())
        early, self._early = self._early or [], None
        for message, sender in early:
            self.receiveMessage(message, sender)

    def receiveMsg_PoolReplaced(self, msg: PoolReplaced, sender: Any) -> None:
        """The Pool was restarted (PoolRoot): send to the new one."""
        self._pool = msg.pool

    # --- commands (forwarded by the Pool; replies go to reply_to) ------------------------------

    def receiveMsg_CreateSession(self, msg: CreateSession, sender: Any) -> None:
        self._answer(msg.reply_to or sender, msg.request_id, lambda: self._book.create(
            msg.session_id, time.time(), ttl_s=msg.ttl_s, metadata=msg.metadata, data=msg.data))

    def receiveMsg_GetSession(self, msg: GetSession, sender: Any) -> None:
        self._answer(msg.reply_to or sender, msg.request_id,
                     lambda: self._book.get(msg.session_id, time.time()))

    def receiveMsg_UpdateSessionData(self, msg: UpdateSessionData, sender: Any) -> None:
        self._answer(msg.reply_to or sender, msg.request_id,
                     lambda: self._book.update_data(msg.session_id, msg.data, time.time()))

    def receiveMsg_DeleteSession(self, msg: DeleteSession, sender: Any) -> None:
        info = self._book.delete(msg.session_id)
        existed = info is not None
        if info is not None:
            self._ended([info], "deleted")
        self.send(msg.reply_to or sender, SessionDeleted(msg.request_id, msg.session_id, existed))

    def receiveMsg_ListSessions(self, msg: ListSessions, sender: Any) -> None:
        self.send(msg.reply_to or sender,
                  SessionList(tuple(self._book.snapshot()), msg.request_id))

    def receiveMsg_SetProgram(self, msg: SetProgram, sender: Any) -> None:
        self._book.programs[msg.name] = msg.value
        self.send(msg.reply_to or sender, ProgramValue(msg.request_id, msg.name, msg.value, True))

    def receiveMsg_GetProgram(self, msg: GetProgram, sender: Any) -> None:
        found = msg.name in self._book.programs
        self.send(msg.reply_to or sender, ProgramValue(
            msg.request_id, msg.name, self._book.programs.get(msg.name), found))

    def receiveMsg_DeleteProgram(self, msg: DeleteProgram, sender: Any) -> None:
        found = msg.name in self._book.programs
        value = self._book.programs.pop(msg.name, None)
        self.send(msg.reply_to or sender, ProgramValue(msg.request_id, msg.name, value, found))

    def _answer(self, reply_to: Any, request_id: str, step: Any) -> None:
        try:
            info = step()
        except SnakepitError as exc:
            self.send(reply_to, SessionFailed(request_id, exc))
            return
        self.send(reply_to, replace(info, request_id=request_id))

    # --- facts from the Pool, and the sweep ----------------------------------------------------

    def receiveMsg_SessionsTouched(self, msg: SessionsTouched, sender: Any) -> None:
        for session_id, worker_id in msg.touches:
            if not self._book.touch(session_id, worker_id, msg.at_unix_s):
                log.warning("session.quota_exceeded", session_id=session_id)

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if not isinstance(msg.payload, SweepDue):
            log.error("timer.unknown", actor="SessionStore", payload=repr(msg.payload))
            return
        expired = self._book.expire(time.time())
        if expired:
            self._ended(expired, "expired")
        self.wakeupAfter(self._sweep_s, payload=SweepDue())

    def _ended(self, sessions: list[SessionInfo], reason: str) -> None:
        log.info("session.ended", count=len(sessions), reason=reason)
        if self._pool is not None:
            self.send(self._pool, SessionsEnded(
                tuple(s.session_id for s in sessions), reason,
                tuple(s.worker_id or "" for s in sessions)))
