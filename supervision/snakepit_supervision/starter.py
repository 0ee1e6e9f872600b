"""Starter: a supervisor of exactly one child (Snakepit's ``Worker.Starter`` pattern).

    parent supervisor (e.g. one_for_one over many Starters)
     └─ Starter (permanent in its parent; one_for_one over one child, own intensity + backoff)
         └─ the child (e.g. a Worker owning an external process)

Why a layer of its own: the parent supervisor restarts *Starters* within one restart intensity
for the whole group, while each Starter restarts *its* child with its own backoff and intensity.
A flapping child therefore slows down and escalates alone, and the parent sees only one
``ChildActorExited`` (the Starter's) once that child is hopeless.

* **The child crashes**: restarted after its backoff, with ``child_init_message(spec, restarts)``.
* **The child crashes too often**: the Starter escalates (``SupervisorEscalated`` to ``notify``)
  and exits; its parent sees ``ChildActorExited`` and applies its own strategy.
* **The child exits and is not restarted** (transient and normal, or temporary): the Starter
  exits normally too (``StoppingNormally`` to its parent first), so no childless Starter is left
  behind to hide a missing child (a weakness of Snakepit's reconcile loop).
* **The Starter is stopped or killed**: its child is stopped (or SIGTERMed by the kernel).
"""

from __future__ import annotations

from typing import Any

from .messages import ActorAddress, InitSupervisor, StartChild, TerminateChild
from .supervisor import Supervisor


class Starter(Supervisor):
    """A ``Supervisor`` that owns exactly one child.

    Initialise it with ``InitSupervisor`` carrying exactly one ``ChildSpec`` (any strategy name
    is accepted: with one child they are all one_for_one). ``StartChild`` and ``TerminateChild``
    are rejected: stop the Starter itself to stop its child.
    """

    def validate_init(self, msg: InitSupervisor) -> list[str]:
        """The base checks, plus: exactly one child."""
        problems = super().validate_init(msg)
        if len(msg.children) != 1:
            problems.append(f"a Starter supervises exactly one child, got {len(msg.children)}")
        return problems

    def receiveMsg_StartChild(self, msg: StartChild, sender: ActorAddress) -> None:
        """Rejected: a Starter owns exactly one child."""
        child_id = getattr(msg.spec, "child_id", "")
        self._reject(sender, child_id, "a Starter owns exactly one child; create another Starter")

    def receiveMsg_TerminateChild(self, msg: TerminateChild, sender: ActorAddress) -> None:
        """Rejected: stop the Starter itself (ActorExitRequest) to stop its child."""
        self._reject(sender, msg.child_id, "stop the Starter itself to stop its child")

    def receiveMsg_ChildActorExited(self, msg: Any, sender: ActorAddress) -> None:
        """As the base; then, if the child was forgotten, exit normally."""
        super().receiveMsg_ChildActorExited(msg, sender)
        core = self._core
        if core.configured and not core.stopping and len(core.table) == 0:
            core.stop()
            self.exit_normally(self._parent, "child exited and is not restarted")
