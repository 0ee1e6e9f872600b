"""The handle as the supervisor of its whole actor system (``on_system_loss="restart"``).

    handle (Pool)                    <- restarts the system: this module, SystemPlan decides
      └ Thespian admin + logger      <- their death (or the PoolRoot's) ends the system
          └ PoolRoot -> the pool's tree (restarts its own children: tree/pool_root.py)

    admin, logger or PoolRoot exits (the gateway sees its pidfd)
        │  gateway thread: ``lost_error`` asks SystemPlan -> RestartSystem | GiveUp
        │  every pending caller fails at once: PoolNotReadyError(reason="system_restarting")
        │  (GiveUp: PoolClosedError as with on_system_loss="close"); the reaper kills every
        │  process of the old system by pid
        ▼
    restart thread (never the gateway's): launch() a new system and pool tree with the same
    config -> swap the handle's internals (data path, pool address, system, run dir, admin
    pid, gateway last) -> retire what is left of the old ones -> ``pool.system_restarted``

While the restart runs, calls fail fast with ``PoolNotReadyError(reason="system_restarting")``
(``details["may_have_run"]``: True for a call that was in flight at the loss): retry after a
short pause. A restart that fails leaves the handle closed for good with
``PoolClosedError(reason="system_restart_failed")``; so does a loss past the intensity
(``PoolClosedError(reason="actor_system_gone" / "pool_tree_gone")``, ``details["gave_up"]``).
``close()`` during a restart aborts it (``launch``'s ``abort``: the new system is killed) and
waits for the thread, so that nothing is left when it returns.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from snakepit_actors.client.direct import DirectPath
from snakepit_actors.client.direct_async import AsyncDirect
from snakepit_actors.client.gateway import Gateway
from snakepit_actors.client.launch import Launched, launch
from snakepit_actors.client.lease_client import LeaseClient
from snakepit_actors.client.replies import CONTROL_TIMEOUT_S
from snakepit_actors.client.system_watch import system_lost_error
from snakepit_actors.config import PoolConfig
from snakepit_actors.core.system_plan import GiveUp, SystemPlan
from snakepit_actors.errors import PoolClosedError, PoolNotReadyError, SnakepitError
from snakepit_actors.system import remove_run_dir
from snakepit_actors.telemetry import close_event_inbox, get_logger


def data_path(config: PoolConfig, gateway: Gateway, pool: Any,
              token: str) -> tuple[DirectPath | None, AsyncDirect | None]:
    """The direct path of a handle (None, None on the actor path), its lease traffic carried
    by ``gateway`` to the Pool actor at ``pool``."""
    if config.data_path != "direct":
        return None, None
    leases = LeaseClient(pool, gateway.new_id, gateway.wake,
                         affinity_wait_s=config.affinity_wait_s
                         if config.affinity == "hint" else 0.0,
                         max_requests=config.pool_size * config.capacity,
                         max_waiting=config.max_queue)
    direct = DirectPath(config, leases, token)
    gateway.attach(leases)
    return direct, AsyncDirect(direct)


def copy_worker_output(pool_name: str, run_dir: str) -> Any:
    """Copy the workers' stdout/stderr into the log as ``worker.output`` if anyone listens
    (logging configured at info, or a subscriber); None otherwise."""
    from snakepit_actors.telemetry import wants
    from snakepit_actors.tree.log_capture import WorkerLogTailer

    return WorkerLogTailer([(pool_name, run_dir)]).start() if wants("info") else None


class SystemRestarter:
    """Restarts ``pool``'s actor system when it dies, if ``on_system_loss="restart"``;
    does nothing otherwise. ``pool`` is the ``Pool`` handle (its internals are swapped)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._plan = SystemPlan(pool.config.on_system_loss)
        self._abort = threading.Event()
        self._lock = threading.Lock()  # a restart starts before close() aborts, or never
        self._thread: threading.Thread | None = None
        if self._plan.mode == "restart":
            self._watch(pool._gateway)

    @property
    def restarts(self) -> int:
        """How many times the system was restarted (or is being restarted)."""
        return self._plan.restarts

    def stop(self, timeout_s: float) -> None:
        """``close()``: abort a restart under way and wait (at most ``timeout_s``) until its
        thread ended; the handle's internals stay as they are after that."""
        with self._lock:
            self._abort.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout_s))
        gateway = self._pool._gateway
        if isinstance(gateway.gone_error, PoolNotReadyError):  # aborted: closed by the caller
            gateway.gone_error = PoolClosedError(
                f"pool {self._pool.config.name!r} was closed while it restarted its actor "
                "system", reason="closed", details=gateway.gone_error.details)

    def _watch(self, gateway: Gateway) -> None:
        """Decide on ``gateway``'s system loss (its ``lost_error``), then start the restart
        after its reaper killed the old system (its ``on_gone``; a later call only reaps)."""
        reap = gateway.on_gone
        decided: list[str] = []

        def lost_error(what: str) -> SnakepitError:
            decision = self._plan.on_loss(time.monotonic(),
                                          closing=self._abort.is_set() or self._pool.closed)
            if isinstance(decision, GiveUp):
                error = system_lost_error(what)
                error.details["gave_up"] = decision.reason
                return error
            decided.append(what)
            return PoolNotReadyError(
                f"pool {self._pool.config.name!r} lost its actor system (its {what} process "
                "exited) and is starting a new one: a request that had reached a worker may "
                "have run; retry in a moment", reason="system_restarting",
                details={"exited": what, "may_have_run": True, "attempt": decision.attempt})

        def on_gone() -> None:
            if reap is not None:
                reap()
            with self._lock:
                if decided and not self._abort.is_set():
                    self._thread = threading.Thread(
                        target=self._restart, args=(gateway, decided.pop()), daemon=True,
                        name=f"snakepit-restart-{self._pool.config.name}")
                    self._thread.start()

        gateway.lost_error = lost_error
        gateway.on_gone = on_gone

    def _restart(self, old_gateway: Gateway, what: str) -> None:
        """The restart thread: a new system and pool, swapped in; or the handle closed."""
        pool, began = self._pool, time.monotonic()
        try:
            up = launch(pool.config, None, CONTROL_TIMEOUT_S, abort=self._abort)
        except BaseException as exc:
            if not self._abort.is_set():
                old_gateway.gone_error = PoolClosedError(
                    f"pool {pool.config.name!r} lost its actor system (its {what} process "
                    f"exited) and could not start a new one ({exc}); start a new pool",
                    reason="system_restart_failed", details={"exited": what, "error": str(exc)})
                get_logger("pool").error("pool.system_restart_failed", pool=pool.config.name,
                                         exited=what, error=str(exc))
            return
        old_admin_pid = pool.admin_pid
        old = (pool._system, pool._run_dir, pool._direct, pool._output)
        self._watch(up.gateway)
        _swap(pool, up)  # even if close() began meanwhile: it waits for us, then closes this
        _retire(old_gateway, *old)
        get_logger("pool").warning(
            "pool.system_restarted", pool=pool.config.name, exited=what,
            restarts=self._plan.restarts, admin_pid=up.admin_pid, old_admin_pid=old_admin_pid,
            took_s=round(time.monotonic() - began, 3))


