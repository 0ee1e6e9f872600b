"""MemberDirectory actor: the NodeAgents on one member node, so that the node can drain.

    member CLI --DrainMember--> MemberDirectory (this; globalName) --DrainMember--> NodeAgent_p
                                      ▲ AgentHere (each agent, when a pool's NodeWatch creates it)

The agents are created by NodeWatch actors on other systems, so nothing on the member knows
them unless they say so: each registers here. On SIGTERM the member asks the directory to pass
``DrainMember`` on; each agent asks its pool to move its workers away (``NodeDraining``).
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorTypeDispatcher, ChildActorExited

from snakepit_actors.messages import AgentHere, DrainMember, DrainStarted

#: Thespian ``globalName`` of the directory (one per member node).
MEMBER_DIRECTORY = "snakepit_member_agents"


class MemberDirectory(ActorTypeDispatcher):
    """Registered NodeAgents, by pool name (a newer agent of a pool replaces the older)."""

    def __init__(self) -> None:
        super().__init__()
        self._agents: dict[str, Any] = {}

    def receiveMsg_AgentHere(self, msg: AgentHere, sender: Any) -> None:
        self._agents[msg.pool_name] = sender

    def receiveMsg_DrainMember(self, msg: DrainMember, sender: Any) -> None:
        for agent in self._agents.values():
            self.send(agent, msg)
        self.send(sender, DrainStarted(len(self._agents), msg.request_id))

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        """Not a parent of anyone; nothing to do."""
