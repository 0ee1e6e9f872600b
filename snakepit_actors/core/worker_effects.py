"""What the Worker's lifecycle core asks its actor to do, and the Worker's timer payloads.

``worker_lifecycle.WorkerLifecycle`` returns a tuple of these effects from every input; the
Worker actor (``tree/worker.py``) executes them in order. An effect whose outcome the actor
reports back synchronously (``SpawnProcess``, ``Connect``, ``SpawnReplacement``) is always the
last of its tuple, so nothing after it can be stale. ``SendHeartbeat`` and ``Probe`` start gRPC
calls whose answers come back later, as inputs of their own.

The timer payloads travel in Thespian ``WakeupMessage``s (``ScheduleTimer``); the actor
dispatches on their type. Wakeups cannot be cancelled, so each input checks that its timer
still matters (a ``ReplacementTimeout`` names the swap generation it belongs to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from snakepit_actors.errors import SnakepitError

# --- timer payloads ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartupTimeout:
    """Timer: the process had ``startup_timeout`` to announce itself and answer a ping."""


@dataclass(frozen=True, slots=True)
class HeartbeatDue:
    """Timer: time for the next heartbeat (every ``heartbeat_interval``)."""


@dataclass(frozen=True, slots=True)
class ProbeDue:
    """Timer: ask the process again whether the timed-out tool has stopped."""


@dataclass(frozen=True, slots=True)
class ReplacementTimeout:
    """Timer: the replacement of swap ``generation`` had ``startup_timeout`` to be ready."""

    generation: int


TimerPayload = StartupTimeout | HeartbeatDue | ProbeDue | ReplacementTimeout

# --- effects -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpawnProcess:
    """Start the worker's process; report ``spawned()`` or ``start_failed(error)``."""


@dataclass(frozen=True, slots=True)
class Connect:
    """Open the gRPC channel to ``address`` and ping it; report ``connected()`` or
    ``connect_failed(error)``. ``swapped_in``: the address is a replacement's."""

    address: str
    swapped_in: bool = False


@dataclass(frozen=True, slots=True)
class AnnounceReady:
    """Tell the WorkerRegistry ``WorkerReady``. ``cause``: "started" (a new process),
    "recovered" (the same process, back after a timeout: same endpoint and ready time) or
    "swapped" (the replacement took over: new pid and endpoint)."""

    cause: Literal["started", "recovered", "swapped"]


@dataclass(frozen=True, slots=True)
class ReportStartFailed:
    """Tell the WorkerRegistry ``WorkerStartFailed``. ``error`` None: the process was not
    ready within ``startup_timeout`` (the actor names its log file in the error)."""

    error: SnakepitError | None


@dataclass(frozen=True, slots=True)
class StartCall:
    """Run request ``request_id`` in the process (its reply comes as ``request_finished``)."""

    request_id: str


@dataclass(frozen=True, slots=True)
class RefuseRequest:
    """Fail request ``request_id`` at once (``WorkerCrashedError``, reason "worker_not_ready")
    and check it in with ``worker_lost``: the worker is ``state``."""

    request_id: str
    state: str


@dataclass(frozen=True, slots=True)
class CheckIn:
    """Tell the Pool ``Checkin`` for a request already answered. ``worker_lost``: the worker
    must get no more work (it timed out, or is going away) until it announces itself again."""

    request_id: str
    ok: bool
    elapsed_ms: float
    worker_lost: bool


@dataclass(frozen=True, slots=True)
class ReportProcessLost:
    """The process died (or is given up, ``reason``): check ``request_ids`` in as crashed (the
    Pool replies ``WorkerCrashedError`` or retries them), then tell the Pool
    ``WorkerProcessLost``."""

    reason: str
    request_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AbandonInFlight:
    """The tree stops: answer ``request_ids``'s callers with ``PoolClosedError`` (no check-in:
    the Pool stops too)."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    """Start a Heartbeat call (deadline ``timeout_s``); report ``heartbeat_answered(ok)``."""

    timeout_s: float


@dataclass(frozen=True, slots=True)
class Probe:
    """Start a Heartbeat call (deadline ``timeout_s``) to learn how many tool calls still run
    in the process; report ``probe_answered(running)``."""

    timeout_s: float


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """``wakeupAfter(after_s, payload)``."""

    after_s: float
    payload: TimerPayload


@dataclass(frozen=True, slots=True)
class SpawnReplacement:
    """Start the replacement process of swap ``generation`` (recycle ``reason``); report
    ``replacement_spawned(generation)`` or ``replacement_failed(generation, why)``."""

    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class StopReplacement:
    """Stop the replacement process. ``failure``: why the swap failed (logged), "" when the
    worker stops. ``notify``: tell the ProcessRegistry (False while the tree stops)."""

    failure: str = ""
    notify: bool = True


@dataclass(frozen=True, slots=True)
class SwapIn:
    """Stop the old process and adopt the replacement as the worker's process (re-registered
    under the worker id); a ``Connect`` to its address follows."""


@dataclass(frozen=True, slots=True)
class StopProcess:
    """Stop the worker's process (SIGTERM to its group, then SIGKILL) and close its channel.
    ``notify``: tell the ProcessRegistry (False while the tree stops)."""

    notify: bool = True


@dataclass(frozen=True, slots=True)
class Exit:
    """Send ``ActorExitRequest`` to itself (its Starter restarts it). ``reason``:
    "start_failed", "process_lost", "recycle", "moving" or "swap_failed"."""

    reason: str


Effect = (SpawnProcess | Connect | AnnounceReady | ReportStartFailed | StartCall
          | RefuseRequest | CheckIn | ReportProcessLost | AbandonInFlight | SendHeartbeat
          | Probe | ScheduleTimer | SpawnReplacement | StopReplacement | SwapIn | StopProcess
          | Exit)
Effects = tuple[Effect, ...]
