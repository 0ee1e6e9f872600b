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

The direct data path (leases; DESIGN §3). A lease is one worker slot lent to a client, which
then calls the worker's gRPC endpoint itself::

    client --LeaseBatch(requests, withdrawn, returns, usage)--> Pool   (one hop, many items)
    Pool   --LeaseGranted | LeaseRefused-->  client        (one reply per RequestLease)
    Pool   --LeaseRevoked-->  client    the worker is gone: stop using the lease (the error
                                        says how the process died)
    Pool   --LeaseRecalled--> client    give the lease back when its current call ends
    Pool   --RecycleWorker--> Worker    a direct call timed out on it / could not reach it
    Worker --WorkerProcessLost--> Pool  its process died: revoke every lease on it
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
    recycled: int = 0  # workers replaced by the lifecycle policy or ``RequestRecycle``
    latency_buckets_ms: tuple[tuple[float, int], ...] = ()  # (upper bound, cumulative count)
    latency_sum_ms: float = 0.0  # of every request counted in the buckets


@dataclass(frozen=True, slots=True)
class ListWorkers:
    """Ask the Pool for a ``WorkerList`` (echoes ``request_id``)."""

    request_id: str = ""


#: ``WorkerReady.node`` / ``WorkerInfo.node`` of a worker on the pool's own system.
LOCAL_NODE = "local"


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
    report_progress: bool = False
    session_store: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class InitRegistry:
    """PoolRoot -> a registry actor: its pool's name (for logs). The ProcessRegistry also uses
    ``db_path`` (its sqlite file; "" = in memory only) and ``owner_pid`` (whose death ends the
    run; 0 = the PoolRoot)."""

    pool_name: str
    db_path: str = ""
    owner_pid: int = 0


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
    node_watch: ActorAddress | None = None  # places workers on member nodes (placement)


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
    """Starter -> Worker: start the external process. ``restarts`` counts earlier incarnations.
    On a member node (placement), ``node`` names it and ``node_agent`` is the pool's agent
    there, which stops the Worker if the pool's node goes silent."""

    context: WorkerContext
    worker_id: str
    restarts: int
    node: str = ""
    node_agent: ActorAddress | None = None


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
    node: str = LOCAL_NODE  # the member node it runs on; LOCAL_NODE: the pool's own system


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
    """Worker -> ProcessRegistry: the process ``pid`` of ``worker_id`` was stopped and reaped
    (0 = whatever process the registry holds for it)."""

    worker_id: str
    pid: int = 0


@dataclass(frozen=True, slots=True)
class StarterStarted:
    """WorkerSupervisor -> StarterRegistry: ``worker_id`` is owned by ``starter``."""

    worker_id: str
    starter: ActorAddress


# --- internal: the direct data path (leases) --------------------------------------------------

@dataclass(frozen=True, slots=True)
class RequestLease:
    """Client -> Pool: lend me one worker slot. Queued FIFO with ``Execute`` (same max_queue,
    same affinity hint for ``session_id``); exactly one reply: ``LeaseGranted`` or
    ``LeaseRefused``. ``request_id`` becomes the lease's id. A lease request never expires in
    the Pool's queue: the client keeps each caller's queue deadline and withdraws requests it
    no longer needs (``LeaseBatch.withdrawn``). ``holder_pid``: see ``LeaseBatch``."""

    request_id: str
    session_id: str | None = None
    holder_pid: int = 0


@dataclass(frozen=True, slots=True)
class ReturnLease:
    """Client -> Pool: the lease ``request_id`` on ``worker_id`` ends.

    ``recycle``: a call on it passed its deadline; the worker must be recycled (after its other
    leases come back) to cancel the stuck tool. ``worker_lost``: a call on it failed as if the
    process were gone (``reason`` says how); the Pool stops granting that worker, asks its
    Worker to check (and replace) the process, and keeps the lease until it sends
    ``LeaseRevoked`` with the process's exit cause."""

    request_id: str
    worker_id: str
    recycle: bool = False
    worker_lost: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WorkerUsage:
    """Direct-path calls one client ran on ``worker_id`` since its last report, and the sessions
    they carried (the Pool's affinity hint learns them)."""

    worker_id: str
    requests: int
    sessions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, repr=False)
