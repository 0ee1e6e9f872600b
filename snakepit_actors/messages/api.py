"""The public message protocol: what your own actor sends to a pool, and what it gets back.

    you  --StartPool------------>  PoolRoot   -> PoolStarted(pool) | PoolStartFailed(error)
    you  --Execute-------------->  Pool       -> ExecuteResult | ExecuteFailed   (one of them)
    you  --ExecuteBatch--------->  Pool       -> the same, one per Execute (or ExecuteReplies)
    you  --GetStats / ListWorkers->Pool       -> PoolStats / WorkerList
    you  --ClosePool------------>  Pool       -> PoolClosed  (queued requests fail PoolClosedError)
    you  --RequestRecycle------->  Pool       -> RecycleRequested

Importable on its own: it needs only ``snakepit_actors.config`` and ``snakepit_actors.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from snakepit_actors.config import PoolConfig
from snakepit_actors.errors import SnakepitError

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
    process_db: str = ""  # sqlite file of the persisted process table; "" = in memory only
    owner_pid: int = 0    # the launching process: the run is over when it is gone (0 = PoolRoot)
    report_progress: bool = False  # also send ``StartProgress`` as each worker becomes Ready
    worker_token: str = field(default="", repr=False)  # every gRPC call carries it; "" = new


@dataclass(frozen=True, slots=True)
class PoolStarted:
    """The pool is ready: send ``Execute`` to ``pool``."""

    pool: ActorAddress
    name: str
    workers: int


@dataclass(frozen=True, slots=True)
class StartProgress:
    """Pool -> whoever sent ``StartPool(report_progress=True)``: ``workers_ready`` of
    ``pool_size`` workers are Ready (one per worker, before ``PoolStarted``)."""

    workers_ready: int
    pool_size: int


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
    #: W3C trace context (traceparent, tracestate) sent to the worker as gRPC metadata, so
    #: the tool's spans join the caller's trace (OpenTelemetry; () = none)
    trace_context: tuple[tuple[str, str], ...] = ()
    #: The sender also accepts its replies grouped: ``ExecuteReplies`` (each reply is still
    #: sent exactly once). Fewer messages when many requests are in flight; off by default.
    batch_replies: bool = False

    def __str__(self) -> str:  # short: Thespian formats every message it carries
        return f"Execute({self.request_id!r}, {self.tool!r})"


@dataclass(frozen=True, slots=True)
class ExecuteBatch:
    """Several ``Execute`` in one message: one transport hop instead of many (the TCP base
    carries one message per sender->target pair at a time)."""

    requests: tuple[Execute, ...]

    def __str__(self) -> str:
        return f"ExecuteBatch({len(self.requests)})"


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    """The tool's return value (JSON-decoded)."""

    request_id: str
    result: Any
    worker_id: str
    elapsed_ms: float

    def __str__(self) -> str:
        return f"ExecuteResult({self.request_id!r}, {self.worker_id!r})"


@dataclass(frozen=True, slots=True)
class ExecuteFailed:
    """The request failed; ``error`` is a ``SnakepitError`` subclass that says whose fault."""

    request_id: str
    error: SnakepitError

    def __str__(self) -> str:
        return f"ExecuteFailed({self.request_id!r}, {type(self.error).__name__})"


@dataclass(frozen=True, slots=True)
class ExecuteReplies:
    """Replies to several ``Execute(batch_replies=True)`` in one message (one per request;
    a request's reply comes either alone or in one of these, never both)."""

    replies: tuple[ExecuteResult | ExecuteFailed, ...]

    def __str__(self) -> str:
        return f"ExecuteReplies({len(self.replies)})"


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """Values a streaming tool yielded (``seq`` counts messages from 0). The stream ends with
    ``ExecuteResult(result=<number of values>)`` or ``ExecuteFailed``."""

    request_id: str
    seq: int
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Stop ``request_id`` (e.g. the consumer went away): a queued one never runs; a running
    one's tool is told to stop (it sees ``ctx.cancelled``; Snakepit's workers cannot be told: their
    tool runs to its end). A cancelled request still gets its one final reply
    (``ExecuteFailed(RequestCancelledError)``); nothing if it was done already."""

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
    recycled: int = 0  # workers replaced by the lifecycle policy or ``RequestRecycle``
    latency_buckets_ms: tuple[tuple[float, int], ...] = ()  # (upper bound, cumulative count)
    latency_sum_ms: float = 0.0  # of every request counted in the buckets
    session_moves: int = 0  # session requests that ran on another worker than their previous
    lost_workers: int = 0  # workers shown lost / parked / abandoned: no process, none starting


@dataclass(frozen=True, slots=True)
class ListWorkers:
    """Ask the Pool for a ``WorkerList`` (echoes ``request_id``)."""

    request_id: str = ""


#: ``WorkerReady.node`` / ``WorkerInfo.node`` of a worker on the pool's own system.
LOCAL_NODE = "local"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker: ``pid`` is the external process's OS pid, None while it has no process
    (after an exit, until the next one is ready: a dead process's pid is never shown);
    ``state`` is one of starting / ready / busy / unhealthy / stopping, or, with no process
    and none being started: lost (its member node was lost), parked (no member node matches
    its placement: ``reason`` "no_matching_node") or abandoned (restarts kept failing).
    ``reason`` says why a worker is in its state after an exit ("" while it runs)."""

    worker_id: str
    pid: int | None
    state: str
    node: str
    endpoint: str
    requests: int
    restarts: int
    started_at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WorkerList:
    """Reply to ``ListWorkers``, ordered by worker id."""

    workers: tuple[WorkerInfo, ...]
    request_id: str = ""


# --- public: lifecycle (recycling) --------------------------------------------------------------

#: ``RecycleWorker`` reasons that replace a process gracefully: the replacement starts before
#: the old process stops, and the old one is drained first.
GRACEFUL_RECYCLE_REASONS = frozenset({"max_requests", "ttl", "memory", "manual",
                                      "node_draining", "rebalance"})
#: Graceful reasons that move the worker instead of swapping its process in place: its member
#: node is draining, so the Worker finishes what it runs and exits; its Starter places the
#: next incarnation on another member.
MOVE_RECYCLE_REASONS = frozenset({"node_draining", "rebalance"})


@dataclass(frozen=True, slots=True)
class RequestRecycle:
    """Replace ``worker_id``'s process gracefully: the Pool stops giving it work, recalls its
    leases, and the Worker starts the replacement before it stops the drained old process.
    ``reason``: one of ``GRACEFUL_RECYCLE_REASONS``. With ``request_id``, the Pool replies
    ``RecycleRequested``."""

    worker_id: str
    reason: str = "manual"
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class RecycleRequested:
    """Reply to ``RequestRecycle``: ``accepted`` is False (``detail`` says why) when the worker
    is unknown, not ready, or already being recycled."""

    request_id: str
    worker_id: str
    accepted: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class InitRecycler:
    """PoolRoot -> Recycler: watch the pool's workers (facts from ``worker_registry``) against
    ``config``'s worker_ttl / worker_memory_mb, and tell ``pool`` ``RequestRecycle``."""

    config: PoolConfig
    pool: ActorAddress
    worker_registry: ActorAddress
