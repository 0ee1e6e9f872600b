"""Placement hooks of ``Supervisor``: held starts, Thespian requirements, and ``lose_child``
(a child on a dead host, which Thespian never reports), on a real multiprocTCPBase system."""

from __future__ import annotations

import pytest
from conftest import CHILD, Harness, alive
from supervision_test_actors import GatedSupervisor, HelloBack, Lose, Lost, OpenGate

from snakepit_supervision import (
    ChildExited,
    ChildrenList,
    ChildRestarting,
    InitSupervisor,
    WhichChildren,
)

pytestmark = pytest.mark.timeout(60)

PICKY = "supervision_test_actors:PickyChild"


def gated(h: Harness, actor: str = CHILD) -> object:
    address = h.asys.createActor(GatedSupervisor)
    reply = h.ask(address, InitSupervisor(
        "one_for_one", max_restarts=3, max_seconds=10.0, children=(h.child("w", actor=actor),),
        notify=h.collector, backoff_initial_s=0.01, name="gated"))
    assert type(reply).__name__ == "SupervisorStarted", reply
    return address


def test_a_held_child_waits_without_an_address_until_resumed(harness: Harness) -> None:
    supervisor = gated(harness)
    harness.settle(0.3)
    assert not harness.of(HelloBack)
    [child] = harness.ask(supervisor, WhichChildren()).children
    assert (child.state, child.address) == ("held", None)
    harness.asys.tell(supervisor, OpenGate())
    harness.wait_for(lambda _: bool(harness.pids("w")))
    listing = harness.ask(supervisor, WhichChildren())
    assert isinstance(listing, ChildrenList) and listing.children[0].state == "running"


@pytest.mark.parametrize(("requirements", "starts"), [
    ({"no_such_capability": True}, False), ({"Admin Port": None}, False), (None, True)])
def test_child_requirements_reach_thespians_placement(harness: Harness, requirements: object,
                                                      starts: bool) -> None:
    """The child's ``actorSystemCapabilityCheck`` sees the requirements: no system here meets
    the first two, so nothing starts (with a convention, Thespian would ask its members)."""
    supervisor = gated(harness, actor=PICKY)
    harness.asys.tell(supervisor, OpenGate(requirements))  # type: ignore[arg-type]
    harness.settle(0.5)
    assert bool(harness.of(HelloBack)) is starts


def test_lose_child_counts_as_a_crash_and_restarts_it(harness: Harness) -> None:
    supervisor = gated(harness)
    harness.asys.tell(supervisor, OpenGate())
    harness.wait_for(lambda _: bool(harness.pids("w")))
    first = harness.of(HelloBack)[0]
    assert harness.ask(supervisor, Lose(first.address)) == Lost(True)
    harness.wait_for(lambda _: len(harness.pids("w")) == 2)
    [exited] = harness.of(ChildExited)
    assert (exited.child_id, exited.normal, exited.reason) == ("w", False, "crashed")
    assert len(harness.of(ChildRestarting)) == 1
    assert harness.ask(supervisor, Lose(first.address)) == Lost(False)  # already forgotten
    assert alive(first.pid)  # only declared lost: the tree's shutdown ends it
