"""Which member node runs which worker, and which members are alive: plain state, no actors.

``NodeWatch`` (node_watch.py) is the actor shell around one ``NodeTable`` per pool::

    member joins the convention ──> add()  "joining"  (its NodeAgent was just created)
    first NodePong ───────────────> pong() "live"     (now it may receive workers)
    no pong for heartbeat x misses  tick() "dead"     (its workers must be placed again)
    a pong again (paused, cut off) > pong() "live"     (probed with backoff for REVIVE_WINDOW_S)
    it leaves the convention ─────> forget()          (a new join starts over)
    it drains (SIGTERM) ──────────> drain()  "draining" (pinged, but placed on no more)

A member that joins when the others are busy gets workers moved to it, one at a time, while
the most loaded member runs two or more workers more than the least loaded (``overloaded``).

Placement is least-loaded: a worker goes to the live member with the fewest workers (ties by
name, so it is deterministic). A worker with nowhere to go is *parked* until a member comes
alive; ``tick`` reports parked workers once they waited ``placement_timeout``.

The shared-secret check is an HMAC of the node's name: the digest is advertised as a Thespian
capability (visible to every member), never the secret itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

NODE_CAPABILITY = "snakepit_node"
SECRET_CAPABILITY = "snakepit_secret_digest"

MemberState = Literal["joining", "live", "draining", "dead"]

#: Capabilities every Thespian system has (not worth showing as a member's).
_THESPIAN_KEYS = ("Admin Port", "Convention Address", "Thespian ", "Python Version")

#: How long a dead member is still probed (its agent may answer again after a pause or a
#: network cut); probes back off from 2 heartbeats to PROBE_MAX_GAP_S, so a black-holed host
#: never fills Thespian's transmit queue.
REVIVE_WINDOW_S = 600.0
PROBE_MAX_GAP_S = 60.0


def secret_digest(secret: str, node: str) -> str:
    """What a member started with ``secret`` advertises (``SECRET_CAPABILITY``)."""
    return hmac.new(secret.encode(), f"snakepit-node:{node}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def meets_requirements(capabilities: Mapping[str, Any],
                       requirements: Mapping[str, Any] | None) -> bool:
    """Thespian's ``actorSystemCapabilityCheck`` for actors that may be placed on a member
    (Worker, NodeAgent): the system must advertise every required capability. Without
    requirements any system will do (this one first)."""
    return all(capabilities.get(k) == v for k, v in (requirements or {}).items())


def member_problem(capabilities: Mapping[str, Any], placement: Mapping[str, Any],
                   secret: str) -> str | None:
    """Why a convention member cannot run this pool's workers, or None if it can."""
    node = capabilities.get(NODE_CAPABILITY)
    if not isinstance(node, str) or not node:
        return "not a snakepit node (no snakepit_node capability)"
    missing = {k: v for k, v in placement.items() if capabilities.get(k) != v}
    if missing:
        return f"does not advertise {missing}"
    if secret and not hmac.compare_digest(str(capabilities.get(SECRET_CAPABILITY, "")),
                                          secret_digest(secret, node)):
        return "wrong or missing shared secret"
    return None


@dataclass(slots=True)
class Member:
    """One member node as the pool sees it."""

    name: str
    capabilities: dict[str, Any]
    agent: Any  # the pool's NodeAgent on it (an ActorAddress)
    joined_at: float
    state: MemberState = "joining"
    last_pong: float = 0.0
    pid: int = 0
    dead_since: float = 0.0
    next_probe: float = 0.0
    probe_gap: float = 0.0


