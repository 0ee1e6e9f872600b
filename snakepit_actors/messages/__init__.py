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

The direct data path (leases; docs/architecture.md, "Two data paths"). A lease is one worker
slot lent to a client, which then calls the worker's gRPC endpoint itself::

    client --LeaseBatch(requests, withdrawn, returns, usage)--> Pool   (one hop, many items)
    Pool   --LeaseGranted | LeaseRefused-->  client        (one reply per RequestLease)
    Pool   --LeaseRevoked-->  client    the worker is gone: stop using the lease (the error
                                        says how the process died)
    Pool   --LeaseRecalled--> client    give the lease back when its current call ends
    Pool   --RecycleWorker--> Worker    a direct call timed out on it / could not reach it
    Worker --WorkerProcessLost--> Pool  its process died: revoke every lease on it
"""

from __future__ import annotations

from snakepit_actors.messages.api import (
    GRACEFUL_RECYCLE_REASONS,
    LOCAL_NODE,
    MOVE_RECYCLE_REASONS,
    ActorAddress,
    CancelRequest,
    ClosePool,
    Execute,
    ExecuteBatch,
    ExecuteFailed,
    ExecuteResult,
    GetStats,
    InitRecycler,
    ListWorkers,
    PoolClosed,
    PoolStarted,
    PoolStartFailed,
    PoolStats,
    RecycleRequested,
    RequestRecycle,
    StartPool,
    StartProgress,
    StreamChunk,
    WorkerInfo,
    WorkerList,
)
from snakepit_actors.messages.leases import (
    LeaseBatch,
    LeaseGranted,
    LeaseRecalled,
    LeaseRefused,
    LeaseRevoked,
    RecycleWorker,
    RequestLease,
    ReturnLease,
    UsageReport,
    WorkerProcessLost,
    WorkerUsage,
)
from snakepit_actors.messages.node import (
    DescribeNode,
    InitNodeDirectory,
    NodeDescription,
    PoolEntry,
    RegisterPool,
)
from snakepit_actors.messages.placement import (
    AgentHere,
    DrainMember,
    DrainStarted,
    InitNodeAgent,
    InitNodeWatch,
    ListMembers,
    MemberInfo,
    MemberList,
    NodeDraining,
    NodeLost,
    NodePing,
    NodePong,
    PlaceWorker,
    WorkerOnNode,
    WorkerPlaced,
)
from snakepit_actors.messages.requests import (
    Checkin,
    RunRequest,
)
from snakepit_actors.messages.sessions import (
    CreateSession,
    DeleteProgram,
    DeleteSession,
    EndWorkerSession,
    GetProgram,
    GetSession,
    InitSessionStore,
    ListSessions,
    ProgramValue,
    SessionCommand,
    SessionDeleted,
    SessionFailed,
    SessionInfo,
    SessionList,
    SessionsEnded,
    SessionsTouched,
    SetProgram,
    UpdateSessionData,
)
from snakepit_actors.messages.tree import (
    InitPool,
    InitRegistry,
    InitStarter,
    InitWorker,
    InitWorkerSupervisor,
    PoolDegraded,
    ProcessEnded,
    ProcessSpawned,
    ProcessSpawning,
    StarterStarted,
    SubscribeWorkers,
    WatchingLauncher,
    WatchLauncher,
    WorkerAbandoned,
    WorkerContext,
    WorkerExited,
    WorkerReady,
    WorkerStartFailed,
)

__all__ = [
    "GRACEFUL_RECYCLE_REASONS",
    "LOCAL_NODE",
    "MOVE_RECYCLE_REASONS",
    "ActorAddress",
    "AgentHere",
    "CancelRequest",
    "Checkin",
    "ClosePool",
    "CreateSession",
    "DeleteProgram",
    "DeleteSession",
    "DescribeNode",
    "DrainMember",
    "DrainStarted",
    "EndWorkerSession",
    "Execute",
    "ExecuteBatch",
    "ExecuteFailed",
    "ExecuteResult",
    "GetProgram",
    "GetSession",
    "GetStats",
    "InitNodeAgent",
    "InitNodeDirectory",
    "InitNodeWatch",
    "InitPool",
    "InitRecycler",
    "InitRegistry",
    "InitSessionStore",
    "InitStarter",
    "InitWorker",
    "InitWorkerSupervisor",
    "LeaseBatch",
    "LeaseGranted",
    "LeaseRecalled",
    "LeaseRefused",
    "LeaseRevoked",
    "ListMembers",
    "ListSessions",
    "ListWorkers",
    "MemberInfo",
    "MemberList",
    "NodeDescription",
    "NodeDraining",
    "NodeLost",
    "NodePing",
    "NodePong",
    "PlaceWorker",
    "PoolClosed",
    "PoolDegraded",
    "PoolEntry",
    "PoolStartFailed",
    "PoolStarted",
    "PoolStats",
    "ProcessEnded",
    "ProcessSpawned",
    "ProcessSpawning",
    "ProgramValue",
    "RecycleRequested",
    "RecycleWorker",
    "RegisterPool",
    "RequestLease",
    "RequestRecycle",
    "ReturnLease",
    "RunRequest",
    "SessionCommand",
    "SessionDeleted",
    "SessionFailed",
    "SessionInfo",
    "SessionList",
    "SessionsEnded",
    "SessionsTouched",
    "SetProgram",
    "StartPool",
    "StartProgress",
    "StarterStarted",
    "StreamChunk",
    "SubscribeWorkers",
    "UpdateSessionData",
    "UsageReport",
    "WatchLauncher",
    "WatchingLauncher",
    "WorkerAbandoned",
    "WorkerContext",
    "WorkerExited",
    "WorkerInfo",
    "WorkerList",
    "WorkerOnNode",
    "WorkerPlaced",
    "WorkerProcessLost",
    "WorkerReady",
    "WorkerStartFailed",
    "WorkerUsage",
]
