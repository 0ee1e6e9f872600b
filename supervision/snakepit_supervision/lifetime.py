"""Tying an actor process's life to its parent's, and exiting normally.

Every process of a supervision tree is forked by its parent actor::

    Supervisor (process A)
     └─ child (process B, forked by A)      B gets SIGTERM if A dies, even by SIGKILL

Thespian notices a dead child (``ChildActorExited``) but not a dead parent: the children of a
SIGKILLed actor keep running as orphans (ppid 1) and ``ActorSystem.shutdown()`` does not find
them. ``die_with_parent`` asks Linux for ``PR_SET_PDEATHSIG``; the SIGTERM then takes
Thespian's own clean exit path (about 11 ms after the parent died). ``SupervisedActor`` calls it
on its first message; ``Supervisor``, ``Starter`` and ``Registry`` all derive from it.

A child that wants its exit to count as *normal* (a transient child is then not restarted)
calls ``SupervisedActor.exit_normally``: ``StoppingNormally`` to its supervisor, then an
``ActorExitRequest`` to itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher

from .messages import ActorAddress, StoppingNormally

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

log = logging.getLogger("snakepit_supervision")


def die_with_parent(expected_parent_pid: int | None = None, sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``sig`` to this process when its parent process dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)`` via ctypes); elsewhere it does nothing. Never blocks.

    Args:
        expected_parent_pid: the pid of the parent that forked this process. If the current
            parent differs, the parent died before the request was made, so ``sig`` is sent
            to this process at once. ``None`` skips that check.
        sig: the signal to receive; SIGTERM lets Thespian exit cleanly.

    Returns:
        True if the request was accepted, False if unsupported or refused.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if expected_parent_pid is not None and os.getppid() != expected_parent_pid:
        os.kill(os.getpid(), sig)
    return True


def _forking_parent_pid() -> int | None:
    """The pid of the process that forked this actor, or None in the launching process itself
    (``simpleSystemBase`` runs actors there: its lifetime is not ours to bind)."""
    parent = multiprocessing.parent_process()
    return None if parent is None else parent.pid


class SupervisedActor(ActorTypeDispatcher):  # Thespian is untyped (see pyproject's mypy)
    """Base for actors that live in a supervision tree.

    On its first message, of whatever type, it binds its process to its parent's with
    ``die_with_parent`` (only when it runs in a forked process of its own). Subclasses define
    ``receiveMsg_<MessageClass>`` handlers as with any ``ActorTypeDispatcher``.

    A handler that raises is logged and its exception swallowed: otherwise Thespian would run
    the handler a second time and answer the sender with ``PoisonMessage``. Handlers should
    still leave their state consistent at every step.
    """

    _bound_to_parent = False

    def receiveMessage(self, message: Any, sender: ActorAddress) -> Any:
        """Bind to the parent on the first message, then dispatch by message type."""
        if not self._bound_to_parent:
            self._bound_to_parent = True
            parent_pid = _forking_parent_pid()
            if parent_pid is not None:
                die_with_parent(parent_pid)
        try:
            return super().receiveMessage(message, sender)
        except Exception:
            log.exception(
                "supervision.handler_failed actor=%s message=%r", type(self).__name__, message
            )
            return None

    def receiveUnrecognizedMessage(self, message: Any, sender: ActorAddress) -> None:
        """Messages without a ``receiveMsg_<Class>`` handler are logged (debug) and dropped."""
        log.debug("supervision.unhandled actor=%s message=%r", type(self).__name__, message)

    def exit_normally(self, supervisor: ActorAddress, reason: str = "normal") -> None:
        """Exit so that ``supervisor`` counts it as normal (a transient child stays stopped).

        Sends ``StoppingNormally(reason)`` to ``supervisor``, then ``ActorExitRequest`` to
        itself; the exit happens after the current handler returns. Never raises.
        """
        with contextlib.suppress(Exception):
            self.send(supervisor, StoppingNormally(reason))
        with contextlib.suppress(Exception):
            self.send(self.myAddress, ActorExitRequest())
