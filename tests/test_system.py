"""The actor system's last line of defence: processes under the admin that outlive a shutdown
(here, a child an actor started and never ended) are killed by pid and reported."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass

import psutil
import pytest
from thespian.actors import Actor

from snakepit_actors.config import SystemConfig
from snakepit_actors.system import (
    make_run_dir,
    remove_run_dir,
    shutdown_actor_system,
    start_actor_system,
)

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True, slots=True)
class SpawnStray:
    """Ask a ``StrayParent`` to start a child process it will never end."""


@dataclass(frozen=True, slots=True)
class StraySpawned:
    pid: int
    actor_pid: int


class StrayParent(Actor):  # type: ignore[misc]
    """An actor that starts a long sleep and forgets about it."""

    def receiveMessage(self, msg: object, sender: object) -> None:
        if isinstance(msg, SpawnStray):
            import os

            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            self.send(sender, StraySpawned(child.pid, os.getpid()))


def test_a_process_left_under_the_admin_is_killed_at_shutdown() -> None:
    run_dir = make_run_dir("stray")
    started = start_actor_system(SystemConfig(), run_dir)
    stray_pid = 0
    try:
        parent = started.actor_system.createActor(StrayParent)
        reply = started.actor_system.ask(parent, SpawnStray(), 10)
        assert isinstance(reply, StraySpawned), reply
        stray_pid = reply.pid
        actor = psutil.Process(reply.actor_pid)
        admin_pid = actor.ppid()
        assert stray_pid in {p.pid for p in psutil.Process(admin_pid).children(recursive=True)}
        killed = shutdown_actor_system(started, admin_pid, grace_s=1.0)
        assert stray_pid in killed
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(stray_pid).wait(timeout=5)  # TimeoutExpired fails the test
    finally:
        if stray_pid:
            with contextlib.suppress(psutil.Error):
                psutil.Process(stray_pid).kill()  # the test failed before the safety net ran
        remove_run_dir(run_dir)
