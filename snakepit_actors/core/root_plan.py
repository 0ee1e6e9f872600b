"""The PoolRoot's decisions as plain state: when a child of one pool's tree dies, restart it
(and tell whoever sends to it), report the pool degraded, or fail the pool.

    child died (role, now) ──> RootPlan ──> Restart(role, tell) | Degrade(reason) | Fail(reason)
                                 │ one RestartIntensity per role (max_restarts in max_seconds)
                                 └ RULES: role -> who holds its address, what rebuilds it

Each role is one_for_one: a death takes no sibling down, because every child that a restart
would otherwise need to bring back in step (OTP's rest_for_one) is told the new address
instead and re-announces what the new child has lost (``messages.ActorReplaced``). Restarting
siblings would cost far more here: a WorkerSupervisor restart kills and restarts every worker
process. ``docs/supervision.md`` has the table and the reason for each row.

No Thespian, no clock of its own: ``now`` comes in (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

from snakepit_supervision.intensity import RestartIntensity

#: A child that dies more than this often within ROOT_MAX_SECONDS is given up (per role).
ROOT_MAX_RESTARTS = 3
ROOT_MAX_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ChildRule:
    """How the PoolRoot treats the death of one kind of child.

    Attributes:
        restart: "permanent" (restarted within the intensity) or "never" (its death fails the
            pool: its state cannot be rebuilt from the others).
        tell: the roles that must learn the new child's address (``ActorReplaced``);
            "requester" is whoever started the pool (the handle, a node), told by the Pool
            once it uses the new child (``SessionStoreReplaced``).
        given_up: past the intensity: "fail" the pool, or only report it "degraded" (the pool
            may still serve, or refuse with ``PoolNotReadyError``).
    """

    restart: str
    tell: tuple[str, ...] = ()
    given_up: str = "fail"


#: Every child of a PoolRoot (in start order) and its rule.
RULES: dict[str, ChildRule] = {
    # facts of every worker: the Workers re-announce, the Starters report workers between lives
    "worker_registry": ChildRule("permanent", ("pool", "worker_supervisor", "recycler",
                                               "node_watch")),
    # the on-disk process table survives; the Workers re-send their process's identity
    "process_registry": ChildRule("permanent", ("worker_supervisor",)),
    # the WorkerSupervisor re-sends each running Starter
    "starter_registry": ChildRule("permanent", ("worker_supervisor",)),
    # sessions come back from the Pool's pins (without their data); programs are lost
    "session_store": ChildRule("permanent", ("pool", "requester")),
    # rebuilt from the WorkerRegistry; it announces itself to its senders (PoolReplaced)
    "pool": ChildRule("permanent", ("worker_supervisor",)),
    # leases nothing it needs to keep: its leases come back as its process is gone, the Pool
    # fails what it was not heard to answer (ForwardLedger) and forwards to the new one
    "data_plane": ChildRule("permanent", ("pool",)),
    # every worker starts afresh below a new one; past the intensity the pool is degraded
    "worker_supervisor": ChildRule("permanent", given_up="degrade"),
    # samples from the WorkerRegistry's facts: nothing to rebuild
    "recycler": ChildRule("permanent"),
    # stateless: re-reads the launcher's pid
    "launcher_watch": ChildRule("permanent"),
    # placements and member heartbeats are not rebuilt, and every Starter holds its address
    "node_watch": ChildRule("never"),
}


@dataclass(frozen=True, slots=True)
class Restart:
    """Start a new ``role`` and tell ``tell`` (roles) its address; restart number
    ``restarts`` of that role."""

    role: str
    tell: tuple[str, ...]
    restarts: int


@dataclass(frozen=True, slots=True)
class Degrade:
    """Do not restart ``role``: the pool stays up but reports itself degraded (``reason``)."""

    role: str
    reason: str


@dataclass(frozen=True, slots=True)
class Fail:
    """Stop the whole tree: ``role`` cannot be rebuilt (``reason``)."""

    role: str
    reason: str


RootDecision = Restart | Degrade | Fail


class RootPlan:
    """The PoolRoot's restart decisions for one pool; see the module docstring.

    Args:
        max_restarts: restarts allowed per role within ``max_seconds``.
        max_seconds: the sliding window.
    """

    def __init__(self, max_restarts: int = ROOT_MAX_RESTARTS,
                 max_seconds: float = ROOT_MAX_SECONDS) -> None:
        self._intensity = {role: RestartIntensity(max_restarts, max_seconds) for role in RULES}
        self._restarts = dict.fromkeys(RULES, 0)
        self._supervisor_gave_up = False

    def supervisor_escalated(self) -> None:
        """The WorkerSupervisor gave up on its Starters (it says so before it exits): its
        coming death is not restarted (it would give up again)."""
        self._supervisor_gave_up = True

    def restarts(self, role: str) -> int:
        """How many times ``role`` was restarted."""
        return self._restarts.get(role, 0)

    def child_died(self, role: str, now: float) -> RootDecision:
        """``role`` exited while the pool runs (an unknown role fails the pool)."""
        rule = RULES.get(role)
        if rule is None or rule.restart == "never":
            return Fail(role, f"the {role} died and cannot be rebuilt")
        if role == "worker_supervisor" and self._supervisor_gave_up:
            return Degrade(role, "the worker supervisor gave up restarting")
        if not self._intensity[role].record(now):
            reason = f"the {role} died more than {self._intensity[role].max_restarts} times " \
                     f"in {self._intensity[role].max_seconds:g}s"
            return Degrade(role, reason) if rule.given_up == "degrade" else Fail(role, reason)
        self._restarts[role] += 1
        return Restart(role, rule.tell, self._restarts[role])