class UsageReport:
    """Client -> Pool: counters of the direct-path requests finished since the last report, so
    ``PoolStats`` and ``WorkerInfo.requests`` cover both paths. Latencies in ms: an evenly
    thinned sample of them, bounded. (A short ``repr``: Thespian formats every message it
    sends, even with debug logging off.)"""

    requests: int
    errors: int
    queue_timeouts: int
    latencies_ms: tuple[float, ...] = ()
    workers: tuple[WorkerUsage, ...] = ()

    def __repr__(self) -> str:
        return (f"UsageReport(requests={self.requests}, errors={self.errors}, "
                f"queue_timeouts={self.queue_timeouts}, latencies={len(self.latencies_ms)}, "
                f"workers={len(self.workers)})")


@dataclass(frozen=True, slots=True, repr=False)
class LeaseBatch:
    """Client -> Pool: lease traffic in one transport hop. Handled in field order: withdrawn
    lease requests leave the queue (if still queued; a grant already on its way is simply
    returned later), returns free slots for what already waits, new requests queue behind,
    then the usage report is counted.

    ``holder_pid``: the sending client's OS pid on the Pool's host (0: not given). The Pool
    then watches that process while it holds leases; when it dies, its leases end as if
    returned with ``recycle`` (a call it left running is cancelled by replacing the worker's
    process) and its queued lease requests are dropped."""

    requests: tuple[RequestLease, ...] = ()
    withdrawn: tuple[str, ...] = ()
    returns: tuple[ReturnLease, ...] = ()
    usage: UsageReport | None = None
    holder_pid: int = 0

    def __repr__(self) -> str:  # short: see UsageReport
        return (f"LeaseBatch(requests={len(self.requests)}, withdrawn={len(self.withdrawn)}, "
                f"returns={len(self.returns)}, usage={self.usage!r}, "
                f"holder_pid={self.holder_pid})")


@dataclass(frozen=True, slots=True)
class LeaseGranted:
    """Pool -> client: the lease ``request_id`` is one slot of ``worker_id``, served at
    ``endpoint`` by the process ``pid`` (a new pid means a new process behind the same
    endpoint: open a new channel)."""

    request_id: str
    worker_id: str
    endpoint: str
    pid: int


@dataclass(frozen=True, slots=True)
class LeaseRefused:
    """Pool -> client: the lease request ``request_id`` was refused (``PoolSaturatedError``,
    ``PoolClosedError``, ``PoolNotReadyError``); no slot was taken."""

    request_id: str
    error: SnakepitError


@dataclass(frozen=True, slots=True)
class LeaseRevoked:
    """Pool -> client: the worker of lease ``request_id`` is gone (or replaced). The lease ended;
    do not return it. A call that failed on it fails with ``error`` (a ``WorkerCrashedError``
    whose details carry worker_id, exit_code and signal when known)."""

    request_id: str
    worker_id: str
    error: SnakepitError


@dataclass(frozen=True, slots=True)
class LeaseRecalled:
    """Pool -> client: return lease ``request_id`` as soon as its current call ends (its worker
    is draining before a recycle)."""

    request_id: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class RecycleWorker:
    """Pool -> Worker: replace your process. ``reason`` "request_timeout": a direct call passed
    its deadline on it; drain, then recycle (as after the Worker's own DEADLINE_EXCEEDED).
    ``reason`` "unreachable": a client could not reach the process (``detail``); treat it as
    dead now (report ``WorkerProcessLost`` and exit). ``reason`` in ``GRACEFUL_RECYCLE_REASONS``
    (the lifecycle policy or a manual recycle): start the replacement process now, and swap it
    in once the old one is drained; ``drained=False`` means the Pool still waits for
    direct-path leases on it (another ``RecycleWorker`` with ``drained=True`` follows)."""

    worker_id: str
    reason: str
    detail: str = ""
    drained: bool = True


@dataclass(frozen=True, slots=True)
class WorkerProcessLost:
    """Worker -> Pool: the process of ``worker_id`` died or was given up; ``error`` is the
    ``WorkerCrashedError`` (worker_id, exit_code, signal) every lease on it is revoked with. Sent
    after the Worker's own crash ``Checkin``s; the Worker exits next."""

    worker_id: str
    error: SnakepitError


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


# --- public: the node directory (status / exec from another process) ----------------------------

