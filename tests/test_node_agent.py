"""NodeAgent on its own, in a real local actor system, with stand-in Workers.

The multi-host tests (test_multihost.py) show the agent's work end to end; this pins the one
case that they hit only by chance: a member paused past its deadline, whose worker the pool
moved away and then, by rebalancing, back to it. The moved-back worker registers under the
same id as the orphan still running there, so the orphan is never missing from a ping; it
must be stopped when its replacement registers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from thespian.actors import ActorExitRequest, ActorTypeDispatcher

from snakepit_actors.messages import InitNodeAgent, NodePing, NodePong, WorkerOnNode
from snakepit_actors.multihost.node_agent import NodeAgent

pytestmark = pytest.mark.timeout(60)


class StandInWorker(ActorTypeDispatcher):
    """Registers with an agent as a Worker would; leaves a file behind when asked to exit."""

    def __init__(self) -> None:
        super().__init__()
        self._marker = ""

    def receiveMsg_tuple(self, msg: tuple[Any, str, str], sender: Any) -> None:
        agent, worker_id, self._marker = msg
        self.send(agent, WorkerOnNode(worker_id))
        self.send(sender, "registered")

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        if self._marker:
            Path(self._marker).write_text("stopped")


def _wait(path: Path, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pong_workers(actor_system: Any, agent: Any, expect: int, timeout_s: float = 10.0) -> int:
    """Ping (listing w1) until the agent counts ``expect`` workers: a stand-in's registration
    and our ping come from different senders, in either order."""
    deadline, seq, workers = time.monotonic() + timeout_s, 0, -1
    while workers != expect and time.monotonic() < deadline:
        seq += 1
        pong = actor_system.ask(agent, NodePing(seq, time.time(), ("w1",)), 10)
        assert isinstance(pong, NodePong)
        workers = pong.workers
        time.sleep(0.05)
    return workers


def test_a_worker_registered_again_under_its_id_stops_the_orphan(actor_system: Any,
                                                                  tmp_path: Path) -> None:
    agent = actor_system.createActor(NodeAgent)
    actor_system.tell(agent, InitNodeAgent("p", "m1", silence_s=30.0))
    orphan = actor_system.createActor(StandInWorker)
    replacement = actor_system.createActor(StandInWorker)
    orphan_mark, replacement_mark = tmp_path / "orphan", tmp_path / "replacement"
    assert actor_system.ask(orphan, (agent, "w1", str(orphan_mark)), 10) == "registered"
    assert _pong_workers(actor_system, agent, 1) == 1  # listed in every ping: not an orphan
    assert not orphan_mark.exists()

    assert actor_system.ask(replacement, (agent, "w1", str(replacement_mark)), 10) == "registered"
    assert _wait(orphan_mark), "the orphan registered under the same id was not stopped"
    assert _pong_workers(actor_system, agent, 1) == 1
    assert not replacement_mark.exists()


def test_the_same_worker_registering_twice_is_left_alone(actor_system: Any,
                                                        tmp_path: Path) -> None:
    agent = actor_system.createActor(NodeAgent)
    actor_system.tell(agent, InitNodeAgent("p", "m1", silence_s=30.0))
    worker, mark = actor_system.createActor(StandInWorker), tmp_path / "worker"
    for _ in range(2):
        assert actor_system.ask(worker, (agent, "w1", str(mark)), 10) == "registered"
    assert _pong_workers(actor_system, agent, 1) == 1
    time.sleep(0.5)
    assert not mark.exists()
