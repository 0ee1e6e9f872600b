"""The Supervisor's decisions as plain state: exits and timers in, effects out (no actors).

    Supervisor (supervisor.py: the actor shell; runs hooks, creates actors, sends)
     └─ SupervisorCore (this module: which child stops, restarts, waits, is forgotten)
         ├─ ChildTable + RestartBatch (children.py: the records it keeps)
         └─ RestartPlanner (intensity.py: strategy, intensity, backoff)

The shell feeds the core what happened and executes the returned ``Effects`` in order:

* **An incarnation exits**: ``child_exited(address)`` classifies the exit (``IncarnationGone``:
  normal after ``StoppingNormally`` or a stop of ours, else ``"crashed"``); the shell announces
  it and runs its hooks, then ``after_exit(gone, now)`` decides. A child the core stopped
  finishes its stop (forgotten, or left for its batch); any other is planned: ``Restart`` stops
  the still-running siblings (``StopIncarnation``, last started first), announces each restart
  (``AnnounceRestart``), sets the batch's wakeups (``WakeAfter``) and, once the batch is due and
  every stopped sibling is gone, starts the group in spec order (``StartChildren``); ``Escalate``
  stops everything; ``Ignore`` forgets the child (``ChildForgotten``).
* **A batch's wakeup comes** (``wakeup(due)``): its backoff is over, or, ``STOP_GRACE_S`` after
  it, siblings still stopping are abandoned (``StopTimedOut``) and the group starts anyway; an
  abandoned sibling the group does not restart (temporary, or being terminated) is forgotten.
* **TerminateChild** (``terminate``): a running child is stopped, then forgotten once gone; a
  child waiting to (re)start is forgotten at once.
* **The supervisor stops** (``stop``): nothing is decided any more; pending batches are dropped.

Starting is the shell's: it asks ``child_start_held`` and reports each child ``started`` (with
its new address) or ``held``. Time comes in as ``now`` (seconds, any monotonic scale), so tests
drive the core directly and never sleep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .children import ChildRecord, ChildTable, RestartBatch, load_actor_class, spec_problem
from .intensity import Escalate, Restart, RestartPlanner
from .messages import ActorAddress, ChildSpec

STOP_GRACE_S = 5.0  # siblings stopped for a group restart that take longer are abandoned


@dataclass(frozen=True, slots=True)
class RestartDue:
    """Wakeup payload: batch ``generation`` may start (its backoff or stop grace is over).
    Wakeups cannot be cancelled, so a payload whose batch is gone is ignored."""

    generation: int
    stop_grace: bool = False


@dataclass(frozen=True, slots=True)
class IncarnationGone:
    """The incarnation of ``child_id`` at ``address`` has exited, ``normal`` or not, and why."""

    child_id: str
    address: ActorAddress
    normal: bool
    reason: str


@dataclass(frozen=True, slots=True)
class StopIncarnation:
    """Send ``ActorExitRequest`` to ``address``, the running incarnation of ``child_id``."""

    child_id: str
    address: ActorAddress


@dataclass(frozen=True, slots=True)
class AnnounceRestart:
    """Tell ``notify`` that ``child_id`` restarts in ``after_s`` as incarnation ``restarts``."""

    child_id: str
    after_s: float
    restarts: int


@dataclass(frozen=True, slots=True)
class WakeAfter:
    """Set a wakeup ``after_s`` seconds from now carrying ``payload`` back to ``wakeup``."""

    after_s: float
    payload: RestartDue


@dataclass(frozen=True, slots=True)
class StartChildren:
    """Create these children now, in this order (each one ``held`` or ``started``)."""

    child_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChildForgotten:
    """``child_id`` is gone for good: reply ``ChildTerminated`` to each of ``reply_to``."""

    child_id: str
    reply_to: tuple[ActorAddress, ...]


@dataclass(frozen=True, slots=True)
class StopTimedOut:
    """``child_id`` did not exit within ``STOP_GRACE_S``: abandoned, its group starts anyway."""

    child_id: str


Effect = (
    StopIncarnation
    | AnnounceRestart
    | WakeAfter
    | StartChildren
    | ChildForgotten
    | StopTimedOut
    | Escalate
)
Effects = tuple[Effect, ...]


class SupervisorCore:
    """The children of one supervisor and what happens to them; see the module docstring.

    Unconfigured (``planner`` None) until ``configure``; children exist only after it.
    """

    def __init__(self) -> None:
        self.table = ChildTable()
        self.planner: RestartPlanner | None = None
        self.stopping = False

    @property
    def configured(self) -> bool:
        """Whether ``configure`` has run (the supervisor was initialised)."""
        return self.planner is not None

    def configure(self, planner: RestartPlanner) -> None:
        """Decide restarts with ``planner`` from now on."""
        self.planner = planner

    def new_child_problem(self, spec: Any) -> str | None:
        """Why ``spec`` cannot be added now (not configured, stopping, id in use, bad spec)."""
        if self.planner is None:
            return "supervisor not initialised (send InitSupervisor first)"
        if self.stopping:
            return "supervisor is stopping"
        if self.table.get(getattr(spec, "child_id", "")) is not None:
            return f"child_id {spec.child_id!r} is already in use"
        return spec_problem(spec)

    def add(self, specs: Iterable[ChildSpec]) -> StartChildren:
        """Append children (validated specs) after the others; returns their start."""
        records = [ChildRecord(spec, load_actor_class(spec.actor)) for spec in specs]
        for record in records:
            self.table.add(record)
        return StartChildren(tuple(r.child_id for r in records))

    def records(self, child_ids: Sequence[str]) -> list[ChildRecord]:
        """The records of ``child_ids`` still known, in that order."""
        return [r for r in map(self.table.get, child_ids) if r is not None]

    def started(self, child_id: str, address: ActorAddress) -> None:
        """A new incarnation of ``child_id`` was created at ``address``."""
        record = self._record(child_id)
        record.state, record.address, record.normal_reason = "running", address, None

    def held(self, child_id: str) -> None:
        """``child_id``'s start is held (no address) until ``resume_held``."""
        record = self._record(child_id)
        record.state, record.address = "held", None

    def resume_held(self) -> Effects:
        """Start every held child again (each may be held again)."""
        held = tuple(r.child_id for r in self.table if r.state == "held")
        return (StartChildren(held),) if held and not self.stopping else ()

    def exiting_normally(self, address: ActorAddress, reason: str) -> None:
        """The incarnation at ``address`` announced that its coming exit is normal."""
        record = self.table.by_address(address)
        if record is not None:
            record.normal_reason = reason

    def child_exited(self, address: ActorAddress) -> IncarnationGone | None:
        """Classify the exit of the incarnation at ``address`` and drop its address; None if no
        child has it (an incarnation already forgotten or abandoned, or a duplicate notice)."""
        record = self.table.by_address(address)
        if record is None:
            return None
        if record.normal_reason is not None:
            normal, reason = True, record.normal_reason
        elif record.state == "stopping" or self.stopping:
            normal, reason = True, "shutdown"
        else:
            normal, reason = False, "crashed"
        gone = IncarnationGone(record.child_id, record.address, normal, reason)
        record.address = None
        return gone

    def after_exit(self, gone: IncarnationGone, now: float) -> Effects:
        """What follows the (announced) exit ``gone`` at ``now``: nothing while stopping; the end
        of a stop of ours; else the planner's decision."""
        record = self.table.get(gone.child_id)
        if self.stopping or record is None:
            return ()
        if record.state == "stopping":
            return self._finish_stop(record)
        assert self.planner is not None  # children exist only once configured
        decision = self.planner.plan(self.table.specs(), record.child_id, gone.normal, now)
        if isinstance(decision, Restart):
            return self._schedule_restart(decision)
        if isinstance(decision, Escalate):
            return self._escalate(decision)
        return self._forget(record)

    def wakeup(self, due: RestartDue) -> Effects:
        """A batch's backoff is over, or its stopped siblings' grace (abandon those left)."""
        batch = self.table.batches.get(due.generation)
        if self.stopping or batch is None:
            return ()  # cancelled: merged into a later batch or emptied
        effects = self._abandon_stuck_siblings(batch) if due.stop_grace else ()
        batch.due = True
        return (*effects, *self._run_if_ready(batch))

    def terminate(self, child_id: str, reply_to: ActorAddress) -> Effects | None:
        """Stop ``child_id`` for good and answer ``reply_to`` once it is gone; None if there is
        no such child (or the supervisor is stopping)."""
        record = self.table.get(child_id)
        if record is None or self.stopping:
            return None
        record.terminating = True
        record.terminate_reply_to.append(reply_to)
        if record.state == "running":
            return (self._stop(record),)
        if record.state in ("restarting", "held"):
            return self._forget(record)
        return ()  # "stopping": its coming exit completes the termination

    def stop(self) -> None:
        """The supervisor is stopping: decide nothing more, drop pending batches."""
        self.stopping = True
        self.table.batches.clear()

    # --- steps ---------------------------------------------------------------------------------

    def _schedule_restart(self, decision: Restart) -> Effects:
        batch = self.table.new_batch(decision.restart_ids, decision.stop_ids)
        effects: list[Effect] = []
        for record in self.records(decision.stop_ids):
            if record.state == "running":
                effects.append(self._stop(record))
            if record.state == "stopping":
                batch.waiting_for.add(record.child_id)
        for record in self.records(decision.restart_ids):
            if record.state != "stopping":
                record.state = "restarting"
            effects.append(AnnounceRestart(record.child_id, decision.after_s, record.restarts + 1))
        if decision.after_s > 0:
            effects.append(WakeAfter(decision.after_s, RestartDue(batch.generation)))
        else:
            batch.due = True
        if batch.waiting_for:
            grace_s = decision.after_s + STOP_GRACE_S
            effects.append(WakeAfter(grace_s, RestartDue(batch.generation, stop_grace=True)))
        return (*effects, *self._run_if_ready(batch))

    def _finish_stop(self, record: ChildRecord) -> Effects:
        """A child we stopped is gone: forget it, or let its batch restart it."""
        batch = self.table.batch_waiting_for(record.child_id)
        if batch is not None:
            batch.waiting_for.discard(record.child_id)
        effects: Effects = ()
        if record.terminating or batch is None or record.child_id not in batch.restart_ids:
            effects = self._forget(record)
        else:
            record.state = "restarting"
        return effects if batch is None else (*effects, *self._run_if_ready(batch))

    def _abandon_stuck_siblings(self, batch: RestartBatch) -> Effects:
        """Siblings still stopping after the grace are given up on (a late exit is ignored) and
        then treated as gone: restarted with the batch, or forgotten as ``_finish_stop`` would."""
        effects: list[Effect] = []
        for record in self.records(sorted(batch.waiting_for)):
            effects.append(StopTimedOut(record.child_id))
            record.address = None
            if record.terminating or record.child_id not in batch.restart_ids:
                effects.extend(self._forget(record))
            else:
                record.state = "restarting"
        batch.waiting_for.clear()
        return tuple(effects)

    def _run_if_ready(self, batch: RestartBatch) -> Effects:
        if batch.generation not in self.table.batches or not batch.ready():
            return ()
        del self.table.batches[batch.generation]
        records = [r for r in self.records(batch.restart_ids) if r.state == "restarting"]
        for record in records:
            record.restarts += 1
        return (StartChildren(tuple(r.child_id for r in records)),) if records else ()

    def _escalate(self, decision: Escalate) -> Effects:
        self.stop()
        return (decision,)

    def _stop(self, record: ChildRecord) -> StopIncarnation:
        assert record.address is not None  # a running child has an address
        record.state = "stopping"
        return StopIncarnation(record.child_id, record.address)

    def _forget(self, record: ChildRecord) -> Effects:
        self.table.remove(record.child_id)
        if self.planner is not None:
            self.planner.forget(record.child_id)
        return (ChildForgotten(record.child_id, tuple(record.terminate_reply_to)),)

    def _record(self, child_id: str) -> ChildRecord:
        record = self.table.get(child_id)
        if record is None:
            raise KeyError(f"no child {child_id!r}")
        return record
