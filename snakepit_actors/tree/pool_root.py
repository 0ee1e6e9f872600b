"""PoolRoot actor: the top of one pool's tree; starts it, and stops it as a whole.

    PoolRoot (this; one per pool instance)
     ├─ WorkerRegistry   ├─ ProcessRegistry   ├─ StarterRegistry   ├─ SessionStore
     ├─ WorkerSupervisor (one_for_one)  -> Starter_i -> Worker_i -> external process_i
     ├─ Pool
     ├─ Recycler (only with worker_ttl / worker_memory_mb)
     └─ NodeWatch (only with a placement: workers run on convention members)

``StartPool`` creates the children, wires them with ``Init…`` messages and lets the Pool answer
the requester (``PoolStarted`` / ``PoolStartFailed``). ``ActorExitRequest`` to the PoolRoot stops
the whole tree (Thespian stops children recursively; Workers stop their processes).
"""

from __future__ import annotations

import uuid
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
    WorkerContext,
)
from snakepit_actors.telemetry import bind_context, get_logger
from snakepit_actors.worker_token import new_token

log = get_logger("pool_root")


class PoolRoot(ActorTypeDispatcher):
    """Creates and wires one pool's actors."""

    def __init__(self) -> None:
        super().__init__()
        self._children: list[tuple[Any, str]] = []  # (address, role); compare with ==
        self._pool: Any = None
        self._stopping = False
        self._own_run_dir = ""

    def receiveMsg_StartPool(self, msg: StartPool, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()
        cfg = msg.config
        bind_context(pool=cfg.name)  # every actor forked below inherits it
        run_dir = msg.run_dir or self._make_run_dir(cfg.name)
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
        self.send(self._pool, InitPool(cfg, registries["worker_registry"], sender,
                                       report_progress=msg.report_progress,
                                       session_store=registries["session_store"],
                                       worker_token=token))
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
        supervisor = self._child("snakepit_actors.tree.worker_supervisor.WorkerSupervisor",
                                 "worker_supervisor")
        self.send(supervisor, InitWorkerSupervisor(context))
        if RecyclePolicy.from_config(cfg).needs_sampling:
            recycler = self._child("snakepit_actors.tree.recycler.Recycler", "recycler")
            self.send(recycler, InitRecycler(cfg, self._pool, registries["worker_registry"]))

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
        if self._stopping:
            return
        role = roles[0] if roles else "unknown"
        log.warning("pool.degraded", child=role)
        if role == "worker_supervisor" and self._pool is not None:
            self.send(self._pool, PoolDegraded("the worker supervisor gave up restarting"))

    def receiveMsg_SupervisorStarted(self, msg: Any, sender: Any) -> None:
        """The WorkerSupervisor's start acknowledgement: the Pool reports readiness instead."""

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._stopping = True
        if self._own_run_dir:  # children (and their sockets) are stopped after this handler
            from snakepit_actors.system import remove_run_dir

            remove_run_dir(self._own_run_dir)
