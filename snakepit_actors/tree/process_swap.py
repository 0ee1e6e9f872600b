"""Graceful recycling inside a Worker: the replacement process starts before the old one stops.

    Worker_i ──gRPC──> process_i (old: drains, then SIGTERM)
             └─spawn─> process_i' (new: warms up meanwhile; swapped in once ready + drained)

``RecycleWorker`` with a reason in ``GRACEFUL_RECYCLE_REASONS`` (but not a move) starts the
swap; the decisions are ``core.worker_lifecycle``'s (state ``swapping``), the process work is
here (``Swapper``, used by the Worker actor):

1. ``spawn``: the replacement (same worker id and log file, its own socket),
   pre-registered in the ProcessRegistry under ``<worker_id>~next`` so a crash now still
   leaves it reapable;
2. the Worker waits, in any order, for its ready line (a watched pipe, never a blocking read),
   for the Pool's ``drained=True`` (direct-path leases are back) and for its own in-flight
   requests;
3. ``swap_in``: the old process is stopped, the new one re-registered under the worker id; the
   Worker connects to it (ping) and announces it with ``WorkerReady`` (new pid and endpoint;
   ``restarts`` unchanged).

If the replacement fails to start (or is not ready within ``startup_timeout``), the Worker
exits once drained and its Starter starts a new one. If the Worker stops or its old process
dies meanwhile, the replacement is stopped with it (``stop``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import ProcessEnded, ProcessSpawned, ProcessSpawning, WorkerContext
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree import processes
from snakepit_actors.tree.worker_process import ProcessHandle

log = get_logger("worker")

Send = Callable[[Any, Any], None]


@dataclass(slots=True)
class Replacement:
    """The replacement process of one swap."""

    generation: int
    reason: str
    proc: processes.BridgeProcess
    started: float  # wall time the swap began (for the ``worker.recycled`` log)


def replacement_id(worker_id: str) -> str:
    """The ProcessRegistry key of ``worker_id``'s replacement until it is swapped in."""
    return worker_id + "~next"


class Swapper:
    """The Worker's replacement process (at most one) and the steps of its swap."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.replacement: Replacement | None = None
        self._adopted: tuple[Replacement, int | None] | None = None  # swapped in; old pid

    def ready_fds(self) -> list[int]:
        """The replacement's ready pipe, while its ready line is awaited."""
        fd = self.replacement.proc.ready_fd if self.replacement is not None else None
        return [] if fd is None else [fd]

    def spawn(self, ctx: WorkerContext, spec: processes.BridgeSpec, generation: int,
              reason: str) -> str:
        """Start the replacement of swap ``generation`` from the worker's ``spec`` (a unix
        socket gets its own path); returns "" or why it failed (logged, unregistered)."""
        worker_id = spec.worker_id
        if spec.listen.startswith("unix:"):
            spec = dataclasses.replace(spec, listen=(
                f"unix:{os.path.join(ctx.run_dir, worker_id)}.{generation}.sock"))
        next_id = replacement_id(worker_id)
        self._send(ctx.process_registry, ProcessSpawning(next_id, ctx.run_id, ctx.config.name))
        log.info("worker.recycling", worker_id=worker_id, reason=reason)
        try:
            proc = processes.spawn_bridge(spec)
        except SnakepitError as exc:
            self._send(ctx.process_registry, ProcessEnded(next_id))
            log.warning("worker.recycle_failed", worker_id=worker_id, error=str(exc))
            return str(exc)
        self._send(ctx.process_registry,
                   ProcessSpawned(next_id, proc.pid, proc.pgid, proc.create_time))
        self.replacement = Replacement(generation, reason, proc, time.time())
        return ""

    def stop(self, ctx: WorkerContext | None, notify: bool) -> None:
        """Stop the replacement, if one runs; ``notify=False`` while the tree stops (peers
        may be exiting too)."""
        replacement, self.replacement = self.replacement, None
        if replacement is None:
            return
        processes.stop_bridge(replacement.proc, grace_s=0.5)
        if notify and ctx is not None:
            self._send(ctx.process_registry,
                       ProcessEnded(replacement_id(replacement.proc.worker_id),
                                    replacement.proc.pid))

    def swap_in(self, ctx: WorkerContext, process: ProcessHandle) -> None:
        """Stop the old process of ``process`` and adopt the replacement in its place,
        re-registered under the worker id."""
        replacement, self.replacement = self.replacement, None
        assert replacement is not None
        new, registry = replacement.proc, ctx.process_registry
        worker_id = new.worker_id
        old_pid = process.stop(ctx)
        process.adopt(new)
        self._send(registry, ProcessEnded(replacement_id(worker_id), new.pid))
        self._send(registry, ProcessSpawning(worker_id, ctx.run_id, ctx.config.name))
        self._send(registry, ProcessSpawned(worker_id, new.pid, new.pgid, new.create_time))
        self._adopted = (replacement, old_pid)

    def read_line(self, ready: list[int]) -> tuple[int, str, str] | None:
        """If the replacement's ready pipe is in ``ready``: its generation, and its address
        ("" while its line is incomplete) or why it failed."""
        replacement = self.replacement
        if replacement is None or replacement.proc.ready_fd not in ready:
            return None
        try:
            info = processes.read_ready(replacement.proc)
        except SnakepitError as exc:
            return replacement.generation, "", str(exc)
        return replacement.generation, info.address if info is not None else "", ""

    def log_recycled(self) -> None:
        """Log the swap just finished (the replacement answered its ping)."""
        if self._adopted is None:
            return
        replacement, old_pid = self._adopted
        self._adopted = None
        log.info("worker.recycled", worker_id=replacement.proc.worker_id,
                 reason=replacement.reason, old_pid=old_pid, pid=replacement.proc.pid,
                 took_s=round(time.time() - replacement.started, 3))
