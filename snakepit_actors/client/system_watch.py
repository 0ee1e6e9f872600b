"""The handle's watch on its own actor system: what happens when the system itself dies.

    Pool.start: system_pids(admin) -> (admin, logger, session)
        │  gateway.watch_system((admin, logger), reaper): pidfds in the gateway's select()
        ▼
    admin or logger exits (kill -9; the admin also follows its logger within 0.2 s)
        │  gateway: every pending Future, lease waiter and later call fails at once with
        │  PoolClosedError(reason="actor_system_gone")
        ▼
    reaper (gateway thread): SIGKILL the system's session and descendants (actors,
    LauncherWatch, logger, worker processes), then sweep the run's recorded processes

``close()`` of such a pool sends nothing (nobody would answer): ``close_lost_system`` closes
the handle's endpoint and kills whatever is still there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from snakepit_actors.system import StartedSystem, SystemPids, kill_lost_system
from snakepit_actors.tree.reaper import sweep_orphans


def watch_system(gateway: Any, pids: SystemPids, pool_name: str, process_db: str,
                 run_id: str) -> None:
    """Have ``gateway`` (a ``Gateway``) fail everything and clean up once the admin or the
    logger of ``pids`` exits. Never blocks."""
    gateway.watch_system((pids.admin, pids.logger),
                         _reaper(pool_name, pids, process_db, run_id))


def _reaper(pool_name: str, pids: SystemPids, process_db: str,
            run_id: str) -> Callable[[], None]:
    def reap() -> None:
        from snakepit_actors.telemetry import get_logger

        killed = kill_lost_system(pids)
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
