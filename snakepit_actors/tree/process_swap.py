"""Graceful recycling inside a Worker: the replacement process starts before the old one stops.

    Worker_i ──gRPC──> process_i (old: drains, then SIGTERM)
             └─spawn─> process_i' (new: warms up meanwhile; swapped in once ready + drained)

Mixed into the ``Worker`` actor (it uses the Worker's state: ``_proc``, ``_in_flight``,
``_ctx``...). ``RecycleWorker`` with a reason in ``GRACEFUL_RECYCLE_REASONS`` starts the swap:

1. spawn the replacement (same worker id and log file, its own socket), pre-registered in the
   ProcessRegistry under ``<worker_id>~next`` so a crash now still leaves it reapable;
2. wait, in any order, for its ready line (a watched pipe, never a blocking read), for the
   Pool's ``drained=True`` (direct-path leases are back) and for our own in-flight requests;
3. stop the old process, connect to the new one (ping), re-register it under the worker id
   and announce it with ``WorkerReady`` (new pid and endpoint; ``restarts`` unchanged).

If the replacement fails to start (or is not ready within ``startup_timeout``), the Worker
falls back to an ordinary recycle once drained: it exits and its Starter starts a new one. If
the Worker stops or its old process dies meanwhile, the replacement is stopped with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import ProcessEnded, ProcessSpawned, ProcessSpawning, RecycleWorker
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree import processes

if TYPE_CHECKING:
    from snakepit_actors.messages import WorkerContext

log = get_logger("worker")


@dataclass(slots=True)
class Swap:
    """One replacement in progress."""

    reason: str
    proc: processes.BridgeProcess | None
    drained: bool
    started: float
    address: str | None = None
    failed: bool = False


class ProcessSwapper:
    """The swap steps of the Worker actor; see the module docstring."""

    if TYPE_CHECKING:  # provided by Worker / Thespian
        _ctx: WorkerContext | None
        _worker_id: str
        _restarts: int
        _proc: processes.BridgeProcess | None
        _pidfd: int | None
        _channel: Any
        _heartbeat: Any
        _missed_beats: int
        _state: str
        _in_flight: dict[str, Any]
        myAddress: Any

        def send(self, target: Any, message: Any) -> None: ...
        def wakeupAfter(self, timePeriod: Any, payload: Any = None) -> None: ...
        def _spec(self) -> processes.BridgeSpec: ...
        def _connect(self, address: str) -> None: ...
        def _exit(self) -> None: ...
        def _ready_fact(self, pid: int, address: str) -> Any: ...

    _swap: Swap | None = None
    _generation: int = 0

    def _swap_fds(self) -> list[int]:
        swap = self._swap
        if swap is not None and swap.proc is not None and swap.proc.ready_fd is not None:
            return [swap.proc.ready_fd]
        return []

    def _recycle_gracefully(self, msg: RecycleWorker) -> None:
        """``RecycleWorker`` with a graceful reason: start (or advance) the swap."""
        if self._state != "ready":
            return
        if self._swap is None:
            self._swap = self._spawn_replacement(msg.reason)
        self._swap.drained = self._swap.drained or msg.drained
        self._maybe_swap()

    def _spawn_replacement(self, reason: str) -> Swap:
        assert self._ctx is not None
        self._generation += 1
        base = self._spec()
        spec = base if not base.listen.startswith("unix:") else dataclasses.replace(
            base, listen=f"unix:{os.path.join(self._ctx.run_dir, self._worker_id)}"
                         f".{self._generation}.sock")
        next_id = self._worker_id + "~next"
        self.send(self._ctx.process_registry,
                  ProcessSpawning(next_id, self._ctx.run_id, self._ctx.config.name))
        log.info("worker.recycling", worker_id=self._worker_id, reason=reason)
        try:
            proc = processes.spawn_bridge(spec)
        except SnakepitError as exc:
            self.send(self._ctx.process_registry, ProcessEnded(next_id))
            log.warning("worker.recycle_failed", worker_id=self._worker_id, error=str(exc))
            return Swap(reason, None, False, time.time(), failed=True)
        self.send(self._ctx.process_registry,
                  ProcessSpawned(next_id, proc.pid, proc.pgid, proc.create_time))
        self.wakeupAfter(self._ctx.config.startup_timeout, payload=f"swap:{self._generation}")
        return Swap(reason, proc, False, time.time())

    def _swap_ready(self) -> None:
        """The replacement's ready pipe has data."""
        swap = self._swap
        if swap is None or swap.proc is None:
            return
        try:
            ready = processes.read_ready(swap.proc)
        except SnakepitError as exc:
            self._swap_failed(str(exc))
            return
        if ready is not None:
            swap.address = ready.address
            self._maybe_swap()

    def _swap_timed_out(self, payload: str) -> None:
        swap = self._swap
        if swap is not None and payload == f"swap:{self._generation}" and swap.address is None:
            assert self._ctx is not None
            self._swap_failed(f"not ready within startup_timeout="
                              f"{self._ctx.config.startup_timeout}s")

    def _swap_failed(self, why: str) -> None:
        swap = self._swap
        assert swap is not None
        log.warning("worker.recycle_failed", worker_id=self._worker_id, error=why)
        self._stop_replacement()
        swap.failed = True
        self._maybe_swap()

    def _maybe_swap(self) -> None:
        """Swap (or, if the replacement failed, exit) once the old process is drained."""
        swap = self._swap
        if swap is None or not swap.drained or self._in_flight or self._state != "ready":
            return
        if swap.failed:
            self._swap = None
            self._state = "stopping"
            self._exit()  # the Starter starts a fresh Worker
        elif swap.address is not None:
            self._swap_in(swap)

    def _swap_in(self, swap: Swap) -> None:
        assert self._ctx is not None and swap.proc is not None and swap.address is not None
        old, new = self._proc, swap.proc
        self._swap = None
        if self._channel is not None:
            with contextlib.suppress(Exception):
                self._channel.close()
            self._channel = None
        if old is not None:
            processes.stop_bridge(old, grace_s=1.0)
            self.send(self._ctx.process_registry, ProcessEnded(self._worker_id, old.pid))
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
        self._proc, self._pidfd = new, None
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(new.pid)
        registry, run_id = self._ctx.process_registry, self._ctx.run_id
        self.send(registry, ProcessEnded(self._worker_id + "~next", new.pid))
        self.send(registry, ProcessSpawning(self._worker_id, run_id, self._ctx.config.name))
        self.send(registry, ProcessSpawned(self._worker_id, new.pid, new.pgid, new.create_time))
        self._heartbeat, self._missed_beats = None, 0
        try:
            self._connect(swap.address)
        except SnakepitError as exc:
            log.warning("worker.recycle_failed", worker_id=self._worker_id, error=str(exc))
            self._state = "stopping"
            self._exit()
            return
        self.send(self._ctx.worker_registry, self._ready_fact(new.pid, swap.address))
        log.info("worker.recycled", worker_id=self._worker_id, reason=swap.reason,
                 old_pid=old.pid if old else None, pid=new.pid,
                 took_s=round(time.time() - swap.started, 3))

    def _stop_replacement(self, notify: bool = True) -> None:
        """Stop the replacement process, if one runs (the Worker stops or the swap failed);
        ``notify=False`` while the tree stops (peers may be exiting too)."""
        swap = self._swap
        if swap is None or swap.proc is None:
            return
        processes.stop_bridge(swap.proc, grace_s=0.5)
        if notify and self._ctx is not None:
            self.send(self._ctx.process_registry,
                      ProcessEnded(self._worker_id + "~next", swap.proc.pid))
        swap.proc = None
