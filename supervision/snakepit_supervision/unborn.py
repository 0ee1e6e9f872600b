"""The exit of a child killed before it connected to its parent, which Thespian loses.

A child actor process connects to its parent a moment after the fork (about 0.2 s on a busy
machine). Until then its parent knows it only by a *local* address. If the child dies in that
window (killed, or crashed while starting), Thespian's ``SIGCHLD`` handling in the parent
(``MultiProcReplicator.childDied``) cannot turn the local address into one it can send, logs
``child ... is dead but cannot translate address to properly handle it`` and drops the exit:
no ``ChildActorExited`` ever comes, so a supervisor neither restarts that child nor counts it,
and what was sent to it waits forever. Measured: a 1-worker pool whose Starter's replacement
was killed as soon as its process appeared stayed ``ready`` with no worker, 4 times in 4.

``install()`` wraps ``childDied`` in actor processes (not the admin): a dead child that never
connected goes down the path Thespian already has for a child that could not be created
(``_retryPendingChildOperations(child, None)``): the parent receives ``ChildActorExited`` with
the local address its ``createActor`` returned, and what waited for that child comes back as
``PoisonMessage``. Its ``ChildExited`` fact carries no address (``connected``). Installed
when this package's supervisor module is imported, in the process that imports it (forked
actor processes inherit it).
"""

from __future__ import annotations

import pickle
from typing import Any

_installed: list[bool] = []


def connected(address: Any) -> bool:
    """Whether ``address`` can be sent in a message: False for a child's local address that
    Thespian never learnt the real one of (the child had not connected when it died). Thespian
    translates a local address when it pickles it, and refuses one it cannot translate."""
    try:
        pickle.dumps(address)
    except Exception:  # thespian's CannotPickleAddress
        return False
    return True


def install() -> bool:
    """Wrap Thespian's ``childDied``; idempotent. False when this Thespian has no such hook
    (nothing is changed)."""
    if _installed:
        return True
    try:
        from thespian.system.actorManager import ActorManager
        from thespian.system.multiprocCommon import MultiProcReplicator
    except ImportError:
        return False
    original = getattr(MultiProcReplicator, "childDied", None)
    if original is None:
        return False

    def childDied(self: Any) -> Any:
        """As Thespian's, and a child that died before connecting is reported too."""
        unborn = []
        if isinstance(self, ActorManager) and hasattr(self, "_retryPendingChildOperations"):
            procs = getattr(self, "_child_procs", [])
            unborn = [c for c in procs
                      if not hasattr(c, "childRealAddr") and not c.childProc.is_alive()]
            if unborn:
                self._child_procs = [c for c in procs if c not in unborn]
        result = original(self)
        for child in unborn:
            self._retryPendingChildOperations(child.childNum, None)
        return result

    MultiProcReplicator.childDied = childDied
    _installed.append(True)
    return True
