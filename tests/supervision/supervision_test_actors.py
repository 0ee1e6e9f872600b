"""Small actors and messages for the supervision tests (importable by Thespian's forks).

``Collector`` records every message it receives and hands them over on ``Drain``; tests point
``notify``, ``exit_watchers`` and the children's reports at it and poll it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorSystemMessage, ActorTypeDispatcher

from snakepit_supervision import (
    ChildSpec,
    InitSupervisor,
    SupervisedActor,
    Supervisor,
    load_actor_class,
)

ActorAddress = Any


@dataclass(frozen=True, slots=True)
class Hello:
    """Init message of ``Child``: report to ``report_to`` with ``HelloBack``."""

    tag: str
    report_to: ActorAddress


@dataclass(frozen=True, slots=True)
class HelloBack:
    """A ``Child`` incarnation is up."""

    tag: str
    pid: int
    address: ActorAddress
    restarts: int


@dataclass(frozen=True, slots=True)
class Crash:
    """Make a ``Child`` exit abruptly (os._exit), as a crash."""


@dataclass(frozen=True, slots=True)
class LeaveNormally:
    """Make a ``Child`` exit normally (StoppingNormally first)."""

    reason: str = "done"


@dataclass(frozen=True, slots=True)
class HelloAgain:
    """Init message built by ``CountingSupervisor``: carries the restart count."""

    tag: str
    report_to: ActorAddress
    restarts: int


@dataclass(frozen=True, slots=True)
class Drain:
    """Ask a ``Collector`` for everything received since the last drain."""


@dataclass(frozen=True, slots=True)
class Drained:
    """Reply to ``Drain``."""

    messages: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class WhereAmI:
    """Ask any test actor for its pid and session id."""


@dataclass(frozen=True, slots=True)
class HereIAm:
    """Reply to ``WhereAmI``."""

    pid: int
    sid: int


@dataclass(frozen=True, slots=True)
class SpawnSupervisor:
    """Ask a ``Parent`` to create ``actor`` (a supervisor class path) and send it ``init``."""

    actor: str
    init: InitSupervisor
    report_to: ActorAddress


@dataclass(frozen=True, slots=True)
class ChildGone:
    """``Parent`` -> report_to: its child (a supervisor) exited."""

    address: ActorAddress


class Child(SupervisedActor):
    """A supervised leaf: reports each incarnation, crashes or leaves on request."""

    def receiveMsg_Hello(self, msg: Hello, sender: ActorAddress) -> None:
        self._supervisor = sender
        self.send(msg.report_to, HelloBack(msg.tag, os.getpid(), self.myAddress, -1))

    def receiveMsg_HelloAgain(self, msg: HelloAgain, sender: ActorAddress) -> None:
        self._supervisor = sender
        self.send(msg.report_to, HelloBack(msg.tag, os.getpid(), self.myAddress, msg.restarts))

    def receiveMsg_Crash(self, msg: Crash, sender: ActorAddress) -> None:
        os._exit(3)

    def receiveMsg_LeaveNormally(self, msg: LeaveNormally, sender: ActorAddress) -> None:
        self.exit_normally(self._supervisor, msg.reason)

    def receiveMsg_WhereAmI(self, msg: WhereAmI, sender: ActorAddress) -> None:
        self.send(sender, HereIAm(os.getpid(), os.getsid(0)))


class SlowBornChild(Child):
    """A ``Child`` that takes 1.5 s to construct, so it connects to its parent only then: a
    window in which it can be killed before its parent knows its real address."""

    BIRTH_S = 1.5

    def __init__(self) -> None:
        time.sleep(self.BIRTH_S)
        super().__init__()


class Collector(ActorTypeDispatcher):  # type: ignore[misc]
    """Records everything; ``Drain`` returns and clears the record."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: list[Any] = []

    def receiveMsg_Drain(self, msg: Drain, sender: ActorAddress) -> None:
        self.send(sender, Drained(tuple(self._seen)))
        self._seen = []

    def receiveMsg_WhereAmI(self, msg: WhereAmI, sender: ActorAddress) -> None:
        self.send(sender, HereIAm(os.getpid(), os.getsid(0)))

    def receiveUnrecognizedMessage(self, msg: Any, sender: ActorAddress) -> None:
        self._seen.append(msg)


