"""Recycler actor: watches worker age and memory, and asks the Pool to recycle.

    PoolRoot
     ├─ WorkerRegistry  --worker facts-->  Recycler (this; only when worker_ttl or
     │                                      worker_memory_mb is set)
     └─ Pool  <--RequestRecycle(worker_id, "ttl" | "memory")--

Every sample interval (the heartbeat interval, or a quarter of ``worker_ttl`` if shorter) it
reads the RSS of each ready worker's process tree (psutil: the process and its children) and
asks ``lifecycle.RecyclePolicy`` whether it is due. It asks the Pool once per process (pid),
again only if the Pool refused (the worker was not ready);
the Pool drains the worker and the Worker swaps in a replacement (core/pool_core.py). It does
I/O (``/proc``) but never waits, and holds no state worth keeping: if it crashes, the PoolRoot
starts a new one, which rebuilds its table from the WorkerRegistry's facts (it subscribes).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorTypeDispatcher, WakeupMessage

from snakepit_actors.core.lifecycle import RecyclePolicy
from snakepit_actors.messages import (
    LOCAL_NODE,
    ActorReplaced,
    InitRecycler,
    PoolReplaced,
    RecycleRequested,
    RequestRecycle,
    SubscribeWorkers,
    WorkerAbandoned,
    WorkerExited,
    WorkerReady,
    WorkerStartFailed,
)
from snakepit_actors.telemetry import get_logger

log = get_logger("recycler")


@dataclass(frozen=True, slots=True)
class SampleDue:
    """Timer: time to sample the ready workers again (every sample interval)."""


def tree_rss_bytes(pid: int) -> int | None:
    """RSS of ``pid`` plus all its descendants, in bytes (None if it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


class Recycler(ActorTypeDispatcher):
    """Samples ready workers against the pool's ttl / memory limits; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._policy = RecyclePolicy()
        self._pool: Any = None
        # worker_id -> (pid, ready at, runs on this host: a member's pid names another host's
        # process, so its RSS cannot be sampled from here)
        self._ready: dict[str, tuple[int, float, bool]] = {}
        self._asked: set[int] = set()  # pids already reported (one request per process)
        self._interval_s = 1.0

    def receiveMsg_InitRecycler(self, msg: InitRecycler, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()
        self._policy = RecyclePolicy.from_config(msg.config)
        self._pool = msg.pool
        self._interval_s = self._policy.sample_interval_s(msg.config.heartbeat_interval)
        self.send(msg.worker_registry, SubscribeWorkers(self.myAddress))
        self.wakeupAfter(self._interval_s, payload=SampleDue())

    def receiveMsg_PoolReplaced(self, msg: PoolReplaced, sender: Any) -> None:
        """The Pool was restarted (PoolRoot): send to the new one."""
        self._pool = msg.pool

    def receiveMsg_ActorReplaced(self, msg: ActorReplaced, sender: Any) -> None:
        """PoolRoot restarted the WorkerRegistry: subscribe to the new one."""
        if msg.role == "worker_registry":
            self.send(msg.address, SubscribeWorkers(self.myAddress))

    def receiveMsg_WorkerReady(self, msg: WorkerReady, sender: Any) -> None:
        self._ready[msg.worker_id] = (msg.pid, msg.started_at, msg.node == LOCAL_NODE)

    def receiveMsg_WorkerExited(self, msg: WorkerExited, sender: Any) -> None:
        self._ready.pop(msg.worker_id, None)

    def receiveMsg_WorkerStartFailed(self, msg: WorkerStartFailed, sender: Any) -> None:
        self._ready.pop(msg.worker_id, None)

    def receiveMsg_WorkerAbandoned(self, msg: WorkerAbandoned, sender: Any) -> None:
        self._ready.pop(msg.worker_id, None)

    def receiveMsg_RecycleRequested(self, msg: RecycleRequested, sender: Any) -> None:
        """Refused (e.g. the worker was restarting): ask again at the next sample."""
        if not msg.accepted:
            self._asked.discard(int(msg.request_id))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if not isinstance(msg.payload, SampleDue):
            log.error("timer.unknown", actor="Recycler", payload=repr(msg.payload))
            return
        now = time.time()
        for worker_id, (pid, ready_at, local) in list(self._ready.items()):
            if pid in self._asked:
                continue
            rss = (tree_rss_bytes(pid) if self._policy.memory_mb is not None and local
                   else None)
            reason = self._policy.due(now=now, ready_at=ready_at, rss_bytes=rss)
            if reason is not None:
                self._asked.add(pid)
                self.send(self._pool, RequestRecycle(worker_id, reason, request_id=str(pid)))
        self._asked &= {pid for pid, _, _ in self._ready.values()}
        self.wakeupAfter(self._interval_s, payload=SampleDue())
