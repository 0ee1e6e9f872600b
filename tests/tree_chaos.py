"""Helpers of the tree chaos tests (``test_chaos_tree.py``) and of the figures script
(``scripts/tree_chaos_table.py``): find each actor of a pool's tree by its role, kill it under
a bounded load of callers, and measure what the callers saw.

Pids come from the pool itself: the PoolRoot says which actor plays which role
(``DescribeTree``), and each actor's Thespian port names its process; the admin and logger
are the handle's own (``Pool.admin_pid``, ``system_pids``). Nothing is found by process name.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from snakepit_actors import Pool, PoolClosedError
from snakepit_actors.messages import DescribeTree
from snakepit_actors.system import system_pids

#: Roles whose death the PoolRoot heals (a new actor, rebuilt from the others).
HEALED = ("pool", "worker_supervisor", "worker_registry", "process_registry",
          "starter_registry", "session_store", "launcher_watch", "data_plane")
#: Roles whose death ends the pool (every caller gets PoolClosedError).
FATAL = ("pool_root", "admin", "logger")

#: PoolClosedError reasons that mean the pool is gone for good.
GONE = ("pool_tree_gone", "actor_system_gone")
_PORT = re.compile(r":(\d+)\)?$")


def listening_pids() -> dict[int, int]:
    """TCP port -> pid of the process listening on it."""
    from snakepit_actors.ops.status import listening_pids as ports

    return ports()


def tree_pids(pool: Pool) -> dict[str, int]:
    """role -> pid of every actor of ``pool``'s tree now, plus "pool_root", "admin" and
    "logger"."""
    gateway = pool._gateway
    request_id = gateway.new_id()
    tree = gateway.call(gateway.root, DescribeTree(request_id), request_id, 5.0)
    ports = listening_pids()
    out = {"admin": pool.admin_pid, "logger": system_pids(pool.admin_pid).logger}
    for role, address in tree.children:
        match = _PORT.search(str(address))
        if match and int(match.group(1)) in ports:
            out[role] = ports[int(match.group(1))]
    supervisor = out.get("worker_supervisor")
    if supervisor:
        out["pool_root"] = psutil.Process(supervisor).ppid()
    return out


def starters_of(supervisor: psutil.Process) -> list[psutil.Process]:
    """The WorkerSupervisor's live Starter actors: its children but the fork server it owns
    (a killed Starter not yet reaped is a zombie, and not counted); [] once the supervisor
    itself is gone (it may escalate while we look)."""
    starters: list[psutil.Process] = []
    try:
        children = supervisor.children()
    except psutil.Error:
        return starters
    for child in children:
        try:
            if "snakepit_actors.bridge.fork_server" not in child.cmdline():
                starters.append(child)
        except psutil.Error:  # a zombie or gone
            continue
    return starters


def pool_processes(pool: Pool) -> set[int]:
    """The admin and every descendant of it (actors, logger, worker processes)."""
    admin = psutil.Process(pool.admin_pid)
    return {admin.pid} | {child.pid for child in admin.children(recursive=True)}


@dataclass
class Call:
    """One request a caller made: when it started and ended (monotonic), and its outcome."""

    started: float
    ended: float = 0.0
    error: BaseException | None = None


@dataclass
class Load:
    """``callers`` threads, each calling ``call()`` in a loop until ``stop()`` (at most
    ``max_calls`` each). Every call is recorded with its outcome."""

    call: Callable[[], Any]
    callers: int = 16
    max_calls: int = 2000
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for index in range(self.callers):
            thread = threading.Thread(target=self._loop, name=f"caller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self) -> None:
        for _ in range(self.max_calls):
            if self._stop.is_set():
                return
            record = Call(time.monotonic())
            with self._lock:
                self.calls.append(record)
            try:
                self.call()
            except BaseException as exc:
                record.error = exc
                if isinstance(exc, PoolClosedError) and exc.reason in GONE:
                    record.ended = time.monotonic()
                    return  # the pool is gone: this caller stops
            finally:
                record.ended = record.ended or time.monotonic()

    def stop(self, timeout_s: float) -> int:
        """Stop calling; wait up to ``timeout_s`` for the calls in flight. Returns how many
        callers are still inside a call (hung)."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in self._threads)


@dataclass
class KillReport:
    """What the callers saw around one kill (seconds after it)."""

    role: str
    path: str
    calls: int
    ok: int
    errors: dict[str, int]
    lost: int  # calls without an outcome (hung) when the load stopped
    last_error_s: float  # the last failure of a call that was running at the kill
    longest_wait_s: float  # the longest a call running at the kill took after it
    serving_s: float | None  # first success of a call started after the kill
    gap_s: float | None  # the longest time without any success, from just before the kill
    left: int = 0  # processes of the pool still alive after close

    def row(self) -> str:
        serving = "closed" if self.serving_s is None else f"{self.serving_s:.3f}"
        gap = "closed" if self.gap_s is None else f"{self.gap_s:.3f}"
        return (f"| {self.role} | {self.path} | {self.last_error_s:.3f} | {serving} | {gap} | "
                f"{self.longest_wait_s:.3f} | {self.lost} | {self.left} | {self.calls} | "
                f"{self.ok} | {', '.join(f'{k} {v}' for k, v in sorted(self.errors.items()))} |")


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def report(role: str, path: str, load: Load, killed_at: float, lost: int) -> KillReport:
    """Summarise ``load`` around a kill at ``killed_at``."""
    calls = list(load.calls)
    at_kill = [c for c in calls if c.started <= killed_at and c.ended > killed_at]
    failed = [c for c in at_kill if c.error is not None]
    later_ok = [c.ended for c in calls if c.started > killed_at and c.error is None]
    done = [killed_at, *sorted(c.ended for c in calls if c.error is None and c.ended > killed_at)]
    gaps = [b - a for a, b in itertools.pairwise(done)]
    errors: dict[str, int] = {}
    for c in calls:
        if c.error is not None:
            key = f"{type(c.error).__name__}({getattr(c.error, 'reason', '?')})"
            errors[key] = errors.get(key, 0) + 1
    return KillReport(
        role, path, len(calls), sum(c.error is None for c in calls), errors, lost,
        max((c.ended - killed_at for c in failed), default=0.0),
        max((c.ended - killed_at for c in at_kill), default=0.0),
        min(later_ok) - killed_at if later_ok else None,
        max(gaps, default=0.0) if later_ok else None)


TABLE_HEAD = ("| kill -9 of | path | typed error by (s) | serving again (s) | longest gap (s) "
              "| longest wait (s) | lost | left | calls | ok | errors |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
