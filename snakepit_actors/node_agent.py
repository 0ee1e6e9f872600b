"""NodeAgent actor: one pool's foothold on a member node (created there by the pool's NodeWatch).

    leader node                                   member node (snakepit-actors node --leader)
    NodeWatch --NodePing--> NodeAgent (this) --NodePong--> NodeWatch
                               ▲ WorkerOnNode
                            Worker_i (created here by its Starter on the leader) -> process_i

It answers pings, so the pool knows the member is alive. The other direction matters too: if
the pool's node dies (SIGKILL, power loss) nobody stops its Workers here, and their processes
would run on forever. So when no ping came for ``silence_s`` the agent stops every Worker that
registered with it (``ActorExitRequest``: each stops its process) and exits.
"""

from __future__ import annotations

import os
import time
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, WakeupMessage

from .messages import InitNodeAgent, NodePing, NodePong, WorkerOnNode
from .placement import meets_requirements
from .telemetry import get_logger

log = get_logger("node_agent")


class NodeAgent(ActorTypeDispatcher):
    """See the module docstring. Placed only on the member named by its requirements."""

    #: Placement: run only on a system advertising every required capability.
    actorSystemCapabilityCheck = staticmethod(meets_requirements)

    def __init__(self) -> None:
        super().__init__()
        self._init: InitNodeAgent | None = None
        self._workers: dict[str, Any] = {}
        self._last_ping = time.monotonic()
        self._gone = False

    def receiveMsg_InitNodeAgent(self, msg: InitNodeAgent, sender: Any) -> None:
        from supervision.lifetime import die_with_parent

        die_with_parent()  # the member's admin: gone with the member system
        self._init = msg
        self._last_ping = time.monotonic()
        self.wakeupAfter(msg.silence_s / 4, payload="check")

    def receiveMsg_NodePing(self, msg: NodePing, sender: Any) -> None:
        self._last_ping = time.monotonic()
        node = self._init.node if self._init is not None else ""
        self.send(sender, NodePong(node, msg.seq, msg.sent_at, len(self._workers), os.getpid()))

    def receiveMsg_WorkerOnNode(self, msg: WorkerOnNode, sender: Any) -> None:
        self._workers[msg.worker_id] = sender

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload != "check" or self._init is None or self._gone:
            return
        silent = time.monotonic() - self._last_ping
        if silent <= self._init.silence_s:
            self.wakeupAfter(self._init.silence_s / 4, payload="check")
            return
        self._gone = True
        log.warning("node.pool_silent", pool=self._init.pool_name, silent_s=round(silent, 2),
                    workers=sorted(self._workers))
        for worker in self._workers.values():
            self.send(worker, ActorExitRequest())
        self.send(self.myAddress, ActorExitRequest())
