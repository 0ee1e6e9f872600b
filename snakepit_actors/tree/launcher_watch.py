"""LauncherWatch actor: ends the whole actor system when the launching process dies.

    ActorSystem admin
     ├─ LauncherWatch (this; top level, one per system; not restarted)
     └─ PoolRoot
         └─ LauncherWatch (this again, the pool's own; PoolRoot restarts it if it dies)

Thespian's admin is a daemon (ppid 1, own session), so a SIGKILLed launcher would leave the
system and every worker running. This actor holds a pidfd of the launcher (readable the moment
it exits; watched with ``ThespianWatch``) and also polls every ``interval_s`` as a fallback.
A recycled pid is not mistaken for the launcher (psutil's ``is_running`` compares identities).
It dies with the admin (``die_with_parent``): once the admin is gone there is no system to end,
and a leftover watch would hold the launcher's stdout open.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import psutil
from thespian.actors import ActorTypeDispatcher, ThespianWatch, WakeupMessage, WatchMessage

from snakepit_actors.messages import WatchingLauncher, WatchLauncher
from snakepit_actors.telemetry import get_logger

log = get_logger("system")


@dataclass(frozen=True, slots=True)
class PollDue:
    """Timer: check the launcher again (the fallback to its pidfd, every ``interval_s``)."""


def watch_launcher(asys: Any, timeout_s: float) -> int:
    """Start a ``LauncherWatch`` in ``asys`` (an external ``ActorSystem`` handle) for this
    process; returns the admin's pid it reports (0 if it did not answer in time)."""
    watching = asys.ask(asys.createActor(LauncherWatch), WatchLauncher(os.getpid()), timeout_s)
    return watching.admin_pid if isinstance(watching, WatchingLauncher) else 0


class LauncherWatch(ActorTypeDispatcher):
    """Calls ``actorSystemShutdown()`` once the watched pid is gone."""

    def __init__(self) -> None:
        super().__init__()
        self._pid = 0
        self._launcher: psutil.Process | None = None
        self._pidfd: int | None = None
        self._interval_s = 0.2

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        super().receiveMessage(message, sender)
        return ThespianWatch([self._pidfd] if self._pidfd is not None else [])

    def receiveMsg_WatchLauncher(self, msg: WatchLauncher, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()  # the admin: without it, a killed admin or logger leaves us running
        self._pid, self._interval_s = msg.pid, msg.interval_s
        try:
            self._launcher = psutil.Process(msg.pid)
        except psutil.Error:
            self._launcher_gone()
            return
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(msg.pid)
        self.send(sender, WatchingLauncher(os.getpid(), os.getppid()))
        self.wakeupAfter(self._interval_s, payload=PollDue())

    def receiveMsg_WatchMessage(self, msg: WatchMessage, sender: Any) -> None:
        self._launcher_gone()

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if not isinstance(msg.payload, PollDue):
            log.error("timer.unknown", actor="LauncherWatch", payload=repr(msg.payload))
        elif self._alive():
            self.wakeupAfter(self._interval_s, payload=PollDue())
        else:
            self._launcher_gone()

    def _alive(self) -> bool:
        # is_running() also checks the pid still names the same process (not a recycled pid)
        try:
            return (self._launcher is not None and self._launcher.is_running()
                    and self._launcher.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def _launcher_gone(self) -> None:
        log.warning("launcher.gone", pid=self._pid)
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None
        self.actorSystemShutdown()
