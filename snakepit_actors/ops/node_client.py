"""Talking to a running node from another process (``status``, ``exec``).

    this process --attach (Admin Port)--> the node's admin --globalName--> NodeDirectory
                 --GetStats / ListWorkers / Execute--> a pool's Pool actor
                 --Thespian_StatusReq / WhichChildren--> every actor of the tree

Attaching means creating an ``ActorSystem`` endpoint on the node's admin port. Thespian would
*start* a new admin if nothing listened there, so the port is probed first; and the endpoint
is never shut down (that would stop the node). Thespian unpickles what it receives, so only a
loopback (or otherwise trusted) address may be used. One ``NodeClient`` per process and
thread: the endpoint is not shared between threads.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from snakepit_actors.errors import PoolNotReadyError, SnakepitError
from snakepit_actors.messages import (
    DescribeNode,
    Execute,
    ExecuteFailed,
    ExecuteResult,
    GetStats,
    ListWorkers,
    NodeDescription,
    PoolEntry,
    PoolStats,
    RecycleRequested,
    RequestRecycle,
    WorkerInfo,
    WorkerList,
)
from snakepit_actors.ops.node_directory import NODE_DIRECTORY_ACTOR, NODE_GLOBAL_NAME
from snakepit_actors.system import port_in_use


class NodeClient:
    """An attached endpoint on a node's actor system.

    Args:
        port: the node's admin port.
        host: its address (loopback unless the node is configured otherwise).
        timeout_s: default wait for each answer.

    Raises:
        PoolNotReadyError: reason "node_unreachable": nothing listens on ``host:port``, or it
            is not a snakepit node.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 10.0) -> None:
        if not port_in_use(port, host):
            raise PoolNotReadyError(
                f"no node is listening on {host}:{port}; start one with "
                f"`snakepit-actors start --config pool.toml`", reason="node_unreachable")
        from thespian.actors import ActorSystem

        from snakepit_actors.system import prepare_thespian

        prepare_thespian(host)
        os.environ.setdefault("THESPLOG_FILE", os.path.join(tempfile.gettempdir(),
                                                            f"snakepit-client-{port}.log"))
        self.port, self.host, self.timeout_s = port, host, timeout_s
        self._asys = ActorSystem("multiprocTCPBase", {"Admin Port": port})
        self._directory = self._asys.createActor(NODE_DIRECTORY_ACTOR,
                                                 globalName=NODE_GLOBAL_NAME)
        self.node = self._describe()

    @classmethod
    def over(cls, endpoint: Any, directory: Any, port: int, host: str = "127.0.0.1",
             timeout_s: float = 10.0) -> NodeClient:
        """A client on an endpoint the caller already has (a ``private()`` context of the
        node's own actor system, for a thread of the node's process) instead of attaching.

        Raises:
            PoolNotReadyError: reason "node_unreachable": the directory did not answer.
        """
        client = cls.__new__(cls)
        client.port, client.host, client.timeout_s = port, host, timeout_s
        client._asys, client._directory = endpoint, directory
        client.node = client._describe()
        return client

    def refresh(self) -> NodeDescription:
        """Ask the directory again (a restarted Pool actor runs at a new address)."""
        self.node = self._describe()
        return self.node

    def _describe(self) -> NodeDescription:
        rid = uuid.uuid4().hex
        reply = self.call(self._directory, DescribeNode(rid),
                          lambda m: isinstance(m, NodeDescription) and m.request_id == rid)
        if not isinstance(reply, NodeDescription) or not reply.name:
            raise PoolNotReadyError(f"{self.host}:{self.port} is an actor system but not a "
                                    f"snakepit node (no node directory answered)",
                                    reason="node_unreachable")
        return reply

    def call(self, target: Any, message: Any, match: Callable[[Any], bool],
             timeout_s: float | None = None) -> Any:
        """Send ``message``; the first reply ``match`` accepts, or None after the timeout."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        self._asys.tell(target, message)
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self._asys.listen(remaining)
            if reply is not None and match(reply):
                return reply
        return None

    def pool(self, name: str | None) -> PoolEntry:
        """The pool ``name`` (None: the only pool, or the one named "default").

        Raises:
            SnakepitError: no such pool (the message lists the node's pools).
        """
        pools = {p.name: p for p in self.node.pools}
        if name is None:
            name = next(iter(pools)) if len(pools) == 1 else "default"
        if name not in pools:
            from snakepit_actors.errors import InvalidArgumentsError

            raise InvalidArgumentsError(f"node {self.node.name!r} has no pool {name!r}; "
                                        f"pools: {sorted(pools)} (use --pool NAME)",
                                        reason="unknown_pool")
        return pools[name]

    def stats(self, entry: PoolEntry) -> PoolStats | None:
        rid = uuid.uuid4().hex
        reply = self.call(entry.pool, GetStats(rid),
                          lambda m: isinstance(m, PoolStats) and m.request_id == rid)
        return reply if isinstance(reply, PoolStats) else None

    def workers(self, entry: PoolEntry) -> list[WorkerInfo]:
        rid = uuid.uuid4().hex
        reply = self.call(entry.pool, ListWorkers(rid),
                          lambda m: isinstance(m, WorkerList) and m.request_id == rid)
        return list(reply.workers) if isinstance(reply, WorkerList) else []

    def execute(self, entry: PoolEntry, tool: str, args: dict[str, Any],
                timeout_s: float, session_id: str | None = None) -> Any:
        """Run ``tool`` on the pool (the actor path); returns the result.

        Raises:
            SnakepitError: the tool's or the pool's error (as ``Pool.execute``), or
                RequestTimeoutError if no answer came within ``timeout_s`` plus a grace.
        """
        from snakepit_actors.errors import RequestTimeoutError

        rid = uuid.uuid4().hex
        reply = self.call(entry.pool, Execute(rid, tool, args, session_id=session_id,
                                              deadline_unix_s=time.time() + timeout_s),
                          lambda m: isinstance(m, ExecuteResult | ExecuteFailed)
                          and m.request_id == rid, timeout_s + 5.0)
        if isinstance(reply, ExecuteResult):
            return reply.result
        if isinstance(reply, ExecuteFailed):
            raise reply.error
        raise RequestTimeoutError(f"no reply for {tool!r} within {timeout_s}s",
                                  reason="no_reply")

    def recycle(self, entry: PoolEntry, worker_id: str) -> RecycleRequested | None:
        rid = uuid.uuid4().hex
        reply = self.call(entry.pool, RequestRecycle(worker_id, "manual", rid),
                          lambda m: isinstance(m, RecycleRequested) and m.request_id == rid)
        return reply if isinstance(reply, RecycleRequested) else None

    def actor_status(self, address: Any) -> Any:
        """Thespian's own status of the actor at ``address`` (class, children), or None."""
        from thespian.system.messages.status import Thespian_ActorStatus, Thespian_StatusReq

        return self.call(address, Thespian_StatusReq(),
                         lambda m: isinstance(m, Thespian_ActorStatus)
                         and m.actorAddress == address, min(5.0, self.timeout_s))

    def members(self, node_watch: Any) -> Any:
        """A pool's ``MemberList`` (its NodeWatch's view of member nodes), or None."""
        from snakepit_actors.messages import ListMembers, MemberList

        rid = uuid.uuid4().hex
        return self.call(node_watch, ListMembers(rid),
                         lambda m: isinstance(m, MemberList) and m.request_id == rid,
                         min(5.0, self.timeout_s))

    def tree(self, root: Any) -> Any:
        """A PoolRoot's ``TreeDescription`` (each child's role and address, restarts per
        role), or None."""
        from snakepit_actors.messages import DescribeTree, TreeDescription

        rid = uuid.uuid4().hex
        return self.call(root, DescribeTree(rid),
                         lambda m: isinstance(m, TreeDescription) and m.request_id == rid,
                         min(5.0, self.timeout_s))

    def children(self, supervisor: Any) -> Any:
        """A supervisor's ``ChildrenList`` (child ids, states, restarts), or None."""
        from snakepit_supervision.messages import ChildrenList, WhichChildren

        return self.call(supervisor, WhichChildren(), lambda m: isinstance(m, ChildrenList),
                         min(5.0, self.timeout_s))


__all__ = ["NodeClient", "SnakepitError"]
