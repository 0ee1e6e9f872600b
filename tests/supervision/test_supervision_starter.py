"""Specifications of the ``Starter`` (a supervisor of exactly one child) on multiprocTCPBase."""

from __future__ import annotations

import os
import signal

import pytest
from conftest import Harness, wait_dead
from supervision_test_actors import ChildGone, HelloBack, LeaveNormally, Parent, SpawnSupervisor

from snakepit_supervision import (
    ChildExited,
    ChildRequestRejected,
    ChildRestarting,
    ChildSpec,
    ChildStarted,
    InitSupervisor,
    StartChild,
    Starter,
    SupervisorEscalated,
    SupervisorInitFailed,
    TerminateChild,
)

pytestmark = pytest.mark.timeout(60)


def starter_init(h: Harness, restart: str = "permanent", **kw: object) -> InitSupervisor:
    fields: dict[str, object] = {"max_restarts": 2, "max_seconds": 10.0, "name": "starter"}
    fields.update(kw)
    return InitSupervisor(
        "one_for_one",
        children=(h.child("w", restart),),
        notify=h.collector,
        **fields,  # type: ignore[arg-type]
    )


def spawn_starter(h: Harness, init: InitSupervisor) -> None:
    parent = h.asys.createActor(Parent)
    h.asys.tell(parent, SpawnSupervisor("snakepit_supervision:Starter", init, h.collector))
    h.wait_for(lambda _: bool(h.pids("w")))


def test_a_starter_restarts_its_one_child_with_backoff(harness: Harness) -> None:
    spawn_starter(harness, starter_init(harness, backoff_initial_s=0.05))
    for n in (1, 2):
        os.kill(harness.pids("w")[-1], signal.SIGKILL)
        harness.wait_for(lambda _, n=n: len(harness.pids("w")) == n + 1)
    assert [r.after_s for r in harness.of(ChildRestarting)] == [0.05, 0.1]
    harness.wait_for(lambda _: len(harness.of(ChildStarted)) == 3)
    assert not harness.of(ChildGone)


def test_a_starter_escalates_when_its_child_crashes_too_often(harness: Harness) -> None:
    spawn_starter(harness, starter_init(harness, max_restarts=1))
    os.kill(harness.pids("w")[0], signal.SIGKILL)
    harness.wait_for(lambda _: len(harness.pids("w")) == 2)
    os.kill(harness.pids("w")[1], signal.SIGKILL)
    harness.wait_for(lambda _: bool(harness.of(ChildGone) and harness.of(SupervisorEscalated)))
    assert not wait_dead(harness.pids("w"))


def test_a_starter_exits_normally_when_its_child_is_not_restarted(harness: Harness) -> None:
    init = starter_init(harness, "transient")
    starter_spec = ChildSpec("starter", "snakepit_supervision:Starter", init, "transient")
    outer = harness.supervisor((), name="outer")
    harness.ask(outer, StartChild(starter_spec))
    harness.wait_for(lambda _: bool(harness.pids("w")))
    [child] = harness.of(HelloBack, tag="w")
    harness.asys.tell(child.address, LeaveNormally("finished"))
    harness.wait_for(lambda _: bool(harness.of(ChildExited, supervisor="outer")))
    [starter_exit] = harness.of(ChildExited, supervisor="outer")
    assert starter_exit.normal and starter_exit.reason == "child exited and is not restarted"
    assert harness.of(ChildExited, supervisor="starter")[0].reason == "finished"
    harness.settle()
    assert len(harness.pids("w")) == 1 and not harness.of(ChildStarted, child_id="starter")[1:]


def test_a_starter_accepts_exactly_one_child_and_no_runtime_changes(harness: Harness) -> None:
    two = InitSupervisor("one_for_one", 1, 1.0, (harness.child("a"), harness.child("b")))
    refused = harness.ask(harness.asys.createActor(Starter), two)
    assert isinstance(refused, SupervisorInitFailed) and "exactly one child" in refused.reason

    starter = harness.asys.createActor(Starter)
    harness.ask(starter, starter_init(harness))
    harness.wait_for(lambda _: bool(harness.pids("w")))
    assert isinstance(harness.ask(starter, StartChild(harness.child("x"))), ChildRequestRejected)
    assert isinstance(harness.ask(starter, TerminateChild("w")), ChildRequestRejected)