@dataclass(slots=True)
class NodeTable:
    """Members, assignments (worker -> member) and parked workers of one pool."""

    heartbeat_s: float
    misses: int
    placement_timeout: float
    members: dict[str, Member] = field(default_factory=dict)
    assigned: dict[str, str] = field(default_factory=dict)
    parked: dict[str, float] = field(default_factory=dict)  # worker -> parked since
    reported: set[str] = field(default_factory=set)  # parked workers already reported

    @property
    def deadline_s(self) -> float:
        """Silence after which a member counts as dead."""
        return self.heartbeat_s * self.misses

    def add(self, name: str, capabilities: Mapping[str, Any], agent: Any, now: float) -> None:
        """A matching member joined (again): it starts "joining" until its first pong."""
        self.members[name] = Member(name, dict(capabilities), agent, now, last_pong=now)

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a member that is not dead."""
        member = self.members.get(name)
        return member is not None and member.state != "dead"

    def pong(self, name: str, now: float, pid: int = 0) -> bool:
        """A heartbeat answer; True if the member just became live (parked work may go): its
        first answer, or one after it was declared dead (it was paused or cut off)."""
        member = self.members.get(name)
        if member is None or (member.state == "dead"
                              and now - member.dead_since > REVIVE_WINDOW_S):
            return False
        member.last_pong, member.pid = now, pid or member.pid
        if member.state == "draining":
            return False
        became_live = member.state != "live"
        member.state = "live"
        return became_live

    def drain(self, name: str) -> list[str]:
        """Member ``name`` is leaving: place nothing more there; the workers assigned to it
        (they stay assigned until they ask for a new place)."""
        member = self.members.get(name)
        if member is None or member.state == "dead":
            return []
        member.state = "draining"
        return self.workers_on(name)

    def place(self, worker_id: str, now: float) -> str | None:
        """The member that should run ``worker_id`` now (least loaded), or None: parked."""
        self.assigned.pop(worker_id, None)
        on = self._live_loads()
        if not on:
            self.parked.setdefault(worker_id, now)
            return None
        best = min(on, key=lambda name: (len(on[name]), name))
        self.assigned[worker_id] = best
        self.parked.pop(worker_id, None)
        self.reported.discard(worker_id)
        return best

    def settling(self) -> bool:
        """Whether a member that joined is yet to answer its first ping: placing parked
        workers now would crowd them all onto whichever member answered first."""
        return any(m.state == "joining" for m in self.members.values())

    def overloaded(self, moving: set[str]) -> str | None:
        """A worker to move for balance: one on the most loaded live member when it runs at
        least two more than the least loaded one (so a move never makes it worse), and
        nothing is parked or already moving. Deterministic: the last worker by id."""
        on = self._live_loads()
        if self.parked or moving or len(on) < 2:
            return None
        busiest = max(on, key=lambda n: (len(on[n]), n))
        idlest = min(on, key=lambda n: (len(on[n]), n))
        if len(on[busiest]) - len(on[idlest]) < 2:
            return None
        return max(on[busiest])

    def workers_on(self, name: str) -> list[str]:
        """The workers assigned to member ``name``."""
        return [w for w, node in self.assigned.items() if node == name]

    def _live_loads(self) -> dict[str, list[str]]:
        """Every live member -> the workers assigned to it."""
        on: dict[str, list[str]] = {m.name: [] for m in self.members.values()
                                    if m.state == "live"}
        for worker_id, node in self.assigned.items():
            if node in on:
                on[node].append(worker_id)
        return on

    def unpark(self, now: float) -> list[tuple[str, str]]:
        """Place every parked worker that can go somewhere now: ``(worker_id, node)``."""
        placed = []
        for worker_id in list(self.parked):
            node = self.place(worker_id, now)
            if node is None:
                break
            placed.append((worker_id, node))
        return placed

    def tick(self, now: float) -> tuple[list[str], list[str]]:
        """Members silent past the deadline (to ``lose``) and parked workers that waited
        ``placement_timeout`` (reported once per parking)."""
        dead = [m.name for m in self.members.values()
                if m.state != "dead" and now - m.last_pong > self.deadline_s]
        overdue = [w for w, since in self.parked.items()
                   if now - since >= self.placement_timeout and w not in self.reported]
        self.reported.update(overdue)
        return dead, overdue

    def lose(self, name: str, now: float) -> list[str]:
        """Member ``name`` is gone: mark it dead; the workers that were assigned to it."""
        member = self.members.get(name)
        if member is not None:
            member.state, member.dead_since = "dead", now
            member.probe_gap = 0.0
            member.next_probe = now + 2 * self.heartbeat_s
        lost = self.workers_on(name)
        for worker_id in lost:
            del self.assigned[worker_id]
        return lost

    def forget(self, name: str) -> None:
        """Member ``name`` left the convention: a later join starts over (a new agent)."""
        self.members.pop(name, None)

    def pingable(self, now: float) -> list[Member]:
        """Members to ping this round: joining or live ones, and dead ones whose next probe
        is due (within ``REVIVE_WINDOW_S``; each probe doubles the gap to the next)."""
        due = []
        for member in self.members.values():
            if member.state != "dead":
                due.append(member)
            elif now >= member.next_probe and now - member.dead_since <= REVIVE_WINDOW_S:
                member.probe_gap = min(max(2 * member.probe_gap, 2 * self.heartbeat_s),
                                       PROBE_MAX_GAP_S)
                member.next_probe = now + member.probe_gap
                due.append(member)
        return due

    def summary(self, now: float = 0.0) -> dict[str, dict[str, Any]]:
        """node -> state, seconds since its last pong, assigned worker count and
        capabilities (without the secret digest or Thespian's own), by node name."""
        return {m.name: {"state": m.state, "silent_s": round(max(0.0, now - m.last_pong), 2),
                         "workers": len(self.workers_on(m.name)),
                         "capabilities": {
                             k: v for k, v in m.capabilities.items()
                             if k != SECRET_CAPABILITY and not k.startswith(_THESPIAN_KEYS)}}
                for m in sorted(self.members.values(), key=lambda m: m.name)}
