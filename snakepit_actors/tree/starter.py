"""Starter actor: a supervisor of exactly one Worker (Snakepit's ``worker_starter``).

    WorkerSupervisor (one_for_one over Starters)
     └─ Starter_i (this; permanent; ``snakepit_supervision.Starter``)
         └─ Worker_i (permanent) -> external process_i

When its Worker exits (its process crashed, it was recycled, or the actor was killed) the
Starter tells the WorkerRegistry ``WorkerExited`` (so the Pool fails or retries what the worker
held and stops routing to it) and starts a fresh Worker after a backoff (``restart_backoff_s``,
doubling). More than ``max_restarts`` restarts in ``max_seconds`` (a worker that keeps failing to
start, say) and it gives up: it reports ``WorkerAbandoned`` and exits, and its WorkerSupervisor
decides. If the Starter itself is killed its Worker dies with it (PR_SET_PDEATHSIG) and the
WorkerSupervisor reports the worker gone. A sibling restarted by PoolRoot (``ActorReplaced``,
passed down by the WorkerSupervisor) is used from then on and passed to the Worker; a new
WorkerRegistry hears at once that a worker between lives is gone (its exit may have been lost).
"""

from __future__ import annotations

from typing import Any

from snakepit_actors.core.placement import NODE_CAPABILITY
from snakepit_actors.messages import (
    ActorReplaced,
    InitStarter,
    InitWorker,
    NodeDraining,
    NodeLost,
    PlaceWorker,
    WorkerAbandoned,
    WorkerContext,
    WorkerExited,
    WorkerPlaced,
)
from snakepit_actors.proctitle import name_process
from snakepit_actors.telemetry import get_logger
from snakepit_supervision import ChildSpec, InitSupervisor
from snakepit_supervision import Starter as OneChildSupervisor

log = get_logger("starter")

WORKER_ACTOR = "snakepit_actors.tree.worker:Worker"


class Starter(OneChildSupervisor):
    """Owns one Worker and restarts it within the pool's restart intensity."""

    def __init__(self) -> None:
        super().__init__()
        self._ctx: WorkerContext | None = None
        self._worker_id = ""
        self._node: str | None = None  # placement: the member node chosen for the next Worker
        self._agent: Any = None
        self._lost_reason = ""  # why the Worker being declared lost is gone
        self._lost_node = ""  # the member node whose loss ended it
        self._leaving_node: str | None = None  # draining: the Worker there finishes first

    def receiveMsg_InitStarter(self, msg: InitStarter, sender: Any) -> None:
        self._ctx, self._worker_id = msg.context, msg.worker_id
        cfg = msg.context.config
        name_process("Starter", worker=msg.worker_id, pool=cfg.name)
        if self._placed():
            self.send(msg.context.node_watch, PlaceWorker(msg.worker_id))
        self.receiveMsg_InitSupervisor(InitSupervisor(
            strategy="one_for_one", max_restarts=cfg.max_restarts, max_seconds=cfg.max_seconds,
            children=(ChildSpec(msg.worker_id, WORKER_ACTOR, restart="permanent"),),
            backoff_initial_s=cfg.restart_backoff_s,
            backoff_max_s=max(cfg.restart_backoff_s, min(5.0, cfg.max_seconds)),
            name=f"starter:{msg.worker_id}"), self.myAddress)

    def receiveMsg_SupervisorStarted(self, msg: Any, sender: Any) -> None:
        """Our own start's acknowledgement, sent to ourselves (locally, no socket): the
        WorkerSupervisor, which forks hundreds of Starters at once, needs no such message
        from each of them."""

    def child_init_message(self, spec: ChildSpec, restarts: int) -> Any:
        assert self._ctx is not None
        return InitWorker(self._ctx, self._worker_id, restarts, node=self._node or "",
                          node_agent=self._agent)

    def receiveMsg_ActorReplaced(self, msg: ActorReplaced, sender: Any) -> None:
        """A sibling of the tree was restarted: use it, and tell the Worker."""
        if self._ctx is None or self._stopping:
            return
        self._ctx = self._ctx.with_actor(msg.role, msg.address)
        running = [child.address for child in self._table if child.address is not None]
        for address in running:
            self.send(address, msg)
        if msg.role == "worker_registry" and not running:
            self.send(msg.address, WorkerExited(self._worker_id, "restarting"))

    # --- placement on member nodes ------------------------------------------------------------

    def _placed(self) -> bool:
        return self._ctx is not None and self._ctx.node_watch is not None

    def child_start_held(self, spec: ChildSpec) -> bool:
        return self._placed() and self._node is None

    def child_requirements(self, spec: ChildSpec, restarts: int) -> dict[str, Any] | None:
        return {NODE_CAPABILITY: self._node} if self._placed() and self._node else None

    def receiveMsg_WorkerPlaced(self, msg: WorkerPlaced, sender: Any) -> None:
        if self._stopping:
            return
        if msg.node == self._leaving_node:  # a move was refused: it stays there
            self._leaving_node = None
        self._node, self._agent = msg.node, msg.agent
        log.info("worker.placed", worker_id=self._worker_id, node=msg.node)
        self.resume_held_starts()

    def receiveMsg_NodeDraining(self, msg: NodeDraining, sender: Any) -> None:
        """The Worker's node is leaving: the Pool drains the Worker, which then exits; the
        next incarnation is held until a new place comes (asked for at the exit)."""
        if msg.node != self._node or self._stopping:
            return
        self._leaving_node, self._node, self._agent = msg.node, None, None
        log.info("worker.moving", worker_id=self._worker_id, node=msg.node)

    def receiveMsg_NodeLost(self, msg: NodeLost, sender: Any) -> None:
        if msg.node not in (self._node, self._leaving_node) or self._stopping \
                or self._ctx is None:
            return
        self._node = self._agent = self._leaving_node = None
        self.send(self._ctx.node_watch, PlaceWorker(self._worker_id))
        for child in self._table:
            if child.address is not None:
                log.warning("worker.node_lost", worker_id=self._worker_id, node=msg.node,
                            reason=msg.reason)
                self._lost_reason = f"its node {msg.node} was lost: {msg.reason}"
                self._lost_node = msg.node
                self.lose_child(child.address)

    def on_child_exited(self, child_id: str, address: Any, normal: bool) -> None:
        if self._ctx is None or self._stopping:
            return  # stopped with the pool: no facts to peers that may be exiting too
        reason, self._lost_reason = self._lost_reason or "worker_actor_exited", ""
        node_lost, self._lost_node = self._lost_node, ""
        if self._leaving_node is not None:  # it left its draining node: place the next one
            reason, self._leaving_node = f"moved off draining node {self._leaving_node}", None
            self.send(self._ctx.node_watch, PlaceWorker(self._worker_id))
        self.send(self._ctx.worker_registry, WorkerExited(self._worker_id, reason,
                                                          node_lost=node_lost))
        log.info("worker.restarting", worker_id=self._worker_id)

    def on_escalate(self, reason: str) -> None:
        assert self._ctx is not None
        log.warning("worker.abandoned", worker_id=self._worker_id, reason=reason)
        self.send(self._ctx.worker_registry, WorkerAbandoned(self._worker_id, reason))
