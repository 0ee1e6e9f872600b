"""Specifications of the ``Registry`` actor on multiprocTCPBase, including removal on exit."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import Harness
from supervision_test_actors import Child, Collector, Hello, HelloBack
from thespian.actors import ActorExitRequest

from snakepit_supervision import (
    InitKeyRegistry,
    ListEntries,
    Lookup,
    LookupResult,
    Register,
    Registered,
    RegistrationRejected,
    Registry,
    RegistryChanged,
    RegistrySnapshot,
    SubscribeRegistry,
    Unregister,
    UnregisterAddress,
    Unregistered,
)

pytestmark = pytest.mark.timeout(60)


def removed(h: Harness, key: str) -> list[RegistryChanged]:
    return [c for c in h.of(RegistryChanged, key=key) if c.removed]


def test_keys_are_registered_looked_up_replaced_and_unregistered(harness: Harness) -> None:
    registry = harness.asys.createActor(Registry)
    first, other = harness.collector, harness.asys.createActor(Collector)
    assert harness.ask(registry, Register("k", first, 1)) == Registered("k", first, False)
    assert harness.ask(registry, Lookup("k")) == LookupResult("k", first, 1)
    assert harness.ask(registry, Register("k", first, 2)) == Registered("k", first, True)

    rejected = harness.ask(registry, Register("k", other, 3))
    assert isinstance(rejected, RegistrationRejected) and rejected.holder == first
    assert "replace=True" in rejected.reason
    assert harness.ask(registry, Register("k", other, 4, replace=True)) == Registered(
        "k", other, True
    )
    assert harness.ask(registry, Lookup("k")) == LookupResult("k", other, 4)

    assert harness.ask(registry, Unregister("k")) == Unregistered("k", True)
    assert harness.ask(registry, Unregister("k")) == Unregistered("k", False)
    assert harness.ask(registry, Lookup("k")) == LookupResult("k", None, None)


def test_unregister_address_forgets_every_key_of_that_address(harness: Harness) -> None:
    registry = harness.asys.createActor(Registry)
    other = harness.asys.createActor(Collector)
    for key, address in (("a", harness.collector), ("b", other), ("c", harness.collector)):
        harness.ask(registry, Register(key, address))
    harness.asys.tell(registry, UnregisterAddress(harness.collector))
    snapshot = harness.ask(registry, ListEntries())
    assert isinstance(snapshot, RegistrySnapshot)
    assert [(e.key, e.address == other) for e in snapshot.entries] == [("b", True)]


def test_subscribers_get_a_snapshot_then_every_change(harness: Harness) -> None:
    registry = harness.asys.createActor(Registry)
    harness.asys.tell(registry, InitKeyRegistry(name="reg"))
    harness.ask(registry, Register("b", harness.collector, "vb"))
    harness.ask(registry, Register("a", harness.collector, "va"))
    harness.asys.tell(registry, SubscribeRegistry(harness.collector))
    harness.ask(registry, Register("c", harness.collector, "vc"))
    harness.ask(registry, Unregister("a"))
    harness.wait_for(lambda _: len(harness.of(RegistryChanged)) == 2)
    [snapshot] = harness.of(RegistrySnapshot)
    assert snapshot.registry == "reg"
    assert [(e.key, e.value) for e in snapshot.entries] == [("a", "va"), ("b", "vb")]
    changes = [(c.key, c.value, c.removed) for c in harness.of(RegistryChanged)]
    assert changes == [("c", "vc", False), ("a", "va", True)]


def test_a_supervised_child_is_forgotten_within_milliseconds_of_being_killed(
    harness: Harness,
) -> None:
    registry = harness.asys.createActor(Registry)
    supervisor = harness.supervisor((harness.child("w"),), exit_watchers=(registry,))
    [incarnation] = harness.of(HelloBack, tag="w")
    harness.ask(registry, Register("w", incarnation.address, incarnation.pid))
    harness.asys.tell(registry, SubscribeRegistry(harness.collector))
    harness.wait_for(lambda _: bool(harness.of(RegistrySnapshot)))

    killed_at = time.monotonic()
    os.kill(incarnation.pid, signal.SIGKILL)
    harness.wait_for(lambda _: bool(removed(harness, "w")), timeout_s=5.0)
    latency_s = time.monotonic() - killed_at
    print(f"exit-fact removal latency: {latency_s * 1000:.1f} ms")
    assert latency_s < 2.0  # typically 5-20 ms; loose for a noisy machine

    harness.wait_for(lambda _: len(harness.pids("w")) == 2)
    reborn = harness.of(HelloBack, tag="w")[-1]
    assert harness.ask(registry, Register("w", reborn.address)) == Registered(
        "w", reborn.address, False
    )

    harness.asys.tell(supervisor, ActorExitRequest())  # stop it before its registry (see docs)
    harness.wait_for(lambda _: len(removed(harness, "w")) == 2)


def test_probing_forgets_a_dead_unsupervised_actor_and_keeps_live_ones(harness: Harness) -> None:
    registry = harness.asys.createActor(Registry)
    harness.asys.tell(registry, InitKeyRegistry("probed", probe_interval_s=0.1, probe_misses=2))
    lone = harness.asys.createActor(Child)
    harness.asys.tell(lone, Hello("lone", harness.collector))
    harness.wait_for(lambda _: bool(harness.pids("lone")))
    harness.ask(registry, Register("lone", lone))
    harness.ask(registry, Register("live", harness.collector))
    harness.asys.tell(registry, SubscribeRegistry(harness.collector))

    killed_at = time.monotonic()
    os.kill(harness.pids("lone")[0], signal.SIGKILL)
    harness.wait_for(lambda _: bool(removed(harness, "lone")), timeout_s=5.0)
    latency_s = time.monotonic() - killed_at
    print(f"probe removal latency (0.1 s x 2): {latency_s * 1000:.0f} ms")
    assert latency_s < 3.0  # about 0.2-0.3 s

    time.sleep(0.5)  # five more probe rounds: the live actor answers every one
    assert harness.ask(registry, Lookup("live")).address == harness.collector
    assert not removed(harness, "live")
