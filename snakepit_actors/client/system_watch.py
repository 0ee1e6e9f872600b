"""The handle's watch on its own actor system: what happens when the system itself dies.

    Pool.start: system_pids(admin) -> (admin, logger, session); the PoolRoot's pid
        │  gateway.watch_system(those three, reaper): pidfds in the gateway's select()
        ▼
    admin, logger or PoolRoot exits (kill -9; the admin also follows its logger in 0.2 s)
        │  gateway: every pending Future, lease waiter and later call fails at once with
        │  PoolClosedError(reason="actor_system_gone" / "pool_tree_gone")
        ▼
    reaper (gateway thread): SIGKILL the system's session and descendants (actors,
    LauncherWatch, logger, worker processes), then sweep the run's recorded processes

The PoolRoot is watched too: it restarts what it can below it; when it exits, the pool's tree
is gone with it (every actor below dies with its parent), and the same happens (reason
"pool_tree_gone").

``close()`` of such a pool sends nothing (nobody would answer): ``close_lost_system`` closes
the handle's endpoint and kills whatever is still there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from snakepit_actors.errors import PoolClosedError
from snakepit_actors.system import StartedSystem, SystemPids, kill_lost_system
from snakepit_actors.tree.reaper import sweep_orphans


def watch_system(gateway: Any, pids: SystemPids, root_pid: int, pool_name: str,
                 process_db: str, run_id: str) -> None:
    """Have ``gateway`` (a ``Gateway``) fail everything and clean up once the admin or the
    logger of ``pids``, or the PoolRoot (``root_pid``; 0: unknown), exits. Never blocks."""
    gateway.watch_system({pids.admin: "admin", pids.logger: "logger", root_pid: "PoolRoot"},
                         _reaper(pool_name, pids, process_db, run_id))


def system_lost_error(what: str) -> PoolClosedError:
    """What every caller gets once ``what`` ("admin", "logger" or "PoolRoot") died and the
    handle will not start its system again."""
    tree = what == "PoolRoot"
    return PoolClosedError(
        f"the pool's {'actor tree' if tree else 'actor system'} died (its {what} process "
        f"exited); a request that had reached a worker may have run; start a new pool",
        reason="pool_tree_gone" if tree else "actor_system_gone", details={"exited": what})


def admin_children(admin_pid: int) -> set[int]:
    """The pids of the admin's children now (the logger and the top-level actors)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        return {child.pid for child in psutil.Process(admin_pid).children()}
    return set()


def _reaper(pool_name: str, pids: SystemPids, process_db: str,
            run_id: str) -> Callable[[], None]:
    def reap() -> None:
        from snakepit_actors.telemetry import get_logger

        killed = kill_lost_system(pids)
        for _ in range(20):  # again: an actor may have forked while its parent was killed
            time.sleep(0.05)
            more = kill_lost_system(pids)
            if not more:
                break
            killed += more
        if process_db:
            sweep_orphans(process_db, ended_runs={run_id}, grace_s=0.5)
        get_logger("pool").error("pool.system_gone", pool=pool_name, admin_pid=pids.admin,
                                 logger_pid=pids.logger, killed=killed)
    return reap


def close_lost_system(system: StartedSystem, gateway: Any) -> None:
    """Close the handle's endpoint of a dead system and kill what is still left of it (the
    gateway's reaper again). Never blocks for long, never raises."""
    with contextlib.suppress(Exception):
        system.actor_system._systemBase.transport.close()
    if gateway.on_gone is not None:
        with contextlib.suppress(Exception):
            gateway.on_gone()

