"""The errors a Worker actor's requests and start fail with, from what it knows of its process
(no gRPC: the Worker, its data path and its process handle build them)."""

from __future__ import annotations

import time

from snakepit_actors.errors import PoolClosedError, PoolNotReadyError, WorkerCrashedError
from snakepit_actors.tree import processes


def not_ready_error(worker_id: str, state: str) -> WorkerCrashedError:
    """For a request that reached a worker not serving (it never ran)."""
    return WorkerCrashedError(f"worker {worker_id} is {state}", reason="worker_not_ready",
                              details={"worker_id": worker_id})


def stopped_error(worker_id: str) -> PoolClosedError:
    """For the requests running while the tree stops."""
    return PoolClosedError(f"worker {worker_id} was stopped while running the request",
                           reason="stopped_in_flight", details={"worker_id": worker_id})


def startup_timeout_error(worker_id: str, startup_timeout_s: float,
                          log_path: str) -> PoolNotReadyError:
    return PoolNotReadyError(
        f"worker {worker_id} was not ready within startup_timeout={startup_timeout_s}s "
        f"(see {log_path})", reason="startup_timeout", details={"worker_id": worker_id})


def crash_error(worker_id: str, proc: processes.BridgeProcess | None,
                detail: str) -> WorkerCrashedError:
    """The error its requests fail with when ``proc`` died (its exit code, waited for up to
    0.5 s; the process is not reaped: ``stop_bridge`` kills its group while the pid cannot
    have been reused)."""
    code = _exit_code(proc, wait_s=0.5)
    how = ("still running" if code is None
           else f"killed by signal {-code}" if code < 0 else f"exit code {code}")
    return WorkerCrashedError(
        f"worker {worker_id} (pid {proc.pid if proc else '?'}) died ({how}) while running the "
        f"request: {detail}",
        details={"worker_id": worker_id, "exit_code": code,
                 "signal": -code if code is not None and code < 0 else None})


def _exit_code(proc: processes.BridgeProcess | None, wait_s: float) -> int | None:
    deadline = time.monotonic() + wait_s
    while proc is not None:
        code = processes.process_exit_code(proc)
        if code is not None or time.monotonic() >= deadline:
            return code
        time.sleep(0.005)
    return None