@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One pool of a node: its Pool actor (requests, stats) and PoolRoot (the tree)."""

    name: str
    pool: ActorAddress
    root: ActorAddress
    pool_size: int
    adapter: str
    run_dir: str = ""


@dataclass(frozen=True, slots=True)
class RegisterPool:
    """node -> NodeDirectory: ``entry`` runs in this node."""

    entry: PoolEntry


@dataclass(frozen=True, slots=True)
class DescribeNode:
    """Ask the NodeDirectory for a ``NodeDescription`` (echoes ``request_id``)."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class NodeDescription:
    """Reply to ``DescribeNode``: the node's name, its process (pid) and its pools."""

    name: str
    node_pid: int
    started_at: float
    pools: tuple[PoolEntry, ...]
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class InitNodeDirectory:
    """node -> NodeDirectory: the node's name and pid."""

    name: str
    node_pid: int
    started_at: float


# --- public: sessions and global programs (session_store.py; DESIGN §6) -----------------------
#
#    you  --CreateSession / GetSession / DeleteSession / ListSessions / UpdateSessionData-->
#         Pool (forwards) --> SessionStore  -> SessionInfo | SessionList | SessionDeleted
#                                              | SessionFailed (one of them, to reply_to)
#    you  --SetProgram / GetProgram / DeleteProgram--> Pool --> SessionStore -> ProgramValue
#
# Internals: Pool --SessionsTouched--> SessionStore (batched, about once a second);
# SessionStore --SessionsEnded--> Pool --EndWorkerSession--> Worker (CleanupSession over gRPC).

@dataclass(frozen=True, slots=True)
class SessionCommand:
    """Base of every message the Pool forwards to its SessionStore (the reply goes to
    ``reply_to``, or to the sender when it is None)."""


@dataclass(frozen=True, slots=True)
class CreateSession(SessionCommand):
    """Create ``session_id`` (idempotent: an existing session is touched and returned).
    ``ttl_s`` None: the pool's ``session_ttl``. -> ``SessionInfo`` or ``SessionFailed``
    (``SessionQuotaError`` past ``max_sessions``)."""

    request_id: str
    session_id: str
    ttl_s: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class GetSession(SessionCommand):
    """-> ``SessionInfo`` (touches the session) or ``SessionFailed(SessionNotFoundError)``."""

    request_id: str
    session_id: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class UpdateSessionData(SessionCommand):
    """Merge ``data`` into the session's host-side data. -> ``SessionInfo`` or
    ``SessionFailed(SessionNotFoundError)``."""

    request_id: str
    session_id: str
    data: Mapping[str, Any]
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class DeleteSession(SessionCommand):
    """Forget the session; its worker frees its per-session state. -> ``SessionDeleted``."""

    request_id: str
    session_id: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class ListSessions(SessionCommand):
    """-> ``SessionList`` (every live session, oldest first)."""

    request_id: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class SetProgram(SessionCommand):
    """Store the global program ``name`` (a JSON-like value shared by all sessions).
    -> ``ProgramValue``."""

    request_id: str
    name: str
    value: Any
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class GetProgram(SessionCommand):
    """-> ``ProgramValue`` (``found`` False when there is no such program)."""

    request_id: str
    name: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class DeleteProgram(SessionCommand):
    """-> ``ProgramValue`` with the value removed (``found`` False if there was none)."""

    request_id: str
    name: str
    reply_to: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A snapshot of one session. ``worker_id``: the worker it last ran on (None: not yet)."""

    session_id: str
    created_at_unix_s: float
    last_accessed_unix_s: float
    ttl_s: float
    worker_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class SessionList:
    """The reply to ``ListSessions``."""

    sessions: tuple[SessionInfo, ...]
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class SessionDeleted:
    """The reply to ``DeleteSession``: ``existed`` False if there was no such session."""

    request_id: str
    session_id: str
    existed: bool


@dataclass(frozen=True, slots=True)
class ProgramValue:
    """The reply to ``SetProgram`` / ``GetProgram`` / ``DeleteProgram``."""

    request_id: str
    name: str
    value: Any
    found: bool


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """A session command failed (``SessionNotFoundError``, ``SessionQuotaError``, ...)."""

    request_id: str
    error: SnakepitError


@dataclass(frozen=True, slots=True)
class InitSessionStore:
    """PoolRoot -> SessionStore: the pool's config (TTL, quota, sweep) and its Pool."""

    config: PoolConfig
    pool: ActorAddress


@dataclass(frozen=True, slots=True)
class SessionsTouched:
    """Pool -> SessionStore: these ``(session_id, worker_id)`` ran at about ``at_unix_s``."""

    touches: tuple[tuple[str, str], ...]
    at_unix_s: float


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """SessionStore -> Pool: these sessions were deleted or expired (``reason``); drop their
    pins and free their state on their workers."""

    session_ids: tuple[str, ...]
    reason: str
    worker_ids: tuple[str, ...] = ()  # the worker each last ran on, as far as the store knows


