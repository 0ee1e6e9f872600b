"""Placement of workers on member nodes (multi-host: NodeWatch, NodeAgent, member node).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from snakepit_actors.config import PoolConfig
from snakepit_actors.messages.api import ActorAddress

# --- placement on member nodes (multi-host; node_watch.py, node_agent.py, member.py) ----------
#
#    Starter   --PlaceWorker-->  NodeWatch   --WorkerPlaced(node, agent)--> Starter
#    NodeWatch --NodeLost(node)--> Starter    (a member stopped answering: its Worker is lost)
#    NodeWatch --NodePing-->  NodeAgent (one per pool on each member) --NodePong--> NodeWatch
#    Worker (on a member) --WorkerOnNode--> NodeAgent   (stopped by it if the pool goes silent)


@dataclass(frozen=True, slots=True)
class InitNodeWatch:
    """PoolRoot -> NodeWatch: place ``config``'s workers on convention members whose
    capabilities match ``config.placement``, and heartbeat those members. Facts go to
    ``worker_registry`` (start failures when no member matches in time); ``pool`` is asked to
    move the workers off a draining member."""

    config: PoolConfig
    worker_registry: ActorAddress
    secret: str = ""
    pool: ActorAddress | None = None


@dataclass(frozen=True, slots=True)
class PlaceWorker:
    """Starter -> NodeWatch: which member should run ``worker_id`` next? Answered with
    ``WorkerPlaced`` once a live matching member exists (at once if one does)."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class WorkerPlaced:
    """NodeWatch -> Starter: create the Worker on ``node`` (``snakepit_node`` capability);
    ``agent`` is the pool's NodeAgent there."""

    worker_id: str
    node: str
    agent: ActorAddress


@dataclass(frozen=True, slots=True)
class NodeLost:
    """NodeWatch -> Starter: member ``node`` stopped answering heartbeats (or left the
    convention); a Worker there is lost: fail its requests and place it again."""

    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class InitNodeAgent:
    """NodeWatch -> NodeAgent (created on member ``node``): answer pings; if none comes for
    ``silence_s``, the pool's node is gone: stop every Worker registered here, then exit."""

    pool_name: str
    node: str
    silence_s: float


@dataclass(frozen=True, slots=True)
class NodePing:
    """NodeWatch -> NodeAgent, every ``node_heartbeat_s``: ``workers`` are the pool's
    workers placed on that member; a Worker registered there but missing from two pings in a
    row was placed elsewhere meanwhile (the member was cut off or paused): the agent stops it."""

    seq: int
    sent_at: float
    workers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodePong:
    """NodeAgent -> NodeWatch: the answer to ``NodePing`` ``seq``; ``workers`` registered."""

    node: str
    seq: int
    sent_at: float
    workers: int
    pid: int


@dataclass(frozen=True, slots=True)
class WorkerOnNode:
    """Worker (on a member) -> its pool's NodeAgent there: stop me if the pool goes silent."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class ListMembers:
    """anyone -> NodeWatch: the pool's member nodes. Replies ``MemberList``."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member node as a pool sees it: ``state`` joining / live / dead; ``silent_s``
    since its last heartbeat answer; ``workers`` placed on it; ``capabilities`` (no secret)."""

    node: str
    state: str
    silent_s: float
    workers: int
    capabilities: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MemberList:
    """Reply to ``ListMembers``: matching members, and the others with why they do not
    qualify (``ignored``: node -> reason)."""

    members: tuple[MemberInfo, ...]
    ignored: Mapping[str, str]
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class AgentHere:
    """NodeAgent -> its member's MemberDirectory (globalName): tell me when the member drains."""

    pool_name: str


@dataclass(frozen=True, slots=True)
class DrainMember:
    """member CLI -> MemberDirectory -> every NodeAgent there: this member is leaving; have
    the pools move their workers elsewhere. The directory replies ``DrainStarted``."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class DrainStarted:
    """MemberDirectory -> member CLI: ``agents`` NodeAgents (one per pool) were told."""

    agents: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class NodeDraining:
    """NodeAgent -> NodeWatch, then NodeWatch -> the Starters placed there: member ``node``
    is leaving. The NodeWatch places nothing new there and asks the Pool to move its workers
    (``RequestRecycle(reason="node_draining")``); each Starter places its next Worker
    elsewhere once the current one has finished its requests and exited. NodeWatch also sends
    it to one Starter alone to move its worker for balance (``reason="rebalance"``)."""

    node: str
