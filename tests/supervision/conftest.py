"""Fixtures for the supervision tests: one real multiprocTCPBase system per test, torn down and
checked for leftover processes (everything in the system's session) afterwards."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
from supervision_test_actors import Collector, Drain, Hello, HelloBack, HereIAm, WhereAmI

from snakepit_actors.config import SystemConfig
from snakepit_actors.system import (
    make_run_dir,
    remove_run_dir,
    shutdown_actor_system,
    start_actor_system,
)
from snakepit_supervision import ChildSpec, InitSupervisor, Supervisor

CHILD = "supervision_test_actors:Child"
ASK_S = 5.0


@dataclass
class Harness:
    """A running actor system with a ``Collector`` that records every fact and report."""

    asys: Any
    collector: Any
    sid: int
    seen: list[Any] = field(default_factory=list)

    def ask(self, target: Any, msg: Any, timeout_s: float = ASK_S) -> Any:
        """``ask`` with an explicit timeout; None means no answer in time."""
        return self.asys.ask(target, msg, timeout_s)

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout_s: float = 5.0) -> list[Any]:
        """Poll the collector until ``predicate(all messages seen so far)``; fail on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            drained = self.ask(self.collector, Drain())
            if drained is not None:
                self.seen.extend(drained.messages)
            if predicate(self.seen):
                return self.seen
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout_s} s; seen: {self.seen!r}")
            time.sleep(0.01)

    def settle(self, seconds: float = 0.3) -> list[Any]:
        """Collect whatever arrives during ``seconds`` (to check that nothing more happens)."""
        time.sleep(seconds)
        return self.wait_for(lambda _: True)

    def of(self, kind: type, **match: Any) -> list[Any]:
        """Messages seen so far of type ``kind`` whose attributes equal ``match``."""
        return [
            m
            for m in self.seen
            if isinstance(m, kind) and all(getattr(m, k) == v for k, v in match.items())
        ]

    def pids(self, tag: str) -> list[int]:
        """Pids of every incarnation of child ``tag`` that reported, in order."""
        return [m.pid for m in self.of(HelloBack, tag=tag)]

    def child(self, tag: str, restart: str = "permanent", actor: str = CHILD) -> ChildSpec:
        """A ``Child`` spec that reports to the collector."""
        return ChildSpec(tag, actor, Hello(tag, self.collector), restart)  # type: ignore[arg-type]

    def supervisor(
        self, children: tuple[ChildSpec, ...], actor: type = Supervisor, **init: Any
    ) -> Any:
        """Create a supervisor, initialise it (facts to the collector) and wait until every
        child reported once."""
        init.setdefault("strategy", "one_for_one")
        init.setdefault("max_restarts", 5)
        init.setdefault("max_seconds", 5.0)
        init.setdefault("notify", self.collector)
        address = self.asys.createActor(actor)
        reply = self.ask(address, InitSupervisor(children=children, **init))
        assert reply is not None and type(reply).__name__ == "SupervisorStarted", reply
        tags = [c.child_id for c in children]
        self.wait_for(lambda _: all(self.pids(t) for t in tags))
        return address


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_dead(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    """The pids still alive after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the actor system's admin, logger and actors)."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) == sid:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


@pytest.fixture
def harness() -> Iterator[Harness]:
    """A fresh multiprocTCPBase system on loopback; afterwards shut down, and no process of
    its session may survive (leftovers are killed by pid and the test fails)."""
    run_dir = make_run_dir("supervision")
    started = start_actor_system(SystemConfig(), run_dir)
    sid, labels = None, {}
    try:
        collector = started.actor_system.createActor(Collector)
        where = started.actor_system.ask(collector, WhereAmI(), ASK_S)
        assert isinstance(where, HereIAm), where
        assert where.sid != os.getsid(0), "the actor system must run in its own session"
        sid, labels = where.sid, {where.sid: "admin", where.pid: "collector"}
        yield Harness(started.actor_system, collector, sid)
    finally:
        shutdown_actor_system(started)
    leftovers = wait_dead(session_processes(sid)) if sid is not None else []
    described = {pid: f"{labels.get(pid, 'actor or logger')} {describe(pid)}" for pid in leftovers}
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    log_tail = _tail(os.path.join(run_dir, "thespian.log")) if leftovers else ""
    remove_run_dir(run_dir)
    assert not leftovers, f"processes outlived the actor system: {described}\n{log_tail}"


def _tail(path: str, lines: int = 60) -> str:
    try:
        with open(path) as log:
            return "".join(log.readlines()[-lines:])
    except OSError:
        return "(no thespian.log)"


def describe(pid: int) -> str:
    """What is known about a leftover process (for the failure message)."""
    try:
        proc = psutil.Process(pid)
        age_s = time.time() - proc.create_time()
        return f"ppid={proc.ppid()} status={proc.status()} age={age_s:.1f}s"
    except psutil.Error as exc:
        return repr(exc)
