"""Messages inside one pool's actor tree: set-up (``Init*``), worker facts (Worker/Starter ->
WorkerRegistry -> subscribers) and process bookkeeping (Worker -> ProcessRegistry).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from snakepit_actors.config import PoolConfig
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages.api import LOCAL_NODE, ActorAddress

# --- internal: set-up -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InitPool:
    """PoolRoot -> Pool: configuration, collaborators, and whom to tell when started."""

    config: PoolConfig
    worker_registry: ActorAddress
    start_reply_to: ActorAddress
    report_progress: bool = False
    session_store: ActorAddress | None = None
    restarts: int = 0  # > 0: a Pool restarted under a running pool: rebuild, do not start
    announce_to: tuple[ActorAddress, ...] = ()  # told PoolReplaced once a restarted Pool runs
    worker_token: str = field(default="", repr=False)  # put into every LeaseGranted
    #: The DataPlane actor (None: none; ``PoolConfig.data_plane``): unary requests without a
    #: session go there (``tree/data_plane.py``)
    data_plane: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class InitDataPlane:
    """PoolRoot -> DataPlane: the pool's configuration, the Pool it leases worker slots from,
    and the pool's worker token (every gRPC call carries it)."""

    config: PoolConfig
    pool: ActorAddress
    worker_token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True, repr=False)
class DataPlaneServed:
    """DataPlane -> Pool: the forwarded requests ``request_ids`` were answered (sent in
    batches, at least every ``data_plane.SERVED_EVERY_S``); the Pool forgets them. What it has
    not heard of when the DataPlane dies, it fails with ``WorkerCrashedError``."""

    request_ids: tuple[str, ...]
    #: Requests waiting in the DataPlane beyond its lease requests (``PoolStats.queued`` adds it)
    waiting: int = 0

    def __repr__(self) -> str:  # short: Thespian formats every message it carries
        return f"DataPlaneServed({len(self.request_ids)}, waiting={self.waiting})"


@dataclass(frozen=True, slots=True)
class PoolReplaced:
    """A restarted Pool -> the pool's requester (the handle), SessionStore, Recycler, NodeWatch
    (``InitPool.announce_to``), once it has its ``InitPool``: the
    Pool actor died and a new one runs at ``pool`` (restart number ``restarts``). Its core was
    rebuilt from the WorkerRegistry's facts; what the old Pool queued is lost (the handle
    fails or re-sends it)."""

    pool: ActorAddress
    restarts: int = 1
    name: str = ""  # the pool's name (a node runs several)


#: The roles whose address ``ActorReplaced`` can announce (each a field of ``WorkerContext``
#: but "session_store" and "data_plane", which only the Pool sends to).
REPLACEABLE_ROLES = ("pool", "worker_registry", "process_registry", "starter_registry",
                     "session_store", "data_plane")


@dataclass(frozen=True, slots=True)
class ActorReplaced:
    """PoolRoot -> the actors that send to ``role`` (the Pool, the WorkerSupervisor, which
    passes it to its Starters, which pass it to their Workers; the Recycler, the NodeWatch):
    the actor playing ``role`` (one of ``REPLACEABLE_ROLES``) died and a new one runs at
    ``address``. A new registry starts empty: whoever it serves re-announces what it knows
    (a Worker its ``WorkerReady`` and its process, the WorkerSupervisor its Starters, the Pool
    its session pins)."""

    role: str
    address: ActorAddress
    notify: tuple[ActorAddress, ...] = ()  # tell these once switched (SessionStoreReplaced)


@dataclass(frozen=True, slots=True)
class SessionStoreReplaced:
    """Pool -> the pool's requester (the handle), once the Pool sends session commands to the
    new store (so a command sent after this one arrived cannot reach the dead store): the
    SessionStore died and was restarted.
    Session commands sent before it may never be answered (the handle fails them with
    ``PoolNotReadyError(reason="session_store_restarted")``); sessions come back empty (the Pool
    re-announces the ones it routes), their data and the global programs are lost."""

    restarts: int = 1


@dataclass(frozen=True, slots=True)
class DescribeTree:
    """anyone -> PoolRoot: which actor plays each role now. Replies ``TreeDescription``."""

    request_id: str


@dataclass(frozen=True, slots=True)
class TreeDescription:
    """PoolRoot's answer to ``DescribeTree``: ``(role, address)`` of each child now, in start
    order (a restarted child comes last), and how often each role was restarted."""

    request_id: str
    children: tuple[tuple[str, ActorAddress], ...]
    restarts: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class InitRegistry:
    """PoolRoot -> a registry actor: its pool's name (for logs). The ProcessRegistry also uses
    ``db_path`` (its sqlite file; "" = in memory only), ``owner_pid`` (whose death ends the
    run; 0 = the PoolRoot) and ``run_id`` (a restarted one re-reads that run's rows)."""

    pool_name: str
    db_path: str = ""
    owner_pid: int = 0
    run_id: str = ""


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
    worker_token: str = field(default="", repr=False)  # the pool's token (worker_token.py)

    def with_actor(self, role: str, address: ActorAddress) -> WorkerContext:
        """This context with ``role`` (an ``ActorReplaced`` role that is one of its fields)
        at ``address``; unchanged for any other role."""
        if role not in ("pool", "worker_registry", "process_registry", "starter_registry"):
            return self
        return replace(self, **{role: address})


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
    reannounced: bool = False  # the same process again, for a restarted WorkerRegistry


@dataclass(frozen=True, slots=True)
class WorkerStartFailed:
    """A worker's process failed to start (import error, bad interpreter, startup timeout)."""

    worker_id: str
    error: SnakepitError


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """A worker (actor or process) is gone; its in-flight requests have failed.
    ``node_lost``: the member node whose loss ended it ("" for any other exit)."""

    worker_id: str
    reason: str
    exit_code: int | None = None
    node_lost: str = ""


@dataclass(frozen=True, slots=True)
class WorkerAbandoned:
    """A worker's Starter gave up (restart intensity reached); the slot stays empty until the
    WorkerSupervisor restarts the Starter."""

    worker_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PoolDegraded:
    """PoolRoot -> Pool: the WorkerSupervisor gave up; no worker will come back. With
    ``restarting``, it was killed instead and a new one starts every worker afresh: requests
    on the old workers fail, queued ones wait for the new workers."""

    reason: str
    restarting: bool = False


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
