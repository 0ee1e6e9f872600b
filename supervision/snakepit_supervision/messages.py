"""Every message of ``supervision``: the supervisor, the Starter and the Registry protocols.

All messages are frozen, slotted dataclasses that pickle. Their class names are unique across
``supervision`` and ``snakepit_actors`` because Thespian dispatches on the bare class name
(``receiveMsg_ChildExited``). Commands are imperative (``StartChild``), facts past tense
(``ChildExited``). Times are seconds (``*_s``).

Supervisor protocol::

    parent --InitSupervisor-->  Supervisor  -> SupervisorStarted | SupervisorInitFailed (then exits)
    anyone --StartChild------>  Supervisor  -> ChildStarted | ChildRequestRejected
    anyone --TerminateChild-->  Supervisor  -> ChildTerminated (once gone) | ChildRequestRejected
    anyone --WhichChildren--->  Supervisor  -> ChildrenList
    child  --StoppingNormally-> Supervisor     (then the child exits; a "normal" exit)
    Supervisor --ChildStarted / ChildExited / ChildRestarting / SupervisorEscalated--> notify
    Supervisor --ChildExited--> each of exit_watchers (e.g. a Registry, which forgets the child)

Registry protocol::

    anyone --InitKeyRegistry (optional)-> Registry
    anyone --Register-------------------> Registry -> Registered | RegistrationRejected
    anyone --Unregister-----------------> Registry -> Unregistered
    anyone --UnregisterAddress / ChildExited-> Registry   (no reply: forget that address's keys)
    anyone --Lookup---------------------> Registry -> LookupResult
    anyone --ListEntries----------------> Registry -> RegistrySnapshot
    anyone --SubscribeRegistry----------> Registry -> subscriber gets RegistrySnapshot, then
                                                      every RegistryChanged
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ActorAddress = Any  # thespian.actors.ActorAddress: untyped and unhashable (compare with ==)

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]
ChildState = Literal["running", "stopping", "restarting", "held"]

STRATEGIES: tuple[Strategy, ...] = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES: tuple[RestartType, ...] = ("permanent", "transient", "temporary")


# --- supervisor: configuration -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start and when to restart one child of a supervisor.

    Attributes:
        child_id: unique among the supervisor's children; names the child in every fact.
        actor: the child's actor class as an importable ``"package.module:Class"`` path.
        init: the message sent to the child right after it is created (and after every restart);
            ``None`` sends nothing. The child learns its supervisor as this message's sender.
        restart: ``"permanent"`` (always restarted), ``"transient"`` (restarted unless it exited
            normally, i.e. it sent ``StoppingNormally`` first) or ``"temporary"`` (never
            restarted, forgotten when it exits).
    """

    child_id: str
    actor: str
    init: Any = None
    restart: RestartType = "permanent"


@dataclass(frozen=True, slots=True)
class InitSupervisor:
    """parent -> Supervisor (first message): start ``children`` in order and supervise them.

    Replies ``SupervisorStarted`` once every child is created and sent its init, or
    ``SupervisorInitFailed`` (and the supervisor exits) if the configuration is invalid.

    Attributes:
        strategy: what restarts with a crashed child: only it (``one_for_one``), every child
            (``one_for_all``) or it and the children started after it (``rest_for_one``).
        max_restarts: restarts allowed within ``max_seconds``; one more escalates (the
            supervisor stops its children and exits). 0 escalates on the first crash.
        max_seconds: the sliding window of the restart intensity.
        children: the initial children, in start order.
        backoff_initial_s: delay before a child's first restart; doubles on each further
            restart of that child up to ``backoff_max_s``. 0 restarts at once.
        backoff_max_s: the largest restart delay.
        backoff_reset_s: a child that ran this long since its last restart starts again from
            ``backoff_initial_s``; ``None`` means ``max(max_seconds, backoff_max_s)``.
        notify: receives ``ChildStarted``, ``ChildExited``, ``ChildRestarting`` and
            ``SupervisorEscalated``; ``None`` sends no facts.
        exit_watchers: each receives ``ChildExited`` whenever a child exits (a ``Registry``
            forgets every key the child held).
        name: names this supervisor in facts and logs.
    """

    strategy: Strategy
    max_restarts: int
    max_seconds: float
    children: tuple[ChildSpec, ...]
    backoff_initial_s: float = 0.0
    backoff_max_s: float = 5.0
    notify: ActorAddress | None = None
    name: str = ""
    backoff_reset_s: float | None = None
    exit_watchers: tuple[ActorAddress, ...] = ()


