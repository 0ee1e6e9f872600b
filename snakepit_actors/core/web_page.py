"""The web view's page state as plain data: what a node's page shows, and what changed.

    status.gather() report ──> page_state(report) ──> PageState  (JSON-ready dicts)
    PageDiffer.update(state, now) ──> PageUpdate (pools changed or gone) | None (nothing new)
    apply_update(state, update) ──> the state the page holds after it (what a browser does)
    demo_target(state, pool, what, worker_id) ──> Target(pid, label) | TargetMissing(reason)

A page state holds the node (name, pid, admin port, uptime) and, per pool: its state, its
actor tree (every node keyed by its path, with pid, state and restarts), its workers (node,
pid, state, requests, RSS, uptime), its queue and latency, and the members of a multi-host
pool (taken out of the tree's NodeWatch). Some fields change on every look without meaning
anything (``VOLATILE``: uptimes, RSS, a member's silence): a pool whose other fields are
unchanged is sent again only every ``REFRESH_S``, so an idle node pushes almost nothing.

No Thespian, no clock of its own: ``now`` comes in (monotonic seconds).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from snakepit_actors.messages.api import LOCAL_NODE

#: Fields whose change alone does not make a pool worth sending before ``REFRESH_S``.
VOLATILE = frozenset({"uptime_s", "rss_mb", "silent_s"})
#: A pool whose only changes are ``VOLATILE`` is sent again after this many seconds.
REFRESH_S = 5.0
#: What the demo buttons can kill (``demo_target``).
DEMO_TARGETS = ("process", "worker_actor", "pool")

PageState = dict[str, Any]


def page_state(report: Mapping[str, Any]) -> PageState:
    """The page's state from a ``status.gather`` report (the same data ``status --json``
    prints): ``{"node": {...}, "pools": {name: pool}}``; pools keep the report's order."""
    node = {k: report.get(k) for k in ("node", "node_pid", "admin_port", "uptime_s")}
    return {"node": node, "pools": {p["name"]: _pool(p) for p in report.get("pools", [])}}


def _pool(report: Mapping[str, Any]) -> dict[str, Any]:
    stats = report.get("stats") or {}
    members: list[dict[str, Any]] = []
    tree = _tree(report.get("tree") or {}, str(report["name"]), members)
    return {
        "name": report["name"], "state": report.get("state", "unknown"),
        "adapter": report.get("adapter", ""), "pool_size": report.get("pool_size", 0),
        "tree": tree,
        "workers": [dict(w) for w in report.get("workers", [])],
        "queue": {k: stats.get(k) for k in ("queued", "busy", "available", "workers",
                                             "requests", "errors", "queue_timeouts",
                                             "saturated", "restarts", "recycled")},
        "latency": {"p50_ms": stats.get("latency_p50_ms"),
                    "p99_ms": stats.get("latency_p99_ms")},
        "members": members,
    }


def _tree(node: Mapping[str, Any], parent_key: str, members: list[dict[str, Any]]
          ) -> dict[str, Any]:
    """A copy of a status tree node, keyed by its path (``pool/PoolRoot/.../Worker``); the
    NodeWatch's member list moves to ``members``."""
    label = str(node.get("actor", "?")) + (f":{node['id']}" if node.get("id") else "")
    key = f"{parent_key}/{label}"
    out = {"key": key, "actor": node.get("actor", "?"), "id": node.get("id"),
           "pid": node.get("pid"), "state": node.get("state", "unknown"),
           "restarts": node.get("restarts", 0), "process": node.get("process"),
           "children": [_tree(c, key, members) for c in node.get("children", [])]}
    for m in node.get("members", []):
        members.append({k: m.get(k) for k in ("node", "state", "workers", "silent_s")}
                       | {"capabilities": {k: v for k, v in m.get("capabilities", {}).items()
                                           if k != "snakepit_node"}})
    for name, why in node.get("ignored", {}).items():
        members.append({"node": name, "state": "ignored", "workers": 0, "silent_s": None,
                        "capabilities": {}, "reason": why})
    return out


