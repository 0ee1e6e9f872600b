"""Supervisor: an OTP-style supervisor actor on Thespian, a thin shell around ``SupervisorCore``.

    parent (any actor: sees ChildActorExited when this supervisor gives up)
     └─ Supervisor (one_for_one | one_for_all | rest_for_one; restart intensity; backoff)
         ├─ child_1 (permanent | transient | temporary)
         └─ child_n  (each forked by the supervisor, bound to it by PR_SET_PDEATHSIG)

* **A child crashes** (killed, or exits without ``StoppingNormally``): Thespian delivers
  ``ChildActorExited`` within about 4 ms. ``ChildExited`` goes to ``notify`` and every exit
  watcher, ``on_child_exited`` runs, and the core decides: the strategy's group is stopped
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

import gc
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from thespian.actors import ActorAddress as ThespianAddress
from thespian.actors import ActorExitRequest

from .children import ChildRecord, ChildTable, init_problems, planner_for
from .intensity import Escalate
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
from .supervisor_core import (
    AnnounceRestart,
    ChildForgotten,
    Effects,
    IncarnationGone,
    RestartDue,
    StartChildren,
    StopIncarnation,
    StopTimedOut,
    SupervisorCore,
    WakeAfter,
)
from .unborn import connected
from .unborn import install as _report_unborn_exits

log = logging.getLogger("snakepit_supervision")

_report_unborn_exits()  # Thespian loses the exit of a child killed before it connected


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
        self._core = SupervisorCore()
        self._notify: ActorAddress | None = None
        self._exit_watchers: tuple[ActorAddress, ...] = ()
        self._parent: ActorAddress | None = None

    @property
    def name(self) -> str:
        """``InitSupervisor.name`` ("" before initialisation)."""
        return self._name

    @property
    def notify(self) -> ActorAddress | None:
        """``InitSupervisor.notify``: where facts go (None: nowhere, also once stopped)."""
        return self._notify

    @property
    def _stopping(self) -> bool:
        """For subclasses: the supervisor is stopping (stopped, escalated or failed to init)."""
        return self._core.stopping

    @property
    def _table(self) -> ChildTable:
        """For subclasses: the children in start order (read, do not change)."""
        return self._core.table

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
        if self._core.configured:
            self.send(sender, SupervisorInitFailed(msg.name, "supervisor already initialised"))
            return
        problems = self.validate_init(msg)
        if problems:
            self._fail_init(msg, sender, problems)
            return
        self._configure(msg, sender)
        start = self._core.add(msg.children)
        self._start(start.child_ids)
        self.send(sender, SupervisorStarted(self._name, start.child_ids))

    def receiveMsg_ChildActorExited(self, msg: Any, sender: ActorAddress) -> None:
        """An incarnation is gone: announce it, then finish a stop or decide on a restart."""
        self._child_gone(msg.childAddress)

    # --- for subclasses ------------------------------------------------------------------------

    def lose_child(self, address: ActorAddress) -> bool:
        """Treat the incarnation at ``address`` as crashed now, as if ``ChildActorExited`` had
        come: for a remote child whose host died (Thespian never reports it). A later real
        ``ChildActorExited`` for it is ignored. Returns False if no child has that address."""
        if self._core.table.by_address(address) is None:
            return False
        self._child_gone(address)
        return True

    def resume_held_starts(self) -> None:
        """Start every child held by ``child_start_held`` (those still held are held again)."""
        self._execute(self._core.resume_held())

    def _child_gone(self, child_address: ActorAddress) -> None:
        gone = self._core.child_exited(child_address)
        if gone is None:
            return  # an incarnation already forgotten, or a duplicate notice
        self._announce_exit(gone)
        self._execute(self._core.after_exit(gone, time.monotonic()))

    def receiveMsg_StoppingNormally(self, msg: StoppingNormally, sender: ActorAddress) -> None:
        """A child announces that its coming exit is normal."""
        self._core.exiting_normally(sender, msg.reason)

    def receiveMsg_WakeupMessage(self, msg: Any, sender: ActorAddress) -> None:
        """A restart batch's backoff (or its siblings' stop grace) is over. A subclass's own
        payloads never get here (it handles them and returns ``self.SUPER`` for the rest), so
        any other payload is a bug: logged as an error."""
        if not isinstance(msg.payload, RestartDue):
            log.error("supervision.unknown_timer supervisor=%s payload=%r", self._name,
                      msg.payload)
            return
        self._execute(self._core.wakeup(msg.payload))

    def receiveMsg_StartChild(self, msg: StartChild, sender: ActorAddress) -> None:
        """Add one child at the end and start it."""
        problem = self._core.new_child_problem(msg.spec)
        if problem:
            self._reject(sender, getattr(msg.spec, "child_id", ""), problem)
            return
        start = self._core.add([msg.spec])
        record = self._core.records(start.child_ids)[0]
        self._start(start.child_ids)
        if sender != self._notify:
            self.send(sender, ChildStarted(self._name, record.child_id, record.address, 0))

    def receiveMsg_TerminateChild(self, msg: TerminateChild, sender: ActorAddress) -> None:
        """Stop one child for good; reply once it is gone."""
        effects = self._core.terminate(msg.child_id, sender)
        if effects is None:
            self._reject(sender, msg.child_id, f"no child {msg.child_id!r} to terminate")
            return
        self._execute(effects)

    def receiveMsg_WhichChildren(self, msg: WhichChildren, sender: ActorAddress) -> None:
        """Reply with every child in start order."""
        self.send(sender, ChildrenList(self._name, tuple(r.info() for r in self._core.table)))

    def receiveMsg_ActorExitRequest(self, msg: Any, sender: ActorAddress) -> None:
        """Stopping: Thespian stops the children next; nothing may restart now.

        Stopped from outside (not by its own escalation), the supervisor sends no more facts to
        ``notify``: whoever stops it knows, and in a system shutdown ``notify`` may be exiting at
        the same moment. A send to a peer that dies mid-transmit makes Thespian hold the exiting
        sender for up to 7 s. ``exit_watchers`` still get ``ChildExited``."""
        if not self._core.stopping:
            self._notify = None
        self._core.stop()

    def receiveMsg_PoisonMessage(self, msg: Any, sender: ActorAddress) -> None:
        """A message of ours failed twice at its receiver, or its child never came up."""
        log.warning("supervision.poison supervisor=%s message=%r", self._name, msg.poisonMessage)

    # --- steps ---------------------------------------------------------------------------------

    def _execute(self, effects: Effects) -> None:
        """Carry out the core's effects, in order."""
        for effect in effects:
            match effect:
                case StopIncarnation(_, address):
                    self.send(address, ActorExitRequest())
                case AnnounceRestart(child_id, after_s, restarts):
                    self._tell_notify(ChildRestarting(self._name, child_id, after_s, restarts))
                case WakeAfter(after_s, payload):
                    self.wakeupAfter(timedelta(seconds=after_s), payload)
                case StartChildren(child_ids):
                    self._start(child_ids)
                case ChildForgotten(child_id, reply_to):
                    for requester in reply_to:
                        self.send(requester, ChildTerminated(self._name, child_id))
                case StopTimedOut(child_id):
                    log.warning("supervision.stop_timeout supervisor=%s child=%s", self._name,
                                child_id)
                case Escalate(reason):
                    self._escalate(reason)

    def _configure(self, msg: InitSupervisor, sender: ActorAddress) -> None:
        self._name = msg.name
        self._core.configure(planner_for(msg))
        self._notify = msg.notify
        self._exit_watchers = tuple(msg.exit_watchers)
        self._parent = sender

    def _start(self, child_ids: Sequence[str]) -> None:
        """Create every incarnation first (Thespian forks them concurrently), then init each.
        Children ``child_start_held`` holds wait (state "held") for ``resume_held_starts``.
        The heap is frozen first (``gc.freeze``, O(1)): the children's collections then never
        visit, so never copy, the pages they share with this process."""
        if multiprocessing.parent_process() is not None:  # forked: not the caller's process
            gc.freeze()
        started = []
        for record in self._core.records(child_ids):
            if self._start_is_held(record):
                self._core.held(record.child_id)
                continue
            address = self.createActor(
                record.actor_class, targetActorRequirements=self._placement_of(record))
            self._core.started(record.child_id, address)
            started.append(record)
        for record in started:
            init = self._init_message(record)
            if init is not None:
                self.send(record.address, init)
            self._tell_notify(
                ChildStarted(self._name, record.child_id, record.address, record.restarts)
            )
            self._hook(self.on_child_started, record.child_id, record.address, record.restarts)

    def _announce_exit(self, gone: IncarnationGone) -> None:
        address = gone.address if connected(gone.address) else None
        fact = ChildExited(self._name, gone.child_id, address, gone.normal, gone.reason)
        self._tell_notify(fact)
        for watcher in self._exit_watchers:
            self.send(watcher, fact)
        self._hook(self.on_child_exited, gone.child_id, gone.address, gone.normal)

    def _escalate(self, reason: str) -> None:
        log.warning("supervision.escalated supervisor=%s reason=%s", self._name, reason)
        self._hook(self.on_escalate, reason)
        self._tell_notify(SupervisorEscalated(self._name, reason))
        self.send(self.myAddress, ActorExitRequest())

    def _fail_init(self, msg: InitSupervisor, sender: ActorAddress, problems: list[str]) -> None:
        log.warning("supervision.init_failed supervisor=%s problems=%s", msg.name, problems)
        self.send(sender, SupervisorInitFailed(msg.name, "; ".join(problems)))
        self._core.stop()
        self.send(self.myAddress, ActorExitRequest())

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
