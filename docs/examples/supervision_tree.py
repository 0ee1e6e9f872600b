"""A small supervision tree: a worker is killed and comes back, and the registry follows.

    root Supervisor (one_for_one)              Registry  "worker-1" -> (address, pid)
     └─ Starter "starter-1" (backoff 0.2 s)      ^ forgets worker-1 when it exits (exit_watchers)
         └─ Worker "worker-1"  --Register--------'

Run from the repository root: ``python docs/examples/supervision_tree.py``. It starts a private
multiprocTCPBase system on loopback, kills the worker with SIGKILL, prints the facts the tree
reports while it heals, and shuts everything down (exit status 0, no process left).
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ruff: noqa: E402  (the imports below must follow the checkout path insert)
_CHECKOUT = Path(__file__).resolve().parents[2]
if (_CHECKOUT / "supervision" / "snakepit_supervision").is_dir():
    sys.path[:0] = [str(_CHECKOUT), str(_CHECKOUT / "supervision")]  # a checkout: its packages

from thespian.actors import ActorExitRequest, ActorTypeDispatcher

from snakepit_actors.config import SystemConfig
from snakepit_actors.system import shutdown_actor_system, start_actor_system
from snakepit_supervision import (
    ChildExited,
    ChildRestarting,
    ChildSpec,
    ChildStarted,
    InitSupervisor,
    Lookup,
    Register,
    Registry,
    RegistryChanged,
    SubscribeRegistry,
    SupervisedActor,
    Supervisor,
    WhichChildren,
)


@dataclass(frozen=True, slots=True)
class StartWork:
    """Init message of the worker: where to register itself."""

    name: str
    registry: Any


class Worker(SupervisedActor):
    """A leaf that registers itself under its name, with its pid as the value."""

    def receiveMsg_StartWork(self, msg: StartWork, sender: Any) -> None:
        self.send(msg.registry, Register(msg.name, self.myAddress, os.getpid(), replace=True))


@dataclass(frozen=True, slots=True)
class Drain:
    """Ask the observer for what it has seen since the last drain."""


class Observer(ActorTypeDispatcher):
    """Collects the facts of the tree and the registry; the script drains and prints them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def receiveMsg_Drain(self, msg: Drain, sender: Any) -> None:
        self.send(sender, list(self.seen))
        self.seen.clear()

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:
        self.seen.append(msg)


def describe(fact: Any) -> str | None:
    if isinstance(fact, ChildStarted):
        return f"{fact.supervisor}: started {fact.child_id} (restart {fact.restarts})"
    if isinstance(fact, ChildExited):
        return f"{fact.supervisor}: {fact.child_id} exited ({fact.reason})"
    if isinstance(fact, ChildRestarting):
        return f"{fact.supervisor}: restarting {fact.child_id} in {fact.after_s} s"
    if isinstance(fact, RegistryChanged):
        verb = "forgot" if fact.removed else "registered"
        return f"registry: {verb} {fact.key} (pid {fact.value})"
    return None


def wait_for_pid(asys: Any, registry: Any, not_pid: int | None, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = asys.ask(registry, Lookup("worker-1"), 5.0)
        if found is not None and found.value not in (None, not_pid):
            return int(found.value)
        time.sleep(0.02)
    raise TimeoutError("worker-1 did not register in time")


def print_facts(asys: Any, observer: Any, settle_s: float) -> None:
    time.sleep(settle_s)
    for fact in asys.ask(observer, Drain(), 5.0) or []:
        line = describe(fact)
        if line:
            print("  " + line)


def main() -> int:
    run_dir = tempfile.mkdtemp(prefix="sup-example-")
    started = start_actor_system(SystemConfig(), run_dir)
    asys = started.actor_system
    session = None
    try:
        observer = asys.createActor(Observer)
        registry = asys.createActor(Registry)
        asys.tell(registry, SubscribeRegistry(observer))
        starter_init = InitSupervisor(
            "one_for_one",
            max_restarts=3,
            max_seconds=5.0,
            backoff_initial_s=0.2,
            children=(ChildSpec("worker-1", "__main__:Worker", StartWork("worker-1", registry)),),
            notify=observer,
            exit_watchers=(registry,),
            name="starter-1",
        )
        root_init = InitSupervisor(
            "one_for_one",
            max_restarts=3,
            max_seconds=5.0,
            name="root",
            notify=observer,
            children=(ChildSpec("starter-1", "snakepit_supervision:Starter", starter_init),),
        )
        root = asys.createActor(Supervisor)
        print("started:", asys.ask(root, root_init, 5.0))
        pid = wait_for_pid(asys, registry, None)
        session = os.getsid(pid)  # the actor system's session: admin, logger and every actor
        print_facts(asys, observer, 0.1)

        print(f"killing worker-1 (pid {pid}) with SIGKILL")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        new_pid = wait_for_pid(asys, registry, pid)
        print(f"worker-1 is back as pid {new_pid} after {time.monotonic() - killed_at:.2f} s")
        print_facts(asys, observer, 0.1)

        children = asys.ask(root, WhichChildren(), 5.0)
        print("root's children:", [(c.child_id, c.state, c.restarts) for c in children.children])
        asys.tell(root, ActorExitRequest())  # stop the tree before its registry and observer
        print_facts(asys, observer, 0.2)
    finally:
        shutdown_actor_system(started)
    left = _session_processes(session) if session is not None else []
    print("shut down; processes left:", left or "none")
    return 1 if left else 0


def _session_processes(sid: int, wait_s: float = 3.0) -> list[int]:
    """Live (non-zombie) processes of session ``sid`` after up to ``wait_s`` (Linux /proc)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for entry in os.listdir("/proc"):
            try:
                if entry.isdigit() and os.getsid(int(entry)) == sid:
                    with open(f"/proc/{entry}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                            left.append(int(entry))
            except OSError:
                continue  # it exited while we looked
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
