"""NodeAgent actor: one pool's foothold on a member node (created there by the pool's NodeWatch).

    leader node                                   member node (snakepit-actors node --leader)
    NodeWatch --NodePing--> NodeAgent (this) --NodePong--> NodeWatch
                               ▲ WorkerOnNode
                            Worker_i (created here by its Starter on the leader) -> process_i

It answers pings, so the pool knows the member is alive. The other direction matters too: if
the pool's node dies (SIGKILL, power loss) nobody stops its Workers here, and their processes
would run on forever. So when no ping came for ``silence_s`` the agent stops every Worker that
registered with it (``ActorExitRequest``: each stops its process). The pool has placed them
elsewhere by then. Each ping lists the workers the pool has placed here: one missing from two
pings in a row was placed elsewhere while this member was cut off or paused, and is stopped
too. When the member drains (SIGTERM), the agent tells the pool (``NodeDraining``). The agent
itself stays, so that the pool can take this member back if it was only cut off or paused, and
exits after ``LINGER_S`` of silence.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, WakeupMessage

from snakepit_actors.core.placement import meets_requirements
from snakepit_actors.messages import (
    AgentHere,
    DrainMember,
    InitNodeAgent,
    NodeDraining,
    NodePing,
    NodePong,
    WorkerOnNode,
)
from snakepit_actors.telemetry import get_logger

log = get_logger("node_agent")

#: Silence after which the agent exits (its pool is surely gone).
LINGER_S = 600.0


@dataclass(frozen=True, slots=True)
class SilenceCheckDue:
    """Timer: has the pool been silent too long? (every ``silence_s / 4``)"""


class NodeAgent(ActorTypeDispatcher):
    """See the module docstring. Placed only on the member named by its requirements."""

    #: Placement: run only on a system advertising every required capability.
    actorSystemCapabilityCheck = staticmethod(meets_requirements)

    def __init__(self) -> None:
        super().__init__()
        self._init: InitNodeAgent | None = None
        self._workers: dict[str, Any] = {}
        self._unlisted: dict[str, int] = {}  # worker -> pings in a row that did not list it
        self._last_ping = time.monotonic()
        self._exiting = False
        self._watch: Any = None  # the pool's NodeWatch (it created this agent)

    def receiveMsg_InitNodeAgent(self, msg: InitNodeAgent, sender: Any) -> None:
        from snakepit_actors.multihost.member_directory import MEMBER_DIRECTORY, MemberDirectory
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()  # the member's admin: gone with the member system
        self._init, self._watch = msg, sender
        directory = self.createActor(MemberDirectory, globalName=MEMBER_DIRECTORY)
        self.send(directory, AgentHere(msg.pool_name))
        self._last_ping = time.monotonic()
        self.wakeupAfter(msg.silence_s / 4, payload=SilenceCheckDue())

    def receiveMsg_NodePing(self, msg: NodePing, sender: Any) -> None:
        self._last_ping = time.monotonic()
        node = self._init.node if self._init is not None else ""
        self.send(sender, NodePong(node, msg.seq, msg.sent_at, len(self._workers), os.getpid()))
        listed = set(msg.workers)
        for worker_id in list(self._workers):
            misses = 0 if worker_id in listed else self._unlisted.get(worker_id, 0) + 1
            self._unlisted[worker_id] = misses
            if misses >= 2:  # placed elsewhere while we were cut off: an orphan
                log.warning("node.worker_orphaned", worker_id=worker_id, node=node)
                self.send(self._workers.pop(worker_id), ActorExitRequest())
                del self._unlisted[worker_id]

    def receiveMsg_DrainMember(self, msg: DrainMember, sender: Any) -> None:
        """The member is leaving (SIGTERM): ask the pool to move its workers away."""
        if self._init is not None and self._watch is not None:
            self.send(self._watch, NodeDraining(self._init.node))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        """Stopped with its pool (or by itself): stop the pool's Workers here too. Their
        Starters ask them as well, but from another system that may be gone a moment later;
        this request is local, so the worker processes never outlive the pool."""
        if self._workers:  # also when Thespian ends the agent as its pool's node goes away
            log.warning("node.agent_stopping", pool=self._init.pool_name if self._init else "",
                        workers=sorted(self._workers))
        for worker in self._workers.values():
            self.send(worker, ActorExitRequest())
        self._workers.clear()

    def receiveMsg_WorkerOnNode(self, msg: WorkerOnNode, sender: Any) -> None:
        """A Worker of the pool runs here. One registered under the same id by another actor
        is an orphan: the pool placed the worker elsewhere while this member was paused or cut
        off, then placed it back here (rebalance) before two pings could leave it unlisted."""
        old = self._workers.get(msg.worker_id)
        if old is not None and old != sender:
            node = self._init.node if self._init is not None else ""
            log.warning("node.worker_orphaned", worker_id=msg.worker_id, node=node,
                        reason="replaced")
            self.send(old, ActorExitRequest())
        self._workers[msg.worker_id] = sender
        self._unlisted[msg.worker_id] = 0

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if not isinstance(msg.payload, SilenceCheckDue):
            log.error("timer.unknown", actor="NodeAgent", payload=repr(msg.payload))
            return
        if self._init is None or self._exiting:
            return
        silent = time.monotonic() - self._last_ping
        if silent > self._init.silence_s and self._workers:
            log.warning("node.pool_silent", pool=self._init.pool_name,
                        silent_s=round(silent, 2), workers=sorted(self._workers))
            for worker in self._workers.values():
                self.send(worker, ActorExitRequest())
            self._workers.clear()
            self._unlisted.clear()
        if silent > max(LINGER_S, self._init.silence_s):
            self._exiting = True
            self.send(self.myAddress, ActorExitRequest())
            return
        self.wakeupAfter(self._init.silence_s / 4, payload=SilenceCheckDue())
