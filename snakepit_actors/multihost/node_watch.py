"""NodeWatch actor: places one pool's workers on convention members and heartbeats them.

    PoolRoot
     ├─ NodeWatch (this; only for a pool with ``placement``)
     │    └─ NodeAgent on each matching member  <-NodePing / NodePong->  (every node_heartbeat_s)
     └─ WorkerSupervisor -> Starter_i --PlaceWorker--> NodeWatch --WorkerPlaced(node)--> Starter_i
                                       Starter_i creates Worker_i on that node (Thespian's
                                       targetActorRequirements {"snakepit_node": node})

Membership comes from Thespian (``notifyOnSystemRegistrationChanges``): a member joining the
convention with the capabilities of ``placement`` (and the shared secret, if the leader has
one) gets a NodeAgent for this pool; once the agent answers a ping the member is live and takes
workers, least loaded first. Thespian notices a dead member only after minutes and never
reports its actors' deaths, so liveness is our own heartbeat: a member silent for
``node_heartbeat_s`` x ``node_heartbeat_misses`` is dead (it is still probed, with backoff, and
comes back if it answers again: it was paused or cut off). Its Starters get ``NodeLost``: they
declare their Worker lost (the Pool fails its requests with WorkerCrashedError) and ask for a
new place. A worker with no live member to go to waits (parked); after ``placement_timeout`` it
is reported as failed to start (start-up fails with reason "no_matching_node") and abandoned
(the pool is degraded) until a member joins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from thespian.actors import ActorTypeDispatcher, WakeupMessage

from snakepit_actors.core.placement import NODE_CAPABILITY, NodeTable, member_problem
from snakepit_actors.errors import PoolNotReadyError
from snakepit_actors.messages import (
    ActorReplaced,
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
    PoolReplaced,
    RecycleRequested,
    RequestRecycle,
    WorkerAbandoned,
    WorkerPlaced,
    WorkerStartFailed,
)
from snakepit_actors.telemetry import get_logger

log = get_logger("node_watch")

NODE_AGENT = "snakepit_actors.multihost.node_agent.NodeAgent"


@dataclass(frozen=True, slots=True)
class HeartbeatTick:
    """Timer: ping the members, notice the silent ones, place parked workers (every
    ``node_heartbeat_s``)."""


class NodeWatch(ActorTypeDispatcher):
    """One pool's view of its member nodes (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._init: InitNodeWatch | None = None
        self._table: NodeTable | None = None
        self._starters: dict[str, Any] = {}  # worker_id -> the Starter that asked
        self._others: dict[str, str] = {}  # members that cannot run our workers -> why
        self._moving: set[str] = set()  # workers moved for balance, until placed again
        self._seq = 0

    def receiveMsg_InitNodeWatch(self, msg: InitNodeWatch, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()
        cfg = msg.config
        self._init = msg
        self._table = NodeTable(cfg.node_heartbeat_s, cfg.node_heartbeat_misses,
                                cfg.placement_timeout)
        self.notifyOnSystemRegistrationChanges(True)
        self.wakeupAfter(cfg.node_heartbeat_s, payload=HeartbeatTick())
        log.info("placement.watching", pool=cfg.name, placement=dict(cfg.placement))

    def receiveMsg_PoolReplaced(self, msg: PoolReplaced, sender: Any) -> None:
        """The Pool was restarted (PoolRoot): send to the new one."""
        if self._init is not None:
            self._init = replace(self._init, pool=msg.pool)

    def receiveMsg_ActorReplaced(self, msg: ActorReplaced, sender: Any) -> None:
        """PoolRoot restarted the WorkerRegistry: report to the new one."""
        if self._init is not None and msg.role == "worker_registry":
            self._init = replace(self._init, worker_registry=msg.address)

    def receiveMsg_ActorSystemConventionUpdate(self, msg: Any, sender: Any) -> None:
        if self._init is None or self._table is None:
            return
        caps = dict(msg.remoteCapabilities or {})
        name = caps.get(NODE_CAPABILITY) or str(msg.remoteAdminAddress)
        if not msg.remoteAdded:
            self._lost(str(name), "left the convention")
            self._table.forget(str(name))
            return
        cfg = self._init.config
        problem = member_problem(caps, cfg.placement, self._init.secret)
        if problem is not None:
            if self._others.get(str(name)) != problem:
                log.info("placement.member_ignored", node=name, reason=problem)
            self._others[str(name)] = problem
            return
        if self._table.knows(name):
            return  # a re-registration of a member we already watch
        agent = self.createActor(NODE_AGENT, targetActorRequirements={NODE_CAPABILITY: name})
        self.send(agent, InitNodeAgent(cfg.name, name, self._table.deadline_s * 2))
        self._table.add(name, caps, agent, time.monotonic())
        self._others.pop(name, None)
        self._ping(self._table.members[name])
        log.info("placement.member_joined", node=name, pool=cfg.name)

    def receiveMsg_NodePong(self, msg: NodePong, sender: Any) -> None:
        assert self._table is not None
        now = time.monotonic()
        was = self._table.members[msg.node].state if msg.node in self._table.members else ""
        if self._table.pong(msg.node, now, msg.pid):
            log.info("placement.member_live", node=msg.node, again=was == "dead",
                     rtt_ms=round((time.time() - msg.sent_at) * 1000, 2))
            if not self._table.settling():
                self._unpark(now)

    def _unpark(self, now: float) -> None:
        assert self._table is not None
        for worker_id, node in self._table.unpark(now):
            self._tell_placed(worker_id, node)

    def receiveMsg_NodeDraining(self, msg: NodeDraining, sender: Any) -> None:
        """A member is leaving: no new placements there; its workers move (the Pool drains
        each, the Worker exits when idle, its Starter places the next one elsewhere)."""
        assert self._table is not None and self._init is not None
        workers = self._table.drain(msg.node)
        log.info("placement.member_draining", node=msg.node, workers=workers)
        for worker_id in workers:
            starter = self._starters.get(worker_id)
            if starter is not None:
                self.send(starter, msg)
            if self._init.pool is not None:
                self.send(self._init.pool, RequestRecycle(worker_id, "node_draining"))

    def receiveMsg_ListMembers(self, msg: ListMembers, sender: Any) -> None:
        summary = self._table.summary(time.monotonic()) if self._table is not None else {}
        self.send(sender, MemberList(
            tuple(MemberInfo(name, m["state"], m["silent_s"], m["workers"], m["capabilities"])
                  for name, m in summary.items()),
            dict(self._others), msg.request_id))

    def receiveMsg_PlaceWorker(self, msg: PlaceWorker, sender: Any) -> None:
        assert self._table is not None
        self._starters[msg.worker_id] = sender
        self._moving.discard(msg.worker_id)
        node = self._table.place(msg.worker_id, time.monotonic())
        if node is not None:
            self._tell_placed(msg.worker_id, node)
        else:
            log.info("placement.waiting", worker_id=msg.worker_id)

    def _tell_placed(self, worker_id: str, node: str) -> None:
        assert self._table is not None
        starter = self._starters.get(worker_id)
        if starter is not None:
            self.send(starter, WorkerPlaced(worker_id, node, self._table.members[node].agent))
        log.info("placement.placed", worker_id=worker_id, node=node)

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if not isinstance(msg.payload, HeartbeatTick):
            log.error("timer.unknown", actor="NodeWatch", payload=repr(msg.payload))
            return
        if self._table is None or self._init is None:
            return
        now = time.monotonic()
        dead, overdue = self._table.tick(now)
        for name in dead:
            self._lost(name, f"no heartbeat answer for {self._table.deadline_s:.1f} s")
        self._unpark(now)  # members that answered since (or never will: dead now)
        for worker_id in overdue:
            self._report_unplaced(worker_id)
        for member in self._table.pingable(now):
            self._ping(member)
        self._rebalance()
        self.wakeupAfter(self._init.config.node_heartbeat_s, payload=HeartbeatTick())

    def _rebalance(self) -> None:
        """Move one worker off the most loaded member when another runs two fewer (a member
        joined later): the Pool drains it, it exits, its Starter places it anew."""
        assert self._table is not None and self._init is not None
        worker_id = self._table.overloaded(self._moving)
        starter = self._starters.get(worker_id or "")
        if worker_id is None or starter is None or self._init.pool is None:
            return
        node = self._table.assigned[worker_id]
        self._moving.add(worker_id)
        log.info("placement.rebalancing", worker_id=worker_id, node=node)
        self.send(starter, NodeDraining(node))
        self.send(self._init.pool, RequestRecycle(worker_id, "rebalance", request_id=node))

    def receiveMsg_RecycleRequested(self, msg: RecycleRequested, sender: Any) -> None:
        """The Pool's answer to a rebalance: refused (the worker is busy recycling or not
        ready), the worker stays where it is; its Starter hears it is placed there again."""
        assert self._table is not None
        if msg.accepted or msg.worker_id not in self._moving:
            return
        self._moving.discard(msg.worker_id)
        node, starter = msg.request_id, self._starters.get(msg.worker_id)
        if starter is not None and self._table.assigned.get(msg.worker_id) == node:
            self.send(starter, WorkerPlaced(msg.worker_id, node,
                                            self._table.members[node].agent))

    def _ping(self, member: Any) -> None:
        assert self._table is not None
        self._seq += 1
        placed = tuple(self._table.workers_on(member.name))
        self.send(member.agent, NodePing(self._seq, time.time(), placed))

    def _lost(self, name: str, reason: str) -> None:
        assert self._table is not None
        if not self._table.knows(name):
            return
        member = self._table.members[name]
        silent_s = round(time.monotonic() - member.last_pong, 2)
        workers = self._table.lose(name, time.monotonic())
        log.warning("placement.member_lost", node=name, reason=reason, silent_s=silent_s,
                    workers=workers)
        for worker_id in workers:
            starter = self._starters.get(worker_id)
            if starter is not None:
                self.send(starter, NodeLost(name, reason))

    def _report_unplaced(self, worker_id: str) -> None:
        """Parked for ``placement_timeout``: a start failure (and, the pool degraded)."""
        assert self._init is not None and self._table is not None
        cfg = self._init.config
        members = {**{n: m["state"] for n, m in self._table.summary().items()},
                   **self._others}
        error = PoolNotReadyError(
            f"no live member node matches placement {dict(cfg.placement)} for worker "
            f"{worker_id} after {cfg.placement_timeout} s (members: {members or 'none'}); "
            f"start one with `snakepit-actors node --leader HOST:PORT "
            f"{' '.join(f'--capability {k}={v}' for k, v in cfg.placement.items())}`",
            reason="no_matching_node",
            details={"worker_id": worker_id, "placement": dict(cfg.placement),
                     "members": members})
        log.warning("placement.no_member", worker_id=worker_id, members=members)
        self.send(self._init.worker_registry, WorkerStartFailed(worker_id, error))
        self.send(self._init.worker_registry, WorkerAbandoned(worker_id, "no_matching_node"))
