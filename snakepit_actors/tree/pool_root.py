"""PoolRoot actor: the top of one pool's tree; starts it, and stops it as a whole.

    PoolRoot (this; one per pool instance)
     ├─ WorkerRegistry   ├─ ProcessRegistry   ├─ StarterRegistry   ├─ SessionStore
     ├─ WorkerSupervisor (one_for_one)  -> Starter_i -> Worker_i -> external process_i
     ├─ Pool
     ├─ Recycler (only with worker_ttl / worker_memory_mb)
     ├─ LauncherWatch (when the launcher's pid is known; restarted if it dies)
     └─ NodeWatch (only with a placement: workers run on convention members)

``StartPool`` creates the children, wires them with ``Init…`` messages and lets the Pool answer
the requester (``PoolStarted`` / ``PoolStartFailed``). ``ActorExitRequest`` to the PoolRoot stops
the whole tree (Thespian stops children recursively; Workers stop their processes).

When a child dies: the Pool (``_restart_pool``), the PoolRoot's own LauncherWatch and a killed
WorkerSupervisor (every worker starts afresh; the Pool fails what ran on the old ones and keeps
the queue) are restarted; more than ``POOL_MAX_RESTARTS`` deaths within ``POOL_MAX_SECONDS``
fail the pool as below. A WorkerSupervisor that escalated (its restart intensity was exceeded:
it says so first, ``SupervisorEscalated``), or died too often, makes the Pool report
``degraded`` (callers get ``PoolNotReadyError``). Any other child
(a registry, the SessionStore, the Recycler, the NodeWatch), or a Pool dying too often, makes
the PoolRoot stop the whole tree at once (``pool.failed``): its state is not rebuilt yet, and a
tree missing it would hang callers. The Python handle watches this process: its callers then
fail at once with ``PoolClosedError(reason="pool_tree_gone")`` and it removes every process left.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, ChildActorExited

from snakepit_actors.core.lifecycle import RecyclePolicy
from snakepit_actors.messages import (
    InitNodeWatch,
    InitPool,
    InitRecycler,
    InitRegistry,
    InitSessionStore,
    InitWorkerSupervisor,
    PoolDegraded,
    StartPool,
    WatchingLauncher,
    WatchLauncher,
    WorkerContext,
)
from snakepit_actors.telemetry import bind_context, get_logger, relay_events
from snakepit_actors.worker_token import new_token
from snakepit_supervision.intensity import RestartIntensity
from snakepit_supervision.messages import SupervisorEscalated

log = get_logger("pool_root")

#: A Pool (or LauncherWatch) that dies more than this often within POOL_MAX_SECONDS fails the
#: pool (fail fast).
POOL_MAX_RESTARTS = 3
POOL_MAX_SECONDS = 10.0


class PoolRoot(ActorTypeDispatcher):
    """Creates and wires one pool's actors."""

    def __init__(self) -> None:
        super().__init__()
        self._children: list[tuple[Any, str]] = []  # (address, role); compare with ==
        self._pool: Any = None
        self._stopping = False
        self._own_run_dir = ""
        self._init_pool: InitPool | None = None  # what a restarted Pool is sent
        self._requester: Any = None  # the handle: told PoolReplaced
        self._intensity = {role: RestartIntensity(POOL_MAX_RESTARTS, POOL_MAX_SECONDS)
                           for role in ("pool", "launcher_watch", "worker_supervisor")}
        self._worker_context: WorkerContext | None = None  # what a new WorkerSupervisor gets
        self._supervisor_gave_up = False  # it escalated (SupervisorEscalated), was not killed
        self._restarts = 0
        self._owner_pid = 0  # the launcher: its own LauncherWatch below this one ends the system

    def receiveMsg_StartPool(self, msg: StartPool, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()
        cfg = msg.config
        bind_context(pool=cfg.name)  # every actor forked below inherits it
        run_dir = msg.run_dir or self._make_run_dir(cfg.name)
        if msg.owner_pid and os.getpid() != msg.owner_pid:  # (simpleSystemBase: the caller)
            relay_events(run_dir)  # events go to the owner's subscribers (event_relay.py)
        registries = {role: self._child(cls, role) for role, cls in (
            ("worker_registry", "snakepit_actors.tree.worker_registry.WorkerRegistry"),
            ("process_registry", "snakepit_actors.tree.process_registry.ProcessRegistry"),
            ("starter_registry", "snakepit_actors.tree.starter_registry.StarterRegistry"),
            ("session_store", "snakepit_actors.tree.session_store.SessionStore"))}
        for address in registries.values():
            self.send(address, InitRegistry(cfg.name, msg.process_db, msg.owner_pid))
        self._pool = self._child("snakepit_actors.tree.pool.Pool", "pool")
        self.send(registries["session_store"], InitSessionStore(cfg, self._pool))
        token = msg.worker_token or new_token()
        self._init_pool = InitPool(cfg, registries["worker_registry"], sender,
                                   report_progress=msg.report_progress,
                                   session_store=registries["session_store"],
                                   worker_token=token)
        self._requester = sender
        self.send(self._pool, self._init_pool)
        node_watch = None
        if cfg.placement:
            node_watch = self._child("snakepit_actors.multihost.node_watch.NodeWatch", "node_watch")
            self.send(node_watch, InitNodeWatch(cfg, registries["worker_registry"],
                                                cfg.system.secret, self._pool))
        context = WorkerContext(
            config=cfg, run_id=msg.run_id or uuid.uuid4().hex[:12], run_dir=run_dir,
            pool=self._pool, worker_registry=registries["worker_registry"],
            process_registry=registries["process_registry"],
            starter_registry=registries["starter_registry"], node_watch=node_watch,
            worker_token=token)
        self._worker_context = context
        self._start_worker_supervisor()
        if RecyclePolicy.from_config(cfg).needs_sampling:
            recycler = self._child("snakepit_actors.tree.recycler.Recycler", "recycler")
            self.send(recycler, InitRecycler(cfg, self._pool, registries["worker_registry"]))
        self._owner_pid = msg.owner_pid
        if self._owner_pid:
            self._watch_launcher()

    def _start_worker_supervisor(self) -> None:
        assert self._worker_context is not None
        supervisor = self._child("snakepit_actors.tree.worker_supervisor.WorkerSupervisor",
                                 "worker_supervisor")
        context = replace(self._worker_context, pool=self._pool)  # the Pool may be new
        self.send(supervisor, InitWorkerSupervisor(context))

    def receiveMsg_SupervisorEscalated(self, msg: SupervisorEscalated, sender: Any) -> None:
        """The WorkerSupervisor gave up (too many Starter restarts): do not restart it."""
        self._supervisor_gave_up = True

    def _watch_launcher(self) -> None:
        """A LauncherWatch of our own (restarted if killed): the top-level one is not
        supervised, and one of them is enough to end the system when the launcher dies."""
        watch = self._child("snakepit_actors.tree.launcher_watch.LauncherWatch", "launcher_watch")
        self.send(watch, WatchLauncher(self._owner_pid))

    def receiveMsg_WatchingLauncher(self, msg: WatchingLauncher, sender: Any) -> None:
        """Our LauncherWatch's acknowledgement: nothing to do."""

    def _make_run_dir(self, pool_name: str) -> str:
        from snakepit_actors.system import make_run_dir

        self._own_run_dir = make_run_dir(pool_name)
        return self._own_run_dir

    def _child(self, actor_class: str, role: str) -> Any:
        address = self.createActor(actor_class)
        self._children.append((address, role))
        return address

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        # str() of a child's address changes once it is realised; == knows both forms.
        roles = [role for address, role in self._children if address == msg.childAddress]
        self._children = [(a, r) for a, r in self._children if a != msg.childAddress]
        if self._stopping or not roles:  # not ours any more (a second notice for one child)
            return
        role = roles[0]
        if role == "pool" and self._intensity[role].record(time.monotonic()):
            self._restart_pool()
        elif role == "launcher_watch" and self._intensity[role].record(time.monotonic()):
            self._watch_launcher()
        elif role == "worker_supervisor" and not self._supervisor_gave_up \
                and self._intensity[role].record(time.monotonic()):
            log.warning("pool.degraded", child=role, restarting=True)
            self.send(self._pool, PoolDegraded("the worker supervisor died", restarting=True))
            self._start_worker_supervisor()
        elif role == "worker_supervisor" and self._pool is not None:
            log.warning("pool.degraded", child=role)
            self.send(self._pool, PoolDegraded("the worker supervisor gave up restarting"))
        else:  # its state cannot be rebuilt here: fail fast (the handle watches this process)
            log.error("pool.failed", child=role)
            self._stopping = True
            self.send(self.myAddress, ActorExitRequest())

    def _restart_pool(self) -> None:
        """A new Pool, rebuilt from the WorkerRegistry's facts; everyone who sends to the Pool
        learns its address (Workers from their next ``RunRequest``)."""
        assert self._init_pool is not None
        self._restarts += 1
        self._pool = self._child("snakepit_actors.tree.pool.Pool", "pool")
        told = (self._requester, *(address for address, role in self._children
                                   if role in ("session_store", "recycler", "node_watch")))
        self.send(self._pool, replace(self._init_pool, start_reply_to=None,
                                      restarts=self._restarts, announce_to=told))
        log.warning("pool.restarted", restarts=self._restarts)

    def receiveMsg_SupervisorStarted(self, msg: Any, sender: Any) -> None:
        """The WorkerSupervisor's start acknowledgement: the Pool reports readiness instead."""

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._stopping = True
        if self._own_run_dir:  # children (and their sockets) are stopped after this handler
            from snakepit_actors.system import remove_run_dir

            remove_run_dir(self._own_run_dir)
