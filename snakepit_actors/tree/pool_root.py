"""PoolRoot actor: the top of one pool's tree; starts it, restarts its children, stops it.

    PoolRoot (this; one per pool instance; one_for_one over its children, core/root_plan.py)
     ├─ WorkerRegistry   ├─ ProcessRegistry   ├─ StarterRegistry   ├─ SessionStore
     ├─ Pool
     ├─ DataPlane (with data_plane: leases worker slots, calls gRPC for unary requests)
     ├─ WorkerSupervisor (one_for_one)  -> Starter_i -> Worker_i -> external process_i
     ├─ Recycler (only with worker_ttl / worker_memory_mb)
     ├─ LauncherWatch (when the launcher's pid is known)
     └─ NodeWatch (only with a placement: workers run on convention members)

``StartPool`` creates the children, wires them with ``Init…`` messages and lets the Pool answer
the requester (``PoolStarted`` / ``PoolStartFailed``). ``ActorExitRequest`` to the PoolRoot stops
the whole tree (Thespian stops children recursively; Workers stop their processes).

When a child dies, ``RootPlan`` decides (``docs/supervision.md`` has the table and the reasons):
a new one starts with the same ``Init…`` messages and the current addresses of its siblings,
and every actor that sends to it learns its address (``ActorReplaced``; the WorkerSupervisor
passes it down to its Starters and Workers). A new registry starts empty and is rebuilt by
those who feed it: Workers re-announce their ``WorkerReady`` and their process, Starters
report workers between lives, the WorkerSupervisor its Starters, the Pool its session pins. A
new Pool rebuilds from the WorkerRegistry and announces itself (``PoolReplaced``). A killed
WorkerSupervisor is restarted (every worker starts afresh); one that escalated
(``SupervisorEscalated``) or died too often leaves the pool ``degraded``. More than
``ROOT_MAX_RESTARTS`` deaths of one role within ``ROOT_MAX_SECONDS``, or the death of the
NodeWatch (its placements are not rebuilt), make the PoolRoot stop the whole tree at once
(``pool.failed``); the Python handle watches this process and fails its callers with
``PoolClosedError(reason="pool_tree_gone")``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from dataclasses import replace
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, ChildActorExited

from snakepit_actors.core.lifecycle import RecyclePolicy
from snakepit_actors.core.root_plan import Degrade, Fail, Restart, RootPlan
from snakepit_actors.messages import (
    ActorReplaced,
    DescribeTree,
    InitDataPlane,
    InitNodeWatch,
    InitPool,
    InitRecycler,
    InitRegistry,
    InitSessionStore,
    InitWorkerSupervisor,
    PoolDegraded,
    StartPool,
    TreeDescription,
    WatchingLauncher,
    WatchLauncher,
    WorkerContext,
)
from snakepit_actors.proctitle import bind_actor_process
from snakepit_actors.telemetry import bind_context, get_logger, relay_events
from snakepit_actors.tree.fork_warmup import warm_for_workers
from snakepit_actors.worker_token import new_token
from snakepit_supervision.messages import SupervisorEscalated

log = get_logger("pool_root")

#: The actor class of each role.
ACTORS = {
    "worker_registry": "snakepit_actors.tree.worker_registry.WorkerRegistry",
    "process_registry": "snakepit_actors.tree.process_registry.ProcessRegistry",
    "starter_registry": "snakepit_actors.tree.starter_registry.StarterRegistry",
    "session_store": "snakepit_actors.tree.session_store.SessionStore",
    "pool": "snakepit_actors.tree.pool.Pool",
    "data_plane": "snakepit_actors.tree.data_plane.DataPlane",
    "worker_supervisor": "snakepit_actors.tree.worker_supervisor.WorkerSupervisor",
    "recycler": "snakepit_actors.tree.recycler.Recycler",
    "launcher_watch": "snakepit_actors.tree.launcher_watch.LauncherWatch",
    "node_watch": "snakepit_actors.multihost.node_watch.NodeWatch",
}
REGISTRIES = ("worker_registry", "process_registry", "starter_registry", "session_store")


class PoolRoot(ActorTypeDispatcher):
    """Creates, wires and restarts one pool's actors."""

    def __init__(self) -> None:
        super().__init__()
        self._children: list[tuple[Any, str]] = []  # (address, role); compare with ==
        self._stopping = False
        self._own_run_dir = ""
        self._start: StartPool | None = None
        self._init_pool: InitPool | None = None  # what a restarted Pool is sent
        self._requester: Any = None  # the handle: told PoolReplaced (and by the Pool,
        # SessionStoreReplaced)
        self._plan = RootPlan()
        self._worker_context: WorkerContext | None = None  # what a new WorkerSupervisor gets

    # --- start ----------------------------------------------------------------------------------

    def receiveMsg_StartPool(self, msg: StartPool, sender: Any) -> None:
        cfg = msg.config
        bind_actor_process("PoolRoot", pool=cfg.name)
        bind_context(pool=cfg.name)  # every actor forked below inherits it
        if multiprocessing.parent_process() is not None:  # a forked actor, not the caller
            warm_for_workers(cfg.protocol)  # the Starters and Workers share, not copy, it
        msg = replace(msg, run_dir=msg.run_dir or self._make_run_dir(cfg.name),
                      run_id=msg.run_id or uuid.uuid4().hex[:12],
                      worker_token=msg.worker_token or new_token())
        if msg.owner_pid and os.getpid() != msg.owner_pid:  # (simpleSystemBase: the caller)
            relay_events(msg.run_dir)  # events go to the owner's subscribers (event_relay.py)
        self._start, self._requester = msg, sender
        for role in REGISTRIES:
            self._start_child(role)
        pool = self._child("pool")
        data_plane = self._start_child("data_plane") if cfg.data_plane else None
        self._init_pool = InitPool(cfg, self._address("worker_registry"), sender,
                                   report_progress=msg.report_progress,
                                   session_store=self._address("session_store"),
                                   worker_token=msg.worker_token, data_plane=data_plane)
        self.send(self._address("session_store"), InitSessionStore(cfg, pool))
        self.send(pool, self._init_pool)
        if cfg.placement:
            self.send(self._child("node_watch"), InitNodeWatch(
                cfg, self._address("worker_registry"), cfg.system.secret, pool))
        self._worker_context = WorkerContext(
            config=cfg, run_id=msg.run_id, run_dir=msg.run_dir, pool=pool,
            worker_registry=self._address("worker_registry"),
            process_registry=self._address("process_registry"),
            starter_registry=self._address("starter_registry"),
            node_watch=self._address("node_watch"), worker_token=msg.worker_token)
        self._start_child("worker_supervisor")
        if RecyclePolicy.from_config(cfg).needs_sampling:
            self._start_child("recycler")
        if msg.owner_pid:
            self._start_child("launcher_watch")

    def _start_child(self, role: str) -> Any:
        """Create the actor for ``role`` (not the Pool's first start) and send it its
        ``Init…`` with the current addresses of its siblings."""
        assert self._start is not None
        start, cfg = self._start, self._start.config
        address = self._child(role)
        if role in REGISTRIES:
            self.send(address, InitRegistry(cfg.name, start.process_db, start.owner_pid,
                                            start.run_id))
        if role == "session_store" and self._address("pool") is not None:
            self.send(address, InitSessionStore(cfg, self._address("pool")))
        elif role == "worker_supervisor":
            assert self._worker_context is not None
            self.send(address, InitWorkerSupervisor(self._worker_context))
        elif role == "recycler":
            self.send(address, InitRecycler(cfg, self._address("pool"),
                                            self._address("worker_registry")))
        elif role == "data_plane":
            self.send(address, InitDataPlane(cfg, self._address("pool"), start.worker_token))
        elif role == "launcher_watch":  # ours is supervised; the top-level one is not
            self.send(address, WatchLauncher(start.owner_pid))
        elif role == "pool":
            assert self._init_pool is not None
            self.send(address, replace(self._init_pool, start_reply_to=None,
                                       restarts=self._plan.restarts("pool"),
                                       announce_to=self._pool_senders()))
        return address

    def _pool_senders(self) -> tuple[Any, ...]:
        """Who a restarted Pool announces itself to once initialised (``PoolReplaced``)."""
        return (self._requester, *(address for address, role in self._children
                                   if role in ("session_store", "recycler", "node_watch",
                                               "data_plane")))

    def _make_run_dir(self, pool_name: str) -> str:
        from snakepit_actors.system import make_run_dir

        self._own_run_dir = make_run_dir(pool_name)
        return self._own_run_dir

    def _child(self, role: str) -> Any:
        address = self.createActor(ACTORS[role])
        self._children.append((address, role))
        return address

    def _address(self, role: str) -> Any:
        """The current address of ``role`` (None: there is no such child)."""
        return next((address for address, r in reversed(self._children) if r == role), None)

    # --- a child died ---------------------------------------------------------------------------

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        # str() of a child's address changes once it is realised; == knows both forms.
        roles = [role for address, role in self._children if address == msg.childAddress]
        self._children = [(a, r) for a, r in self._children if a != msg.childAddress]
        if self._stopping or not roles:  # not ours any more (a second notice for one child)
            return
        match self._plan.child_died(roles[0], time.monotonic()):
            case Restart() as restart:
                self._restart(restart)
            case Degrade(role=role, reason=reason):
                log.warning("pool.degraded", child=role, reason=reason)
                if self._address("pool") is not None:
                    self.send(self._address("pool"), PoolDegraded(reason))
            case Fail(role=role, reason=reason):
                log.error("pool.failed", child=role, reason=reason)
                self._stopping = True
                self.send(self.myAddress, ActorExitRequest())

    def _restart(self, restart: Restart) -> None:
        """A new ``restart.role``; everyone who sends to it learns its address."""
        role = restart.role
        if role == "worker_supervisor":  # every worker died with it: the Pool fails their work
            log.warning("pool.degraded", child=role, restarting=True)
            self.send(self._address("pool"), PoolDegraded("the worker supervisor died",
                                                          restarting=True))
        address = self._start_child(role)
        self._remember(role, address)
        notify = (self._requester,) if "requester" in restart.tell else ()
        for told in restart.tell:  # the requester hears it from the Pool, once it switched
            if told != "requester" and self._address(told) is not None:
                self.send(self._address(told), ActorReplaced(
                    role, address, notify if told == "pool" else ()))
        event = "pool.restarted" if role == "pool" else "pool.child_restarted"
        log.warning(event, child=role, restarts=restart.restarts)

    def _remember(self, role: str, address: Any) -> None:
        """Later children (a new WorkerSupervisor, a new Pool) get ``role`` at ``address``."""
        assert self._worker_context is not None and self._init_pool is not None
        self._worker_context = self._worker_context.with_actor(role, address)
        if role in ("worker_registry", "session_store", "data_plane"):
            self._init_pool = replace(self._init_pool, **{role: address})

    # --- acknowledgements and facts ---------------------------------------------------------------

    def receiveMsg_DescribeTree(self, msg: DescribeTree, sender: Any) -> None:
        self.send(sender, TreeDescription(
            msg.request_id, tuple((role, address) for address, role in self._children),
            tuple((role, self._plan.restarts(role)) for role in ACTORS)))

    def receiveMsg_SupervisorEscalated(self, msg: SupervisorEscalated, sender: Any) -> None:
        """The WorkerSupervisor gave up (too many Starter restarts): do not restart it."""
        self._plan.supervisor_escalated()

    def receiveMsg_WatchingLauncher(self, msg: WatchingLauncher, sender: Any) -> None:
        """Our LauncherWatch's acknowledgement: nothing to do."""

    def receiveMsg_SupervisorStarted(self, msg: Any, sender: Any) -> None:
        """The WorkerSupervisor's start acknowledgement: the Pool reports readiness instead."""

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._stopping = True
        if self._own_run_dir:  # children (and their sockets) are stopped after this handler
            from snakepit_actors.system import remove_run_dir

            remove_run_dir(self._own_run_dir)
