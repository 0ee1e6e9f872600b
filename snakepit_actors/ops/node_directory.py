"""NodeDirectory actor: the one named actor of a node; other processes start here.

    ActorSystem admin (the node's admin port)
     ├─ LauncherWatch          (ends the system when the node process dies)
     ├─ NodeDirectory (this; globalName ``NODE_GLOBAL_NAME``)
     └─ PoolRoot per [pools.<name>] -> the pool's tree (pool_root.py)

The node process registers each started pool here (``RegisterPool``). ``status`` and ``exec``,
running in other processes, attach to the node's admin port, look this actor up by its global
name and ask ``DescribeNode``; then they talk to the pools' actors directly. It holds only
addresses and names: if it crashes (nothing it does can raise) ``status`` cannot find the
pools until the node restarts, and the pools keep serving.
"""

from __future__ import annotations

import time
from typing import Any

from thespian.actors import ActorTypeDispatcher

from snakepit_actors.messages import (
    DescribeNode,
    InitNodeDirectory,
    NodeDescription,
    PoolEntry,
    RegisterPool,
)

#: The Thespian global name of a node's directory actor.
NODE_GLOBAL_NAME = "snakepit_actors.ops.node_directory"
NODE_DIRECTORY_ACTOR = "snakepit_actors.ops.node_directory.NodeDirectory"


class NodeDirectory(ActorTypeDispatcher):
    """Pool name -> its actors, for processes attaching to the node."""

    def __init__(self) -> None:
        super().__init__()
        self._name = ""
        self._node_pid = 0
        self._started_at = time.time()
        self._pools: dict[str, PoolEntry] = {}

    def receiveMsg_InitNodeDirectory(self, msg: InitNodeDirectory, sender: Any) -> None:
        self._name, self._node_pid, self._started_at = msg.name, msg.node_pid, msg.started_at

    def receiveMsg_RegisterPool(self, msg: RegisterPool, sender: Any) -> None:
        self._pools[msg.entry.name] = msg.entry

    def receiveMsg_DescribeNode(self, msg: DescribeNode, sender: Any) -> None:
        self.send(sender, NodeDescription(self._name, self._node_pid, self._started_at,
                                          tuple(self._pools.values()), msg.request_id))