@dataclass(frozen=True, slots=True)
class SupervisorStarted:
    """Reply to ``InitSupervisor``: every child was created and sent its init, in this order."""

    supervisor: str
    child_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SupervisorInitFailed:
    """Reply to ``InitSupervisor``: the configuration is invalid; the supervisor exits."""

    supervisor: str
    reason: str


# --- supervisor: runtime commands --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartChild:
    """Add ``spec`` as the last child and start it. Replies ``ChildStarted`` (also sent to
    ``notify``) or ``ChildRequestRejected`` (duplicate id, unimportable class, supervisor
    stopping)."""

    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class TerminateChild:
    """Stop ``child_id`` and forget its spec (it is not restarted). Replies ``ChildTerminated``
    once the child has exited, or ``ChildRequestRejected`` for an unknown id."""

    child_id: str


@dataclass(frozen=True, slots=True)
class ChildTerminated:
    """Reply to ``TerminateChild``: the child is gone and forgotten."""

    supervisor: str
    child_id: str


@dataclass(frozen=True, slots=True)
class ChildRequestRejected:
    """Reply to ``StartChild`` / ``TerminateChild`` that could not be done, and why."""

    supervisor: str
    child_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class WhichChildren:
    """Ask for the supervisor's children. Replies ``ChildrenList``."""


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child as its supervisor sees it.

    Attributes:
        address: the running incarnation, or ``None`` while it waits to be restarted.
        state: ``"running"``, ``"stopping"`` (asked to exit), ``"restarting"`` (waiting for
            its backoff or for siblings to stop) or ``"held"`` (``child_start_held``: waiting
            for the supervisor to know where it can run).
        restarts: how many times this supervisor restarted the child.
    """

    child_id: str
    actor: str
    restart: RestartType
    address: ActorAddress | None
    state: ChildState
    restarts: int


@dataclass(frozen=True, slots=True)
class ChildrenList:
    """Reply to ``WhichChildren``: the children in start order."""

    supervisor: str
    children: tuple[ChildInfo, ...]


# --- supervisor: facts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoppingNormally:
    """child -> its supervisor, just before the child exits: this exit is normal (a transient
    child is then not restarted). Any exit without it is abnormal: Thespian's
    ``ChildActorExited`` carries no reason."""

    reason: str = "normal"


@dataclass(frozen=True, slots=True)
class ChildStarted:
    """Fact: ``child_id`` runs at ``address``; ``restarts`` counts earlier incarnations."""

    supervisor: str
    child_id: str
    address: ActorAddress
    restarts: int


@dataclass(frozen=True, slots=True)
class ChildExited:
    """Fact: an incarnation of ``child_id`` exited.

    Attributes:
        address: the incarnation's address; None if it died before it connected to its
            supervisor (Thespian cannot send an address it never learnt, ``unborn.py``).
        normal: it announced ``StoppingNormally`` or its supervisor stopped it.
        reason: the ``StoppingNormally`` reason, ``"shutdown"`` when the supervisor stopped it,
            or ``"crashed"`` (killed, or exited without announcing it).
    """

    supervisor: str
    child_id: str
    address: ActorAddress | None
    normal: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ChildRestarting:
    """Fact: ``child_id`` will be started again in ``after_s`` (or once its stopped siblings
    are gone); this will be restart number ``restarts``."""

    supervisor: str
    child_id: str
    after_s: float
    restarts: int


@dataclass(frozen=True, slots=True)
class SupervisorEscalated:
    """Fact: the restart intensity was exceeded; the supervisor stops its children and exits,
    so its own parent sees ``ChildActorExited``."""

    supervisor: str
    reason: str


# --- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitKeyRegistry:
    """Optional first message of a ``Registry``; without it the defaults apply.

    Attributes:
        name: names the registry in ``RegistryChanged`` and ``RegistrySnapshot``.
        probe_interval_s: every this often, ask each registered address and subscriber for
            Thespian's status; 0 turns probing off (the default: removal then relies on
            ``ChildExited`` / ``UnregisterAddress``).
        probe_misses: an address that left this many probes in a row unanswered is taken as
            dead and forgotten. An actor blocked in one handler for longer than
            ``probe_interval_s * probe_misses`` is indistinguishable from a dead one.
    """

    name: str = ""
    probe_interval_s: float = 0.0
    probe_misses: int = 3


@dataclass(frozen=True, slots=True)
class Register:
    """Map ``key`` to ``address`` and ``value``. Replies ``Registered`` or
    ``RegistrationRejected``.

    The same address may re-register a key to change its value. A key held by a different
    address is rejected unless ``replace`` is true: use ``replace=True`` when you know the old
    holder is gone (a restarted child re-registering its stable id).
    """

    key: str
    address: ActorAddress
    value: Any = None
    replace: bool = False


@dataclass(frozen=True, slots=True)
class Registered:
    """Reply to ``Register``; ``replaced`` is true if the key had an entry before."""

    key: str
    address: ActorAddress
    replaced: bool


@dataclass(frozen=True, slots=True)
class RegistrationRejected:
    """Reply to ``Register``: ``key`` is held by ``holder``, another address."""

    key: str
    holder: ActorAddress
    reason: str


@dataclass(frozen=True, slots=True)
class Unregister:
    """Forget ``key``. Replies ``Unregistered``."""

    key: str


@dataclass(frozen=True, slots=True)
class Unregistered:
    """Reply to ``Unregister``; ``removed`` is false if the key was not registered."""

    key: str
    removed: bool


@dataclass(frozen=True, slots=True)
class UnregisterAddress:
    """Forget every key held by ``address`` and stop notifying it (it exited). No reply."""

    address: ActorAddress


@dataclass(frozen=True, slots=True)
class Lookup:
    """Ask for ``key``. Replies ``LookupResult``."""

    key: str


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Reply to ``Lookup``: ``address`` is ``None`` (and ``value`` ``None``) if not registered."""

    key: str
    address: ActorAddress | None
    value: Any


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One key of a registry."""

    key: str
    address: ActorAddress
    value: Any


@dataclass(frozen=True, slots=True)
class ListEntries:
    """Ask for every entry. Replies ``RegistrySnapshot``."""


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """Every entry of the registry, sorted by key (reply to ``ListEntries``, and the first
    message a new subscriber receives)."""

    registry: str
    entries: tuple[RegistryEntry, ...]


@dataclass(frozen=True, slots=True)
class SubscribeRegistry:
    """``subscriber`` receives a ``RegistrySnapshot`` now, then every ``RegistryChanged``."""

    subscriber: ActorAddress


@dataclass(frozen=True, slots=True)
class UnsubscribeRegistry:
    """Stop sending ``RegistryChanged`` to ``subscriber``."""

    subscriber: ActorAddress


@dataclass(frozen=True, slots=True)
class RegistryChanged:
    """Fact: ``key`` now maps to ``address`` / ``value``, or was ``removed`` (then ``address``
    and ``value`` are what it held)."""

    registry: str
    key: str
    address: ActorAddress
    value: Any
    removed: bool
