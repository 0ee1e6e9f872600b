"""Bringing a pool up for the Python handle (``Pool.start``), or leaving nothing behind.

    sweep orphans of killed runs -> a private actor system (system.py) -> LauncherWatch
    -> watch the admin, logger and PoolRoot (system_watch.py) -> PoolRoot -> StartPool
    -> PoolStarted (every worker ready) | the error, after everything started is stopped
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snakepit_actors.client.gateway import Gateway
from snakepit_actors.client.replies import REPLY_GRACE_S
from snakepit_actors.client.system_watch import admin_children, watch_system
from snakepit_actors.config import PoolConfig
from snakepit_actors.errors import PoolClosedError, PoolNotReadyError, SnakepitError
from snakepit_actors.messages import StartPool
from snakepit_actors.system import (
    StartedSystem,
    SystemPids,
    kill_lost_system,
    make_run_dir,
    remove_run_dir,
    shutdown_actor_system,
    start_actor_system,
    system_pids,
)
from snakepit_actors.telemetry import close_event_inbox, open_event_inbox
from snakepit_actors.tree.process_table import default_data_dir, process_db_path
from snakepit_actors.tree.reaper import sweep_orphans
from snakepit_actors.worker_token import new_token


@dataclass(frozen=True, slots=True)
class Launched:
    """A started pool, as the handle needs it."""

    system: StartedSystem
    run_dir: str
    gateway: Gateway
    pool: Any  # the Pool actor's address
    admin_pid: int
    run_id: str
    process_db: str
    worker_token: str  # every gRPC call to the pool's workers carries it (worker_token.py)


def launch(cfg: PoolConfig, on_progress: Callable[[int, int], None] | None,
           control_timeout_s: float, abort: threading.Event | None = None) -> Launched:
    """Start ``cfg``'s pool and block until every worker is ready (``startup_timeout``), or
    ``abort`` is set (a handle closed while it restarted its system: everything is killed).

    Raises:
        PoolNotReadyError: a worker failed to start, or startup timed out; nothing is left.
        PoolClosedError: ``abort`` was set (reason "closed"); nothing is left.
    """
    process_db = process_db_path(default_data_dir(os.environ))
    sweep_orphans(process_db)  # what SIGKILLed runs left behind, verified before killing
    run_id, token = uuid.uuid4().hex[:12], new_token()
    run_dir = make_run_dir(cfg.name)
    system = start_actor_system(cfg.system, run_dir)
    gateway: Gateway | None = None
    admin_pid, pids = 0, SystemPids(0, 0, 0)
    try:
        from snakepit_actors.tree.launcher_watch import watch_launcher
        from snakepit_actors.tree.pool_root import PoolRoot

        asys = system.actor_system
        admin_pid = watch_launcher(asys, control_timeout_s)
        pids = system_pids(admin_pid)  # before PoolRoot: the logger is the oldest child
        before = admin_children(admin_pid)
        root = asys.createActor(PoolRoot)
        root_pids = admin_children(admin_pid) - before
        gateway = Gateway(asys, cfg.name, on_progress)
        gateway.root = root
        watch_system(gateway, pids, min(root_pids) if len(root_pids) == 1 else 0,
                     cfg.name, process_db, run_id)
        # The actors' events, for subscribe() here (event_relay.py); opened after the system
        # started, so that no actor process inherits the inbox's sockets through fork.
        open_event_inbox(run_dir)
        start = StartPool(cfg, run_id, run_dir, process_db, os.getpid(),
                          report_progress=on_progress is not None, worker_token=token)
        wait_s = cfg.startup_timeout + REPLY_GRACE_S
        started = (gateway.call(root, start, "start", wait_s) if abort is None
                   else _start_unless_aborted(gateway, root, start, wait_s, abort))
    except BaseException as exc:
        began = time.monotonic()
        if gateway is not None:
            gateway.stop()
        if abort is not None and abort.is_set() and pids.session:  # closing: kill, at once
            while kill_lost_system(pids) and time.monotonic() - began < 2.0:
                time.sleep(0.05)  # again: an actor may have forked while its parent died
            with contextlib.suppress(Exception):
                system.actor_system._systemBase.transport.close()
        else:
            shutdown_actor_system(system, admin_pid)
        sweep_orphans(process_db, ended_runs={run_id})
        close_event_inbox(run_dir)
        remove_run_dir(run_dir)
        if isinstance(exc, SnakepitError):
            raise exc from None
        raise
    return Launched(system, run_dir, gateway, started.pool, admin_pid, run_id, process_db, token)


def _start_unless_aborted(gateway: Gateway, root: Any, start: StartPool, wait_s: float,
                          abort: threading.Event) -> Any:
    """``gateway.call(root, start, "start", wait_s)`` that also ends when ``abort`` is set
    (checked every 50 ms)."""
    future = gateway.submit(root, start, "start")
    deadline = time.monotonic() + wait_s
    while not abort.wait(0.05):
        if future.done():
            return future.result()
        if time.monotonic() >= deadline:
            raise PoolNotReadyError(f"no answer to StartPool within {wait_s}s",
                                    reason="no_answer")
    raise PoolClosedError(f"pool {start.config.name!r} was closed while it restarted")
