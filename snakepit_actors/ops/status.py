"""``snakepit-actors status``: the live state of a running node, gathered from another process.

For each pool (``failed`` at once when its PoolRoot no longer listens: the tree stopped
itself): the supervision tree as it is now (every actor, its class, OS pid, state and
restarts; Thespian's own status request gives each actor's children, ``WhichChildren`` gives
the supervisors' view of theirs), the worker table (external process pid, state, requests
served, RSS of the process tree, uptime) and the pool's stats. An actor's pid is found from the
loopback port it listens on (its Thespian address). Nothing is started or changed.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import asdict
from typing import Any

from snakepit_actors.messages import LOCAL_NODE
from snakepit_actors.ops.node_client import NodeClient
from snakepit_actors.tree.recycler import tree_rss_bytes

_PORT_RE = re.compile(r":(\d+)\)?$")


def listening_pids() -> dict[int, int]:
    """TCP port -> pid of the process listening on it (this user's processes)."""
    import psutil

    out: dict[int, int] = {}
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.pid and conn.laddr:
                out.setdefault(conn.laddr.port, conn.pid)
    return out


class PortPids:
    """``listening_pids`` kept between looks (the web view's collector looks every 0.5 s and
    a scan of every process's sockets is its dearest step): scanned again, at most once per
    look (``new_look``), only when a port is unknown or its process is gone."""

    def __init__(self) -> None:
        self._pids: dict[int, int] = {}
        self._scanned = False

    def new_look(self) -> PortPids:
        self._scanned = False
        return self

    def get(self, port: int) -> int | None:
        import psutil

        pid = self._pids.get(port)
        if (pid is None or not psutil.pid_exists(pid)) and not self._scanned:
            self._pids, self._scanned = listening_pids(), True
            pid = self._pids.get(port)
        return pid

    def __bool__(self) -> bool:
        return bool(self._pids)


def _pid_of(address: Any, pids: dict[int, int] | PortPids) -> int | None:
    match = _PORT_RE.search(str(address))
    return pids.get(int(match.group(1))) if match else None


def _class_name(actor_class: Any) -> str:
    name = getattr(actor_class, "__name__", None) or str(actor_class)
    return name.rsplit(".", 1)[-1]


def gather(client: NodeClient, pool_names: list[str] | None = None,
           pids: PortPids | None = None) -> dict[str, Any]:
    """The node's status as plain data (what ``status --json`` prints); ``pids`` keeps the
    actors' pids between calls (default: scan once now)."""
    ports: dict[int, int] | PortPids = listening_pids() if pids is None else pids.new_look()
    now = time.time()
    pools = []
    for entry in client.node.pools:
        if pool_names and entry.name not in pool_names:
            continue
        row = {"name": entry.name, "adapter": entry.adapter, "pool_size": entry.pool_size}
        root_pid = _pid_of(entry.root, ports)
        if ports and root_pid is None:  # its PoolRoot is gone: do not wait
            pools.append(row | {"state": "failed", "stats": None, "workers": [], "tree": {
                "actor": "PoolRoot", "pid": None, "state": "failed", "restarts": 0,
                "children": []}})
            continue
        stats = client.stats(entry)
        workers = client.workers(entry)
        by_id = {w.worker_id: w for w in workers}
        tree = _walk(client, entry.root, ports, by_id, {})
        pools.append(row | {
            "state": _state(stats, tree),
            "stats": _stats_dict(stats),
            "workers": [_worker_row(w, now) for w in workers],
            "tree": tree,
        })
    return {"node": client.node.name, "node_pid": client.node.node_pid,
            "admin_port": client.port, "uptime_s": round(now - client.node.started_at, 1),
            "pools": pools}


def _state(stats: Any, tree: dict[str, Any]) -> str:
    """The pool's state: its Pool's word; "failed" when its PoolRoot is gone too (the tree
    stopped itself: a child it could not rebuild died, or one died too often)."""
    if stats is not None:
        return str(stats.state)
    return "failed" if tree["state"] == "unreachable" else "unreachable"


def _stats_dict(stats: Any) -> dict[str, Any] | None:
    if stats is None:
        return None
    data = asdict(stats)
    data.pop("request_id", None)
    data["latency_buckets_ms"] = [[("+inf" if b == float("inf") else b), n]
                                  for b, n in stats.latency_buckets_ms]
    return data


def _worker_row(info: Any, now: float) -> dict[str, Any]:
    local = info.node == LOCAL_NODE  # a member node's pids are of another host: no RSS
    rss = tree_rss_bytes(info.pid) if info.pid and local else None
    return {"worker_id": info.worker_id, "node": info.node, "pid": info.pid,
            "state": info.state, "reason": info.reason,
            "requests": info.requests, "restarts": info.restarts,
            "rss_mb": None if rss is None else round(rss / 1048576, 1),
            "uptime_s": round(now - info.started_at, 1) if info.started_at else None,
            "endpoint": info.endpoint}


def _walk(client: NodeClient, address: Any, pids: dict[int, int] | PortPids,
          workers: dict[str, Any],
          meta: dict[str, Any]) -> dict[str, Any]:
    status = client.actor_status(address)
    actor = _class_name(status.actorClass) if status is not None else "?"
    node: dict[str, Any] = {"actor": actor, "pid": _pid_of(address, pids),
                            "state": meta.get("state", "running" if status else "unreachable"),
                            "restarts": meta.get("restarts", 0), "children": []}
    if "child_id" in meta:
        node["id"] = meta["child_id"]
    if status is None:
        return node
    listed = client.children(address) if actor in ("WorkerSupervisor", "Starter") else None
    unlisted = list(status.childActors)
    roles = _root_roles(client, address) if actor == "PoolRoot" else {}
    for info in listed.children if listed is not None else ():  # the supervisor's start order
        child = next((c for c in unlisted if info.address is not None and c == info.address),
                     None)
        if child is None:  # waiting for its restart: no actor to ask
            node["children"].append({"actor": _class_name(info.actor), "id": info.child_id,
                                     "pid": None, "state": info.state,
                                     "restarts": info.restarts, "children": []})
            continue
        unlisted.remove(child)
        node["children"].append(_walk(client, child, pids, workers, {
            "child_id": info.child_id, "state": info.state, "restarts": info.restarts}))
    for child in unlisted:
        node["children"].append(_walk(client, child, pids, workers, roles.get(str(child), {})))
    if actor == "NodeWatch":
        listed_members = client.members(address)
        if listed_members is not None:
            node["members"] = [asdict(m) | {"capabilities": dict(m.capabilities)}
                               for m in listed_members.members]
            node["ignored"] = dict(listed_members.ignored)
    if actor == "Worker" and meta.get("child_id") in workers:
        w = workers[meta["child_id"]]
        node["process"] = {"pid": w.pid, "state": w.state, "endpoint": w.endpoint,
                           "node": w.node}
    return node


def _root_roles(client: NodeClient, root: Any) -> dict[str, dict[str, Any]]:
    """A PoolRoot's children by address: their role and how often that role was restarted
    (``DescribeTree``); empty if it did not answer."""
    tree = client.tree(root)
    if tree is None:
        return {}
    restarts = dict(tree.restarts)
    return {str(address): {"role": role, "restarts": restarts.get(role, 0)}
            for role, address in tree.children}


def render(report: dict[str, Any]) -> str:
    """The report as text: tree, worker table and stats per pool."""
    lines = [f"node {report['node']}  pid {report['node_pid']}  admin port "
             f"{report['admin_port']}  up {report['uptime_s']} s"]
    for pool in report["pools"]:
        lines += ["", f"pool {pool['name']}  [{pool['state']}]  {pool['pool_size']} workers  "
                      f"adapter {pool['adapter']}", ""]
        lines += _tree_lines(pool["tree"], "", True, True)
        lines += ["", f"  {'worker':<22} {'node':<12} {'pid':>7} {'state':<9} {'requests':>8} "
                      f"{'restarts':>8} {'rss MB':>7} {'uptime s':>9}"]
        for w in pool["workers"]:
            lines.append(f"  {w['worker_id']:<22} {w['node']:<12} {_num(w['pid']):>7} "
                         f"{w['state']:<9} "
                         f"{w['requests']:>8} {w['restarts']:>8} {_num(w['rss_mb']):>7} "
                         f"{_num(w['uptime_s']):>9}"
                         + (f"  ({w['reason']})" if w.get("reason") else ""))
        s = pool["stats"]
        if s:
            lines += ["", f"  requests {s['requests']}  errors {s['errors']}  queued "
                          f"{s['queued']}  busy {s['busy']}/{s['workers']}  restarts "
                          f"{s['restarts']}  recycled {s['recycled']}  queue timeouts "
                          f"{s['queue_timeouts']}  saturated {s['saturated']}  session moves "
                          f"{s['session_moves']}  lost workers {s['lost_workers']}  p50 "
                          f"{s['latency_p50_ms']:.2f} ms  p99 {s['latency_p99_ms']:.2f} ms"]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "-" if value is None else str(value)


def _tree_lines(node: dict[str, Any], prefix: str, last: bool, root: bool) -> list[str]:
    label = node["actor"] + (f" {node['id']}" if "id" in node else "")
    head = ("  " if root else prefix + ("└─ " if last else "├─ ")) + label
    text = (f"{head:<44} pid {_num(node['pid']):>7}  {node['state']:<10} restarts "
            f"{node['restarts']}")
    if "process" in node:
        where = node["process"]["node"]
        text += (f"  -> process {node['process']['pid']} ({node['process']['state']})"
                 + ("" if where == LOCAL_NODE else f" on {where}"))
    lines = [text]
    child_prefix = "  " if root else prefix + ("   " if last else "│  ")
    for m in node.get("members", []):
        caps = " ".join(f"{k}={v}" for k, v in m["capabilities"].items()
                        if k != "snakepit_node")
        lines.append(f"{child_prefix}   member {m['node']:<14} {m['state']:<8} "
                     f"{m['workers']} workers  last answer {m['silent_s']} s ago  {caps}")
    for name, why in node.get("ignored", {}).items():
        lines.append(f"{child_prefix}   member {name:<14} ignored: {why}")
    for i, child in enumerate(node["children"]):
        lines += _tree_lines(child, child_prefix, i == len(node["children"]) - 1, False)
    return lines
