"""``LeaseClient`` tells its direct path which process a revoked lease with a call running on
it was on (``on_lost_in_use``), so that call's channel can be closed. Pure gateway-side
logic: the Pool's answers are messages built here."""

from __future__ import annotations

import itertools

import pytest

from snakepit_actors.client.lease_client import LeaseClient, ThreadWaiter
from snakepit_actors.errors import WorkerCrashedError
from snakepit_actors.messages import LeaseGranted, LeaseRevoked

pytestmark = pytest.mark.timeout(30)


def granted_client() -> tuple[LeaseClient, list[tuple[str, int]], str, ThreadWaiter]:
    ids = (f"r{i}" for i in itertools.count())
    client = LeaseClient(None, lambda: next(ids), lambda: None)
    lost: list[tuple[str, int]] = []
    client.on_lost_in_use = lambda endpoint, pid: lost.append((endpoint, pid))
    waiter = ThreadWaiter()
    assert client.acquire(waiter, None) is None
    batch = client.flush()
    assert batch is not None
    [request_id] = batch.requests
    client.handle(LeaseGranted(request_id, "w1", "unix:/tmp/w1.sock", 4242))
    assert waiter.wait(1.0)
    return client, lost, request_id, waiter


def test_a_lease_revoked_while_its_call_runs_names_its_process() -> None:
    client, lost, request_id, _waiter = granted_client()
    client.handle(LeaseRevoked(request_id, "w1", WorkerCrashedError("gone")))
    assert lost == [("unix:/tmp/w1.sock", 4242)]


def test_an_idle_revoked_lease_names_nothing() -> None:
    client, lost, request_id, waiter = granted_client()
    client.release_unused(waiter.outcome())  # back to idle: no call runs on it
    client.handle(LeaseRevoked(request_id, "w1", WorkerCrashedError("gone")))
    assert lost == []