class Parent(SupervisedActor):
    """Creates a supervisor; forwards its replies and its exit to ``report_to``. Silent once
    stopping: a send to a peer that dies meanwhile can hold an exiting actor for up to 7 s."""

    def __init__(self) -> None:
        super().__init__()
        self._stopping = False

    def receiveMsg_SpawnSupervisor(self, msg: SpawnSupervisor, sender: ActorAddress) -> None:
        self._report_to = msg.report_to
        child = self.createActor(load_actor_class(msg.actor))
        self.send(child, msg.init)

    def receiveMsg_ActorExitRequest(self, msg: Any, sender: ActorAddress) -> None:
        self._stopping = True

    def receiveMsg_ChildActorExited(self, msg: Any, sender: ActorAddress) -> None:
        if not self._stopping:
            self.send(self._report_to, ChildGone(msg.childAddress))

    def receiveUnrecognizedMessage(self, msg: Any, sender: ActorAddress) -> None:
        if not self._stopping and not isinstance(msg, ActorSystemMessage):
            self.send(self._report_to, msg)


class BrokenChild(SupervisedActor):
    """An actor whose construction fails: Thespian never brings it up."""

    def __init__(self) -> None:
        raise RuntimeError("broken on purpose")


@dataclass(frozen=True, slots=True)
class HookCalled:
    """``CountingSupervisor`` -> notify: one of its hooks ran."""

    hook: str
    child_id: str
    detail: Any


class CountingSupervisor(Supervisor):
    """Reports every hook call to ``notify``; inits children with their restart count; its
    ``on_child_exited`` raises for child ids starting with "boom" (must not matter)."""

    def child_init_message(self, spec: ChildSpec, restarts: int) -> Any:
        if isinstance(spec.init, Hello):
            return HelloAgain(spec.child_id, spec.init.report_to, restarts)
        return spec.init

    def on_child_started(self, child_id: str, address: ActorAddress, restarts: int) -> None:
        self._report(HookCalled("on_child_started", child_id, restarts))

    def on_child_exited(self, child_id: str, address: ActorAddress, normal: bool) -> None:
        self._report(HookCalled("on_child_exited", child_id, normal))
        if child_id.startswith("boom"):
            raise RuntimeError("hook failure on purpose")

    def on_escalate(self, reason: str) -> None:
        self._report(HookCalled("on_escalate", "", reason))

    def _report(self, call: HookCalled) -> None:
        if self.notify is not None:  # None once stopped from outside
            self.send(self.notify, call)


@dataclass(frozen=True, slots=True)
class OpenGate:
    """``GatedSupervisor``: from now on start children (``resume_held_starts``); with
    ``requirements``, create them with these ``targetActorRequirements``."""

    requirements: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Lose:
    """``GatedSupervisor``: call ``lose_child(address)`` and reply ``Lost(found)``."""

    address: ActorAddress


@dataclass(frozen=True, slots=True)
class Lost:
    """Reply to ``Lose``."""

    found: bool


class GatedSupervisor(Supervisor):
    """Holds every (re)start until ``OpenGate``; ``Lose`` declares a child lost (as a
    heartbeat would for a child on a dead host)."""

    def __init__(self) -> None:
        super().__init__()
        self._open = False
        self._wanted: dict[str, Any] | None = None

    def child_start_held(self, spec: ChildSpec) -> bool:
        return not self._open

    def child_requirements(self, spec: ChildSpec, restarts: int) -> dict[str, Any] | None:
        return self._wanted

    def receiveMsg_OpenGate(self, msg: OpenGate, sender: ActorAddress) -> None:
        self._open, self._wanted = True, msg.requirements
        self.resume_held_starts()

    def receiveMsg_Lose(self, msg: Lose, sender: ActorAddress) -> None:
        self.send(sender, Lost(self.lose_child(msg.address)))


class PickyChild(Child):
    """A ``Child`` that only runs on a system whose capabilities meet the requirements."""

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any],
                                   requirements: dict[str, Any] | None) -> bool:
        return all(capabilities.get(k) == v for k, v in (requirements or {}).items())


@dataclass(frozen=True, slots=True)
class Tick:
    """``TickingSupervisor``: set a wakeup of your own."""


@dataclass(frozen=True, slots=True)
class TickDue:
    """``TickingSupervisor``'s own wakeup payload."""


@dataclass(frozen=True, slots=True)
class Ticked:
    """``TickingSupervisor`` -> notify: its own wakeup arrived."""


class TickingSupervisor(Supervisor):
    """Handles ``WakeupMessage`` itself: its own payload, and ``self.SUPER`` for the others
    (the library's restart backoffs), as ``Supervisor``'s docstring asks."""

    def receiveMsg_Tick(self, msg: Tick, sender: ActorAddress) -> None:
        self.wakeupAfter(0.05, TickDue())

    def receiveMsg_WakeupMessage(self, msg: Any, sender: ActorAddress) -> Any:
        if not isinstance(msg.payload, TickDue):
            return self.SUPER
        if self.notify is not None:
            self.send(self.notify, Ticked())
        return None
