"""Every actor message of snakepit_actors: the message-passing API and the tree's internals.

All messages are frozen, slotted dataclasses with names unique across ``snakepit_actors`` and
``supervision`` (Thespian dispatches on the bare class name). Commands are imperative
(``Execute``), facts past tense (``WorkerReady``). Times are seconds; absolute deadlines are
Unix-epoch seconds (``*_unix_s``) so they stay valid across processes and hosts.

Public API (send these from your own actor, or let ``snakepit_actors.Pool`` do it)::

    you  --StartPool------------>  PoolRoot   -> PoolStarted(pool) | PoolStartFailed(error)
    you  --Execute-------------->  Pool       -> ExecuteResult | ExecuteFailed   (one of them)
    you  --GetStats / ListWorkers->Pool       -> PoolStats / WorkerList
    you  --ClosePool------------>  Pool       -> PoolClosed  (queued requests fail PoolClosedError)

Internals (the request path)::

    Pool --RunRequest--> Worker --(gRPC)--> process
    Worker --ExecuteResult/ExecuteFailed--> reply_to        Worker --Checkin--> Pool
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import PoolConfig
from .errors import SnakepitError

ActorAddress = Any  # thespian.actors.ActorAddress: untyped and unhashable (key dicts by str)


# --- public: starting and stopping ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StartPool:
    """Start a pool under this PoolRoot. Replies ``PoolStarted`` once every worker is Ready, or
    ``PoolStartFailed`` (a worker failed to start, or ``startup_timeout`` passed).

    ``run_id`` and ``run_dir`` (sockets, worker logs) are made up when empty; a run directory
    the PoolRoot made is removed when the PoolRoot stops."""

    config: PoolConfig
    run_id: str = ""
    run_dir: str = ""


@dataclass(frozen=True, slots=True)
class PoolStarted:
    """The pool is ready: send ``Execute`` to ``pool``."""

    pool: ActorAddress
    name: str
    workers: int


@dataclass(frozen=True, slots=True)
class PoolStartFailed:
    """The pool could not start; ``error`` says why (e.g. the adapter's import error)."""

    error: SnakepitError


@dataclass(frozen=True, slots=True)
class ClosePool:
    """Stop accepting requests and fail the queued ones with ``PoolClosedError``. Replies
    ``PoolClosed``; in-flight requests still get their replies. Stop the actors afterwards
    (``ActorExitRequest`` to the PoolRoot, or shut the system down)."""


@dataclass(frozen=True, slots=True)
class PoolClosed:
    """Reply to ``ClosePool``: ``failed_queued`` queued requests were failed."""

    failed_queued: int


# --- public: requests -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Execute:
    """Run ``tool`` with ``args`` (a JSON object) on one worker.

    Exactly one reply goes to ``reply_to`` (default: the sender): ``ExecuteResult`` or
    ``ExecuteFailed``. ``deadline_unix_s`` wins over ``timeout_s``; with neither, the pool's
    ``request_timeout`` applies (None = no deadline). ``session_id`` is passed to the tool.
    """

    request_id: str
    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    timeout_s: float | None = None
    deadline_unix_s: float | None = None
    reply_to: ActorAddress | None = None
    idempotent: bool = False  # may run twice: re-run once on another worker if its worker dies
    args_json: bytes | None = None  # ``args`` already encoded (the Python handle does this)
    stream: bool = False  # run a generator tool: StreamChunk messages, then the final reply


@dataclass(frozen=True, slots=True)
class ExecuteBatch:
    """Several ``Execute`` in one message: one transport hop instead of many (the TCP base
    carries one message per sender->target pair at a time)."""

    requests: tuple[Execute, ...]


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    """The tool's return value (JSON-decoded)."""

    request_id: str
    result: Any
    worker_id: str
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class ExecuteFailed:
    """The request failed; ``error`` is a ``SnakepitError`` subclass that says whose fault."""

    request_id: str
    error: SnakepitError


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """Values a streaming tool yielded (``seq`` counts messages from 0). The stream ends with
    ``ExecuteResult(result=<number of values>)`` or ``ExecuteFailed``."""

    request_id: str
    seq: int
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Stop ``request_id`` if it is still queued or streaming (e.g. the consumer went away).
    A cancelled request still gets its one final reply (``ExecuteFailed``); nothing if done."""

    request_id: str


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask the Pool for a ``PoolStats`` snapshot (echoes ``request_id``)."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counters of one pool. Latencies are over the last requests (a bounded window), in ms."""

    workers: int
    available: int
    busy: int
    queued: int
    requests: int
    errors: int
    queue_timeouts: int
    saturated: int
    restarts: int
    latency_p50_ms: float
    latency_p99_ms: float
    request_id: str = ""
    state: str = "ready"  # starting | ready | degraded | closed


@dataclass(frozen=True, slots=True)
class ListWorkers:
    """Ask the Pool for a ``WorkerList`` (echoes ``request_id``)."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker: ``pid`` is the external process's OS pid; ``state`` is one of
    starting / ready / busy / unhealthy / stopping."""

    worker_id: str
    pid: int
    state: str
    node: str
    endpoint: str
    requests: int
    restarts: int
    started_at: float


@dataclass(frozen=True, slots=True)
class WorkerList:
    """Reply to ``ListWorkers``, ordered by worker id."""

    workers: tuple[WorkerInfo, ...]
    request_id: str = ""


# --- internal: set-up -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InitPool:
    """PoolRoot -> Pool: configuration, collaborators, and whom to tell when started."""

    config: PoolConfig
    worker_registry: ActorAddress
    start_reply_to: ActorAddress


@dataclass(frozen=True, slots=True)
class InitRegistry:
    """PoolRoot -> a registry actor: its pool's name (for logs)."""

    pool_name: str


@dataclass(frozen=True, slots=True)
class SubscribeWorkers:
    """Pool -> WorkerRegistry: send me every worker fact (``WorkerReady``, ``WorkerStartFailed``,
    ``WorkerExited``), starting with the current entries."""

    subscriber: ActorAddress


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What every Starter and Worker of one pool needs to know."""

    config: PoolConfig
    run_id: str
    run_dir: str
    pool: ActorAddress
    worker_registry: ActorAddress
    process_registry: ActorAddress
    starter_registry: ActorAddress


@dataclass(frozen=True, slots=True)
class InitWorkerSupervisor:
    """PoolRoot -> WorkerSupervisor: start ``config.pool_size`` Starters."""

    context: WorkerContext


@dataclass(frozen=True, slots=True)
class InitStarter:
    """WorkerSupervisor -> Starter: own the worker ``worker_id``."""

    context: WorkerContext
    worker_id: str


@dataclass(frozen=True, slots=True)
class InitWorker:
    """Starter -> Worker: start the external process. ``restarts`` counts earlier incarnations."""

    context: WorkerContext
    worker_id: str
    restarts: int


@dataclass(frozen=True, slots=True)
class WatchLauncher:
    """system -> LauncherWatch: shut the actor system down when ``pid`` is gone. Replies
    ``WatchingLauncher``."""

    pid: int
    interval_s: float = 0.2


@dataclass(frozen=True, slots=True)
class WatchingLauncher:
    """Reply to ``WatchLauncher``: the watcher's pid and its parent's (the Thespian admin)."""

    watcher_pid: int
    admin_pid: int


# --- internal: worker facts (Worker/Starter -> WorkerRegistry -> subscribers) -----------------

@dataclass(frozen=True, slots=True)
class WorkerReady:
    """A worker's process answered its ping: it takes requests at ``address``."""

    worker_id: str
    address: ActorAddress
    pid: int
    endpoint: str
    restarts: int
    started_at: float


@dataclass(frozen=True, slots=True)
class WorkerStartFailed:
    """A worker's process failed to start (import error, bad interpreter, startup timeout)."""

    worker_id: str
    error: SnakepitError


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """A worker (actor or process) is gone; its in-flight requests have failed."""

    worker_id: str
    reason: str
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerAbandoned:
    """A worker's Starter gave up (restart intensity reached); the slot stays empty until the
    WorkerSupervisor restarts the Starter."""

    worker_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PoolDegraded:
    """PoolRoot -> Pool: the WorkerSupervisor gave up; no worker will come back."""

    reason: str


# --- internal: the request path ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RunRequest:
    """Pool -> Worker: run ``request`` and reply to ``reply_to``; ``deadline_unix_s`` is final."""

    request: Execute
    reply_to: ActorAddress
    deadline_unix_s: float | None


@dataclass(frozen=True, slots=True)
class Checkin:
    """Worker -> Pool: ``request_id`` is done; ``ok`` is False when it failed. ``worker_lost``
    means the worker is going away and must not get more work. ``crash`` is set when the worker
    died under the request and did NOT reply: the Pool replies with it, or retries."""

    worker_id: str
    request_id: str
    ok: bool
    elapsed_ms: float
    worker_lost: bool = False
    crash: SnakepitError | None = None


# --- internal: process bookkeeping ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProcessSpawning:
    """Worker -> ProcessRegistry, before spawn: a process for ``worker_id`` is about to exist."""

    worker_id: str
    run_id: str
    pool_name: str


@dataclass(frozen=True, slots=True)
class ProcessSpawned:
    """Worker -> ProcessRegistry, after spawn: its identity (pid + create_time + run id)."""

    worker_id: str
    pid: int
    pgid: int
    create_time: float


@dataclass(frozen=True, slots=True)
class ProcessEnded:
    """Worker -> ProcessRegistry: the process of ``worker_id`` was stopped and reaped."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class StarterStarted:
    """WorkerSupervisor -> StarterRegistry: ``worker_id`` is owned by ``starter``."""

    worker_id: str
    starter: ActorAddress
