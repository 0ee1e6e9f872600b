"""Supervisor: an OTP-style supervisor actor on Thespian, a thin shell around ``RestartPlanner``.

    parent (any actor: sees ChildActorExited when this supervisor gives up)
     └─ Supervisor (one_for_one | one_for_all | rest_for_one; restart intensity; backoff)
         ├─ child_1 (permanent | transient | temporary)
         └─ child_n  (each forked by the supervisor, bound to it by PR_SET_PDEATHSIG)

* **A child crashes** (killed, or exits without ``StoppingNormally``): Thespian delivers
  ``ChildActorExited`` within about 4 ms. ``ChildExited`` goes to ``notify`` and every exit
  watcher, ``on_child_exited`` runs, and the planner decides: the strategy's group is stopped
  (last started first) and started again in order, after the crashed child's backoff and once
  the stopped siblings are gone. Each new incarnation gets a new address and its init message.
* **A child exits normally** (``StoppingNormally`` first, or stopped by the supervisor): a
  permanent child is restarted; a transient or temporary one is forgotten.
* **Too many restarts** (more than ``max_restarts`` in ``max_seconds``): ``on_escalate`` runs,
  ``SupervisorEscalated`` goes to ``notify``, and the supervisor exits; Thespian stops its
  children first, then its parent receives ``ChildActorExited``.
* **The supervisor is stopped** (``ActorExitRequest``): Thespian stops its children; nothing
  restarts; their ``ChildExited`` go to ``exit_watchers`` only. **It is killed** (SIGKILL): its
  children get SIGTERM from the kernel and exit; nobody reports their exits.

* **A child is placed on another actor system** (multi-host): ``child_requirements`` gives
  Thespian's ``targetActorRequirements`` for each incarnation; ``child_start_held`` may hold a
  (re)start until the subclass knows where it can run (``resume_held_starts`` starts them).
  A remote child whose whole host dies produces no ``ChildActorExited``: whoever notices (a
  heartbeat) calls ``lose_child``, which counts as a crash.

Hooks for subclasses run inside the actor, between messages; an exception in a hook is logged
and ignored. Order for each incarnation: ``child_init_message`` -> ``on_child_started`` ... then
``on_child_exited`` -> (restart: the same again, ``restarts + 1``) or ``on_escalate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from thespian.actors import ActorAddress as ThespianAddress
from thespian.actors import ActorExitRequest

from .children import (
    ChildRecord,
    ChildTable,
    RestartBatch,
    init_problems,
    load_actor_class,
    planner_for,
    spec_problem,
)
from .intensity import Escalate, Restart, RestartPlanner
from .lifetime import SupervisedActor
from .messages import (
    ActorAddress,
    ChildExited,
    ChildrenList,
    ChildRequestRejected,
    ChildRestarting,
    ChildSpec,
    ChildStarted,
    ChildTerminated,
    InitSupervisor,
    StartChild,
    StoppingNormally,
    SupervisorEscalated,
    SupervisorInitFailed,
    SupervisorStarted,
    TerminateChild,
    WhichChildren,
)

log = logging.getLogger("snakepit_supervision")

STOP_GRACE_S = 5.0  # siblings stopped for a group restart that take longer are abandoned


@dataclass(frozen=True, slots=True)
class _RestartDue:
    """Wakeup payload: batch ``generation`` may start (its backoff or stop grace is over).
    Wakeups cannot be cancelled, so a payload whose batch is gone is ignored."""

    generation: int
    stop_grace: bool = False


class Supervisor(SupervisedActor):
    """Starts children from ``ChildSpec``s and restarts them by strategy, intensity and backoff.

    Its first message must be ``InitSupervisor``. At runtime it accepts ``StartChild``,
    ``TerminateChild`` and ``WhichChildren`` (see ``snakepit_supervision.messages``). Subclasses
    override the hooks below; a subclass handling ``WakeupMessage`` itself must return
    ``self.SUPER`` for payloads it does not own.
    """

    def __init__(self) -> None:
        super().__init__()
        self._name = ""
        self._table = ChildTable()
        self._planner: RestartPlanner | None = None
        self._notify: ActorAddress | None = None
        self._exit_watchers: tuple[ActorAddress, ...] = ()
        self._parent: ActorAddress | None = None
        self._stopping = False

    @property
    def name(self) -> str:
        """``InitSupervisor.name`` ("" before initialisation)."""
        return self._name

    @property
    def notify(self) -> ActorAddress | None:
        """``InitSupervisor.notify``: where facts go (None: nowhere, also once stopped)."""
        return self._notify

    # --- hooks ---------------------------------------------------------------------------------

    def validate_init(self, msg: InitSupervisor) -> list[str]:
        """Problems with ``msg`` (empty if valid). Runs first on ``InitSupervisor``; any problem
        makes the supervisor reply ``SupervisorInitFailed`` and exit. Extend, don't replace."""
        problems = init_problems(msg)
        for field, value in (
            ("notify", msg.notify),
            *(("exit_watchers", w) for w in msg.exit_watchers),
        ):
            if value is not None and not isinstance(value, ThespianAddress):
                problems.append(f"{field} must be an ActorAddress, got {value!r}")
        return problems

    def child_init_message(self, spec: ChildSpec, restarts: int) -> Any:
        """The message sent to a child right after each incarnation is created (``None`` sends
        nothing). ``restarts`` counts earlier incarnations. Default: ``spec.init``."""
        return spec.init

    def child_requirements(self, spec: ChildSpec, restarts: int) -> dict[str, Any] | None:
        """Thespian ``targetActorRequirements`` for the next incarnation (None: anywhere the
        child's ``actorSystemCapabilityCheck`` accepts, this system first). Default: None."""
        return None

    def child_start_held(self, spec: ChildSpec) -> bool:
        """True holds the child's next (re)start (state "held", no address) until the subclass
        calls ``resume_held_starts``: e.g. no host can take it yet. Default: False."""
        return False

    def on_child_started(self, child_id: str, address: ActorAddress, restarts: int) -> None:
        """Runs after an incarnation was created and sent its init (and ``ChildStarted`` sent)."""

    def on_child_exited(self, child_id: str, address: ActorAddress, normal: bool) -> None:
        """Runs when an incarnation has exited, after ``ChildExited`` was sent and before the
        restart decision. Also runs for children stopped while the supervisor itself stops."""

    def on_escalate(self, reason: str) -> None:
        """Runs once when the restart intensity is exceeded, before ``SupervisorEscalated`` is
        sent and the supervisor exits (its children are still running at this point)."""

    # --- handlers ------------------------------------------------------------------------------

    def receiveMsg_InitSupervisor(self, msg: InitSupervisor, sender: ActorAddress) -> None:
        """Validate, remember the configuration, start every child, reply."""
        if self._planner is not None:
            self.send(sender, SupervisorInitFailed(msg.name, "supervisor already initialised"))
            return
        problems = self.validate_init(msg)
        if problems:
            self._fail_init(msg, sender, problems)
            return
        self._configure(msg, sender)
        records = [ChildRecord(spec, load_actor_class(spec.actor)) for spec in msg.children]
        for record in records:
            self._table.add(record)
        self._start(records)
        self.send(sender, SupervisorStarted(self._name, tuple(r.child_id for r in records)))

    def receiveMsg_ChildActorExited(self, msg: Any, sender: ActorAddress) -> None:
        """An incarnation is gone: announce it, then finish a stop or decide on a restart."""
        self._child_gone(msg.childAddress)

    # --- for subclasses ------------------------------------------------------------------------

    def lose_child(self, address: ActorAddress) -> bool:
        """Treat the incarnation at ``address`` as crashed now, as if ``ChildActorExited`` had
        come: for a remote child whose host died (Thespian never reports it). A later real
        ``ChildActorExited`` for it is ignored. Returns False if no child has that address."""
        if self._table.by_address(address) is None:
            return False
        self._child_gone(address)
        return True

    def resume_held_starts(self) -> None:
        """Start every child held by ``child_start_held`` (those still held are held again)."""
        held = [record for record in self._table if record.state == "held"]
        if held and not self._stopping:
            self._start(held)

    def _child_gone(self, child_address: ActorAddress) -> None:
        record = self._table.by_address(child_address)
        if record is None:
            return  # an incarnation already forgotten, or a duplicate notice
        address, (normal, reason) = record.address, self._classify_exit(record)
        record.address = None
        self._announce_exit(record, address, normal, reason)
        if self._stopping:
            return
        if record.state == "stopping":
            self._finish_stop(record)
        else:
            self._decide(record, normal)

    def receiveMsg_StoppingNormally(self, msg: StoppingNormally, sender: ActorAddress) -> None:
        """A child announces that its coming exit is normal."""
        record = self._table.by_address(sender)
        if record is not None:
            record.normal_reason = msg.reason

    def receiveMsg_WakeupMessage(self, msg: Any, sender: ActorAddress) -> None:
        """A restart batch's backoff (or its siblings' stop grace) is over. A subclass's own
        payloads never get here (it handles them and returns ``self.SUPER`` for the rest), so
        any other payload is a bug: logged as an error."""
        due = msg.payload
        if not isinstance(due, _RestartDue):
            log.error("supervision.unknown_timer supervisor=%s payload=%r", self._name, due)
            return
        if self._stopping:
            return
        batch = self._table.batches.get(due.generation)
        if batch is None:
            return  # cancelled: merged into a later batch or emptied
        if due.stop_grace:
            self._abandon_stuck_siblings(batch)
        else:
            batch.due = True
        self._run_if_ready(batch)

    def receiveMsg_StartChild(self, msg: StartChild, sender: ActorAddress) -> None:
        """Add one child at the end and start it."""
        problem = self._new_child_problem(msg.spec)
        if problem:
            self._reject(sender, getattr(msg.spec, "child_id", ""), problem)
            return
        record = ChildRecord(msg.spec, load_actor_class(msg.spec.actor))
        self._table.add(record)
        self._start([record])
        if sender != self._notify:
            self.send(sender, ChildStarted(self._name, record.child_id, record.address, 0))

    def receiveMsg_TerminateChild(self, msg: TerminateChild, sender: ActorAddress) -> None:
        """Stop one child for good; reply once it is gone."""
        record = self._table.get(msg.child_id)
        if record is None or self._stopping:
            self._reject(sender, msg.child_id, f"no child {msg.child_id!r} to terminate")
            return
        record.terminating = True
        record.terminate_reply_to.append(sender)
        if record.state == "running":
            self._stop(record)
        elif record.state in ("restarting", "held"):
            self._forget(record)
        # "stopping": the coming ChildActorExited completes the termination

    def receiveMsg_WhichChildren(self, msg: WhichChildren, sender: ActorAddress) -> None:
        """Reply with every child in start order."""
        self.send(sender, ChildrenList(self._name, tuple(r.info() for r in self._table)))

    def receiveMsg_ActorExitRequest(self, msg: Any, sender: ActorAddress) -> None:
        """Stopping: Thespian stops the children next; nothing may restart now.

        Stopped from outside (not by its own escalation), the supervisor sends no more facts to
        ``notify``: whoever stops it knows, and in a system shutdown ``notify`` may be exiting at
        the same moment. A send to a peer that dies mid-transmit makes Thespian hold the exiting
        sender for up to 7 s. ``exit_watchers`` still get ``ChildExited``."""
        if not self._stopping:
            self._notify = None
        self._stopping = True
        self._table.batches.clear()

    def receiveMsg_PoisonMessage(self, msg: Any, sender: ActorAddress) -> None:
        """A message of ours failed twice at its receiver, or its child never came up."""
        log.warning("supervision.poison supervisor=%s message=%r", self._name, msg.poisonMessage)

    # --- steps ---------------------------------------------------------------------------------

    def _configure(self, msg: InitSupervisor, sender: ActorAddress) -> None:
        self._name = msg.name
        self._planner = planner_for(msg)
        self._notify = msg.notify
        self._exit_watchers = tuple(msg.exit_watchers)
        self._parent = sender

    def _start(self, records: list[ChildRecord]) -> None:
        """Create every incarnation first (Thespian forks them concurrently), then init each.
        Children ``child_start_held`` holds wait (state "held") for ``resume_held_starts``."""
        started = []
        for record in records:
            if self._start_is_held(record):
                record.state, record.address = "held", None
                continue
            record.address = self.createActor(
                record.actor_class, targetActorRequirements=self._placement_of(record))
            record.state, record.normal_reason = "running", None
            started.append(record)
        for record in started:
            init = self._init_message(record)
            if init is not None:
                self.send(record.address, init)
            self._tell_notify(
                ChildStarted(self._name, record.child_id, record.address, record.restarts)
            )
            self._hook(self.on_child_started, record.child_id, record.address, record.restarts)

    def _classify_exit(self, record: ChildRecord) -> tuple[bool, str]:
        if record.normal_reason is not None:
            return True, record.normal_reason
        if record.state == "stopping" or self._stopping:
            return True, "shutdown"
        return False, "crashed"

    def _announce_exit(
        self, record: ChildRecord, address: ActorAddress, normal: bool, reason: str
    ) -> None:
        fact = ChildExited(self._name, record.child_id, address, normal, reason)
        self._tell_notify(fact)
        for watcher in self._exit_watchers:
            self.send(watcher, fact)
        self._hook(self.on_child_exited, record.child_id, address, normal)

    def _decide(self, record: ChildRecord, normal: bool) -> None:
        assert self._planner is not None  # children exist only after InitSupervisor
        specs = self._table.specs()
        decision = self._planner.plan(specs, record.child_id, normal, time.monotonic())
        if isinstance(decision, Restart):
            self._schedule_restart(decision)
        elif isinstance(decision, Escalate):
            self._escalate(decision.reason)
        else:
            self._forget(record)

    def _schedule_restart(self, decision: Restart) -> None:
        batch = self._table.new_batch(decision.restart_ids, decision.stop_ids)
        for record in filter(None, map(self._table.get, decision.stop_ids)):
            if record.state == "running":
                self._stop(record)
            if record.state == "stopping":
                batch.waiting_for.add(record.child_id)
        for record in filter(None, map(self._table.get, decision.restart_ids)):
            if record.state != "stopping":
                record.state = "restarting"
            fact = ChildRestarting(
                self._name, record.child_id, decision.after_s, record.restarts + 1
            )
            self._tell_notify(fact)
        if decision.after_s > 0:
            self.wakeupAfter(timedelta(seconds=decision.after_s), _RestartDue(batch.generation))
        else:
            batch.due = True
        if batch.waiting_for:
            grace = timedelta(seconds=decision.after_s + STOP_GRACE_S)
            self.wakeupAfter(grace, _RestartDue(batch.generation, stop_grace=True))
        self._run_if_ready(batch)

    def _finish_stop(self, record: ChildRecord) -> None:
        """A child we stopped is gone: forget it, or let its batch restart it."""
        batch = self._table.batch_waiting_for(record.child_id)
        if batch is not None:
            batch.waiting_for.discard(record.child_id)
        if record.terminating or batch is None or record.child_id not in batch.restart_ids:
            self._forget(record)
        else:
            record.state = "restarting"
        if batch is not None:
            self._run_if_ready(batch)

    def _run_if_ready(self, batch: RestartBatch) -> None:
        if batch.generation not in self._table.batches or not batch.ready():
            return
        del self._table.batches[batch.generation]
        records = [r for r in map(self._table.get, batch.restart_ids) if r is not None]
        records = [r for r in records if r.state == "restarting"]
        for record in records:
            record.restarts += 1
        self._start(records)

    def _abandon_stuck_siblings(self, batch: RestartBatch) -> None:
        for record in filter(None, map(self._table.get, list(batch.waiting_for))):
            log.warning(
                "supervision.stop_timeout supervisor=%s child=%s", self._name, record.child_id
            )
            record.state, record.address = "restarting", None
        batch.waiting_for.clear()
        batch.due = True

    def _escalate(self, reason: str) -> None:
        log.warning("supervision.escalated supervisor=%s reason=%s", self._name, reason)
        self._stopping = True
        self._table.batches.clear()
        self._hook(self.on_escalate, reason)
        self._tell_notify(SupervisorEscalated(self._name, reason))
        self.send(self.myAddress, ActorExitRequest())

    def _stop(self, record: ChildRecord) -> None:
        record.state = "stopping"
        self.send(record.address, ActorExitRequest())

    def _forget(self, record: ChildRecord) -> None:
        self._table.remove(record.child_id)
        if self._planner is not None:
            self._planner.forget(record.child_id)
        for requester in record.terminate_reply_to:
            self.send(requester, ChildTerminated(self._name, record.child_id))

    def _fail_init(self, msg: InitSupervisor, sender: ActorAddress, problems: list[str]) -> None:
        log.warning("supervision.init_failed supervisor=%s problems=%s", msg.name, problems)
        self.send(sender, SupervisorInitFailed(msg.name, "; ".join(problems)))
        self._stopping = True
        self.send(self.myAddress, ActorExitRequest())

    def _new_child_problem(self, spec: Any) -> str | None:
        if self._planner is None:
            return "supervisor not initialised (send InitSupervisor first)"
        if self._stopping:
            return "supervisor is stopping"
        if self._table.get(getattr(spec, "child_id", "")) is not None:
            return f"child_id {spec.child_id!r} is already in use"
        return spec_problem(spec)

    def _reject(self, sender: ActorAddress, child_id: str, reason: str) -> None:
        self.send(sender, ChildRequestRejected(self._name, child_id, reason))

    def _tell_notify(self, fact: Any) -> None:
        if self._notify is not None:
            self.send(self._notify, fact)

    def _start_is_held(self, record: ChildRecord) -> bool:
        try:
            return bool(self.child_start_held(record.spec))
        except Exception:
            log.exception("supervision.hook_failed supervisor=%s hook=child_start_held",
                          self._name)
            return False

    def _placement_of(self, record: ChildRecord) -> dict[str, Any] | None:
        try:
            return self.child_requirements(record.spec, record.restarts)
        except Exception:
            log.exception("supervision.hook_failed supervisor=%s hook=child_requirements",
                          self._name)
            return None

    def _init_message(self, record: ChildRecord) -> Any:
        """``child_init_message``, or ``spec.init`` if the hook raised (logged)."""
        try:
            return self.child_init_message(record.spec, record.restarts)
        except Exception:
            log.exception(
                "supervision.hook_failed supervisor=%s hook=child_init_message", self._name
            )
            return record.spec.init

    def _hook(self, hook: Callable[..., None], *args: Any) -> None:
        """Run a notification hook; log and ignore its exception."""
        try:
            hook(*args)
        except Exception:
            log.exception(
                "supervision.hook_failed supervisor=%s hook=%s", self._name, hook.__name__
            )
