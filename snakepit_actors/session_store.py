"""SessionStore actor: session_id -> (last access, ttl, data, preferred worker).

    PoolRoot
     └─ SessionStore (this; permanent)

A stub in the walking skeleton: it exists in the tree so the wiring is final; the sessions
issue fills in TTL expiry, affinity records and global programs.
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorTypeDispatcher

from .messages import InitRegistry


class SessionStore(ActorTypeDispatcher):
    """Placeholder for per-session records (see module docstring)."""

    def receiveMsg_InitRegistry(self, msg: InitRegistry, sender: Any) -> None:
        from supervision.lifetime import die_with_parent

        die_with_parent()
