"""The direct data path (leases). A lease is one worker slot lent to a client, which then
calls the worker's gRPC endpoint itself::

    client --LeaseBatch(requests, withdrawn, returns, usage)--> Pool   (one hop, many items)
    Pool   --LeaseGranted | LeaseRefused-->  client        (one reply per RequestLease)
    Pool   --LeaseRevoked-->  client    the worker is gone: stop using the lease (the error
                                        says how the process died)
    Pool   --LeaseRecalled--> client    give the lease back when its current call ends
    Pool   --RecycleWorker--> Worker    a direct call timed out on it / could not reach it
    Worker --WorkerProcessLost--> Pool  its process died: revoke every lease on it
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snakepit_actors.errors import SnakepitError

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
    session_moves: int = 0  # session requests that ran on another worker than the previous
    saturated: int = 0  # callers the client refused itself: max_queue of its own waited

    def __repr__(self) -> str:
        return (f"UsageReport(requests={self.requests}, errors={self.errors}, "
                f"queue_timeouts={self.queue_timeouts}, latencies={len(self.latencies_ms)}, "
                f"workers={len(self.workers)}, session_moves={self.session_moves}, "
                f"saturated={self.saturated})")


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
    endpoint: open a new channel). Every call to it must carry ``token`` (the pool's;
    ``snakepit_actors.worker_token.with_token``)."""

    request_id: str
    worker_id: str
    endpoint: str
    pid: int
    token: str = field(default="", repr=False)


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