@dataclass(frozen=True, slots=True)
class EndWorkerSession:
    """Pool -> Worker: call ``CleanupSession(session_id)`` on your process (fire and forget)."""

    session_id: str


# --- placement on member nodes (multi-host; node_watch.py, node_agent.py, member.py) ----------
#
#    Starter   --PlaceWorker-->  NodeWatch   --WorkerPlaced(node, agent)--> Starter
#    NodeWatch --NodeLost(node)--> Starter    (a member stopped answering: its Worker is lost)
#    NodeWatch --NodePing-->  NodeAgent (one per pool on each member) --NodePong--> NodeWatch
#    Worker (on a member) --WorkerOnNode--> NodeAgent   (stopped by it if the pool goes silent)


@dataclass(frozen=True, slots=True)
class InitNodeWatch:
    """PoolRoot -> NodeWatch: place ``config``'s workers on convention members whose
    capabilities match ``config.placement``, and heartbeat those members. Facts go to
    ``worker_registry`` (start failures when no member matches in time); ``pool`` is asked to
    move the workers off a draining member."""

    config: PoolConfig
    worker_registry: ActorAddress
    secret: str = ""
    pool: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class PlaceWorker:
    """Starter -> NodeWatch: which member should run ``worker_id`` next? Answered with
    ``WorkerPlaced`` once a live matching member exists (at once if one does)."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class WorkerPlaced:
    """NodeWatch -> Starter: create the Worker on ``node`` (``snakepit_node`` capability);
    ``agent`` is the pool's NodeAgent there."""

    worker_id: str
    node: str
    agent: ActorAddress


@dataclass(frozen=True, slots=True)
class NodeLost:
    """NodeWatch -> Starter: member ``node`` stopped answering heartbeats (or left the
    convention); a Worker there is lost: fail its requests and place it again."""

    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class InitNodeAgent:
    """NodeWatch -> NodeAgent (created on member ``node``): answer pings; if none comes for
    ``silence_s``, the pool's node is gone: stop every Worker registered here, then exit."""

    pool_name: str
    node: str
    silence_s: float


@dataclass(frozen=True, slots=True)
class NodePing:
    """NodeWatch -> NodeAgent, every ``node_heartbeat_s``: ``workers`` are the pool's
    workers placed on that member; a Worker registered there but missing from two pings in a
    row was placed elsewhere meanwhile (the member was cut off or paused): the agent stops it."""

    seq: int
    sent_at: float
    workers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodePong:
    """NodeAgent -> NodeWatch: the answer to ``NodePing`` ``seq``; ``workers`` registered."""

    node: str
    seq: int
    sent_at: float
    workers: int
    pid: int


@dataclass(frozen=True, slots=True)
class WorkerOnNode:
    """Worker (on a member) -> its pool's NodeAgent there: stop me if the pool goes silent."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class ListMembers:
    """anyone -> NodeWatch: the pool's member nodes. Replies ``MemberList``."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member node as a pool sees it: ``state`` joining / live / dead; ``silent_s``
    since its last heartbeat answer; ``workers`` placed on it; ``capabilities`` (no secret)."""

    node: str
    state: str
    silent_s: float
    workers: int
    capabilities: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MemberList:
    """Reply to ``ListMembers``: matching members, and the others with why they do not
    qualify (``ignored``: node -> reason)."""

    members: tuple[MemberInfo, ...]
    ignored: Mapping[str, str]
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class AgentHere:
    """NodeAgent -> its member's MemberDirectory (globalName): tell me when the member drains."""

    pool_name: str


@dataclass(frozen=True, slots=True)
class DrainMember:
    """member CLI -> MemberDirectory -> every NodeAgent there: this member is leaving; have
    the pools move their workers elsewhere. The directory replies ``DrainStarted``."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class DrainStarted:
    """MemberDirectory -> member CLI: ``agents`` NodeAgents (one per pool) were told."""

    agents: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class NodeDraining:
    """NodeAgent -> NodeWatch, then NodeWatch -> the Starters placed there: member ``node``
    is leaving. The NodeWatch places nothing new there and asks the Pool to move its workers
    (``RequestRecycle(reason="node_draining")``); each Starter places its next Worker
    elsewhere once the current one has finished its requests and exited. NodeWatch also sends
    it to one Starter alone to move its worker for balance (``reason="rebalance"``)."""

    node: str
