"""The Pool actor's recycle desk: graceful worker replacement, mixed into ``Pool``.

    Recycler / client --RequestRecycle--> Pool (this desk) --RecycleWorker(drained?)--> Worker
    Pool --LeaseRecalled--> lease holders          Worker --WorkerReady(new pid)--> Registry

A worker is due after ``worker_max_requests`` (counted here, on both data paths), after
``worker_ttl`` or above ``worker_memory_mb`` (the Recycler actor samples those), or on
``RequestRecycle(reason="manual")``. The recycle, in order:

1. the Pool stops giving the worker work (it leaves ``PoolCore``; what it runs keeps running
   and checks in as usual), recalls its direct-path leases, and tells the Worker to start the
   replacement process at once (``drained=False`` while leases are out);
2. when the last lease is back the Pool tells the Worker ``drained=True``; the Worker waits for
   its own in-flight actor-path requests;
3. with the old process drained and the replacement ready, the Worker stops the old process and
   announces the new one (``WorkerReady``); the Pool counts ``recycled`` and routes to it.

No request fails on the way, and the pool is never short of a process it still needs.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from snakepit_actors.core.lifecycle import RecyclePolicy
from snakepit_actors.messages import (
    GRACEFUL_RECYCLE_REASONS,
    LeaseRecalled,
    RecycleRequested,
    RecycleWorker,
    RequestRecycle,
)
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree.pool_desk import PoolDesk

log = get_logger("pool")


class RecycleDesk(PoolDesk):
    """Recycle handlers of the Pool actor; see the module docstring."""

    _recycling: dict[str, str]  # worker_id -> reason, from the decision until WorkerReady
    _recycled: int
    _policy: RecyclePolicy

    def receiveMsg_RequestRecycle(self, msg: RequestRecycle, sender: Any) -> None:
        accepted, detail = self._begin_recycle(msg.worker_id, msg.reason)
        if msg.request_id:
            self.send(sender, RecycleRequested(msg.request_id, msg.worker_id, accepted, detail))

    def _check_recycle(self, worker_id: str) -> None:
        """After counting requests of ``worker_id``: recycle it if the policy says so."""
        entry = self._workers.get(worker_id)
        if entry is None or worker_id in self._recycling or not self._policy.enabled:
            return
        if self._policy.due(now=time.time(), requests=entry.info.requests) is not None:
            self._begin_recycle(worker_id, "max_requests")

    def _begin_recycle(self, worker_id: str, reason: str) -> tuple[bool, str]:
        entry = self._workers.get(worker_id)
        if reason not in GRACEFUL_RECYCLE_REASONS:
            return False, f"reason must be one of {sorted(GRACEFUL_RECYCLE_REASONS)}"
        if entry is None:
            return False, f"no worker {worker_id!r}; known: {sorted(self._workers)}"
        if worker_id in self._recycling:
            return False, f"worker {worker_id} is already being recycled"
        if not self._core.has_worker(worker_id) or self._core.closed:
            return False, f"worker {worker_id} is {entry.info.state}, not ready"
        self._recycling[worker_id] = reason
        self._core.remove_worker(worker_id)  # no new work; what it runs finishes normally
        entry.info = replace(entry.info, state="stopping")
        log.info("worker.recycling", worker_id=worker_id, reason=reason,
                 requests=entry.info.requests)
        for lease_id, lease in self._ledger.drain(worker_id, reason):
            self.send(lease.holder, LeaseRecalled(lease_id, worker_id))
        drained = self._ledger.recycle_due(worker_id) is not None
        self.send(entry.address, RecycleWorker(worker_id, reason, drained=drained))
        self._send_dispatches(self._core.release_held(time.time()))
        return True, ""

    def _recycle_done(self, worker_id: str, replaced: bool) -> None:
        """``worker_id`` is ready again (``replaced``: its new process) or gone."""
        reason = self._recycling.pop(worker_id, None)
        if reason is not None and replaced:
            self._recycled += 1
            log.info("worker.recycled", worker_id=worker_id, reason=reason)