def without_volatile(value: Any) -> Any:
    """``value`` with every ``VOLATILE`` key removed, at any depth (what changes compare)."""
    if isinstance(value, Mapping):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def walk(tree: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every node of a page tree, depth first (the root first)."""
    yield tree
    for child in tree.get("children", []):
        yield from walk(child)


@dataclass(frozen=True, slots=True)
class PageUpdate:
    """What changed since the last update: the pools to replace (whole), the pools gone, the
    node's header, and the tree keys whose actor was restarted or got a new process (the page
    flashes them)."""

    node: dict[str, Any]
    pools: dict[str, dict[str, Any]]
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "pools": self.pools, "removed": list(self.removed),
                "restarted": list(self.restarted)}


@dataclass
class PageDiffer:
    """Turns successive page states into the updates a page needs.

    ``state`` is what a page that applied every update so far holds: a page that connects
    gets it whole, then the updates that follow.
    """

    state: PageState = field(default_factory=lambda: {"node": {}, "pools": {}})
    _sent_at: dict[str, float] = field(default_factory=dict)

    def update(self, new: PageState, now: float) -> PageUpdate | None:
        """The update from the last state to ``new`` (None: nothing worth sending), and
        remember ``new`` as sent (the pools not sent stay as they were)."""
        old_pools = self.state["pools"]
        changed: dict[str, dict[str, Any]] = {}
        for name, pool in new["pools"].items():
            old = old_pools.get(name)
            stale = now - self._sent_at.get(name, float("-inf")) >= REFRESH_S
            if old is None or without_volatile(old) != without_volatile(pool) or (
                    stale and old != pool):
                changed[name] = copy.deepcopy(pool)
        removed = tuple(name for name in old_pools if name not in new["pools"])
        restarted = tuple(key for name, pool in changed.items() if name in old_pools
                          for key in restarted_keys(old_pools[name], pool))
        node_changed = without_volatile(new["node"]) != without_volatile(self.state["node"])
        if not changed and not removed and not node_changed:
            return None
        update = PageUpdate(dict(new["node"]), changed, removed, restarted)
        self.state = apply_update(self.state, update)
        for name in changed:
            self._sent_at[name] = now
        for name in removed:
            self._sent_at.pop(name, None)
        return update


def restarted_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keys of ``new``'s tree nodes whose restart count grew or whose process changed
    since ``old`` (a node new to the tree is not counted: the pool just started)."""
    before = {n["key"]: n for n in walk(old["tree"])}
    out = []
    for node in walk(new["tree"]):
        was = before.get(node["key"])
        if was is None:
            continue
        if (node["restarts"] or 0) > (was["restarts"] or 0) or _moved(
                _process_pid(was), _process_pid(node)) or _moved(was["pid"], node["pid"]):
            out.append(node["key"])
    return out


def _process_pid(node: Mapping[str, Any]) -> Any:
    return (node.get("process") or {}).get("pid")


def _moved(old_pid: Any, new_pid: Any) -> bool:
    """Both known and different: a new process (an unknown pid is no evidence)."""
    return bool(old_pid and new_pid and old_pid != new_pid)


def apply_update(state: PageState, update: PageUpdate) -> PageState:
    """The state a page holds after ``update`` (a new dict; ``state`` is not changed)."""
    pools = {name: pool for name, pool in state["pools"].items() if name not in update.removed}
    pools.update(copy.deepcopy(update.pools))
    return {"node": dict(update.node), "pools": pools}


@dataclass(frozen=True, slots=True)
class Target:
    """A process a demo button may kill: its pid and what it is (for the reply and the log)."""

    pid: int
    label: str


@dataclass(frozen=True, slots=True)
class TargetMissing:
    """No such process in the page's state now; ``reason`` says why (shown to the viewer)."""

    reason: str


def demo_target(state: PageState, pool: str, what: str, worker_id: str = ""
                ) -> Target | TargetMissing:
    """The pid a demo button kills: ``what`` is "process" (``worker_id``'s external process),
    "worker_actor" (its Worker actor) or "pool" (the pool's Pool actor)."""
    if what not in DEMO_TARGETS:
        return TargetMissing(f"what must be one of {list(DEMO_TARGETS)}, got {what!r}")
    found = state["pools"].get(pool)
    if found is None:
        return TargetMissing(f"no pool {pool!r}; pools: {sorted(state['pools'])}")
    if what == "pool":
        for node in walk(found["tree"]):
            if node["actor"] == "Pool" and node["pid"]:
                return Target(int(node["pid"]), f"the Pool actor of {pool}")
        return TargetMissing(f"pool {pool!r} has no running Pool actor now")
    if not worker_id:
        return TargetMissing("worker_id is needed to kill a worker")
    if what == "process":
        for row in found["workers"]:
            if row["worker_id"] == worker_id and row.get("pid") and row.get(
                    "node", LOCAL_NODE) == LOCAL_NODE:
                return Target(int(row["pid"]), f"the process of {worker_id}")
        return TargetMissing(f"{worker_id!r} has no local process now")
    for node in walk(found["tree"]):
        if node["actor"] == "Starter" and node["id"] == worker_id:
            for child in node["children"]:
                if child["actor"] == "Worker" and child["pid"]:
                    return Target(int(child["pid"]), f"the Worker actor of {worker_id}")
    return TargetMissing(f"{worker_id!r} has no running Worker actor now")


def apply_worker_event(state: PageState, event: str, fields: Mapping[str, Any]
                       ) -> PageState | None:
    """``state`` with a worker event already applied to its worker row (a restart shows
    before the next look at the tree), or None if the event changes no row."""
    pool, worker_id = fields.get("pool"), fields.get("worker_id")
    found = state["pools"].get(pool) if isinstance(pool, str) else None
    if found is None or event not in ("worker.exited", "worker.restarted"):
        return None
    rows = found["workers"]
    for i, row in enumerate(rows):
        if row["worker_id"] != worker_id:
            continue
        if event == "worker.exited":
            new_row = row | {"pid": None, "state": "exited", "reason": fields.get("reason")}
        else:
            new_row = row | {"pid": fields.get("pid"), "state": "ready", "reason": None,
                             "restarts": fields.get("restarts", row["restarts"]),
                             "uptime_s": 0.0}
        if new_row == row:
            return None
        pools = dict(state["pools"])
        pools[pool] = found | {"workers": [*rows[:i], new_row, *rows[i + 1:]]}
        return {"node": state["node"], "pools": pools}
    return None
