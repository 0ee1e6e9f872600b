"""The node directory: what another process (``status``, ``exec``) asks a running node.
"""

from __future__ import annotations

from dataclasses import dataclass

from snakepit_actors.messages.api import ActorAddress

# --- public: the node directory (status / exec from another process) ----------------------------

@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One pool of a node: its Pool actor (requests, stats) and PoolRoot (the tree)."""

    name: str
    pool: ActorAddress
    root: ActorAddress
    pool_size: int
    adapter: str
    run_dir: str = ""


@dataclass(frozen=True, slots=True)
class RegisterPool:
    """node -> NodeDirectory: ``entry`` runs in this node."""

    entry: PoolEntry


@dataclass(frozen=True, slots=True)
class DescribeNode:
    """Ask the NodeDirectory for a ``NodeDescription`` (echoes ``request_id``)."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class NodeDescription:
    """Reply to ``DescribeNode``: the node's name, its process (pid) and its pools."""

    name: str
    node_pid: int
    started_at: float
    pools: tuple[PoolEntry, ...]
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class InitNodeDirectory:
    """node -> NodeDirectory: the node's name and pid."""

    name: str
    node_pid: int
    started_at: float