def _swap(pool: Any, up: Launched) -> None:
    """Point ``pool`` at the new system; the gateway last: a caller that still sees the old
    one gets its ``system_restarting`` error, one that sees the new one finds the rest new."""
    up.gateway.pool = up.pool
    up.gateway.on_pool_replaced = pool._pool_replaced
    pool._direct, pool._aio = data_path(pool.config, up.gateway, up.pool, up.worker_token)
    pool._pool, pool._system, pool._run_dir = up.pool, up.system, up.run_dir
    pool.run_id, pool.admin_pid, pool.worker_token = up.run_id, up.admin_pid, up.worker_token
    pool._output = copy_worker_output(pool.config.name, up.run_dir)
    pool._gateway = up.gateway


def _retire(gateway: Gateway, system: Any, run_dir: str, direct: DirectPath | None,
            output: Any) -> None:
    """Release what the dead system left in this process (its processes were killed by the
    reaper already): its gateway's thread and pipes, endpoint, channels, log tailer, run
    directory."""
    gateway.stop()
    if direct is not None:
        direct.close_channels()
    with contextlib.suppress(Exception):
        system.actor_system._systemBase.transport.close()
    if output is not None:
        with contextlib.suppress(Exception):
            output.stop()
    close_event_inbox(run_dir)
    remove_run_dir(run_dir)
