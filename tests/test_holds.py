"""Affinity holds on the client's side of the direct path: ``holds.Holds`` and how the
``LeaseBroker`` uses them (a session's caller waits a moment for its worker's lease, ahead of
the FIFO, then moves and says so). No actors, no processes, no sleeps: time is a number."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.core.holds import Holds
from snakepit_actors.core.leases import Lease, LeaseBroker
from snakepit_actors.errors import PoolSaturatedError

WAIT_S = 0.02


def broker(affinity_wait_s: float = WAIT_S, idle_return_s: float = 1.0) -> LeaseBroker[str]:
    ids = itertools.count()
    return LeaseBroker(lambda: f"L{next(ids)}", affinity_wait_s=affinity_wait_s,
                       idle_return_s=idle_return_s)


def two_leases(b: LeaseBroker[str]) -> tuple[Lease, Lease]:
    """Callers a (session s) and b get a lease on w1 and w2; s has run on w1."""
    b.acquire("a", "s", 0.0)
    b.acquire("b", None, 0.0)
    r1, r2 = (r.request_id for r in b.take_outgoing().requests)
    (h1,) = b.granted(r1, "w1", "unix:/1", 1, 0.0)
    (h2,) = b.granted(r2, "w2", "unix:/2", 2, 0.0)
    assert (h1.item, h2.item) == ("a", "b")
    b.ran("s", "w1", 1)
    return h1.lease, h2.lease


def test_a_sessions_caller_waits_for_its_busy_workers_lease_ahead_of_the_fifo_head() -> None:
    b = broker()
    w1, w2 = two_leases(b)
    assert b.acquire("old", None, 0.001) is None  # the FIFO head
    assert b.acquire("s-next", "s", 0.002) is None  # held for w1
    assert [h.item for h in b.release(w2, 0.003)] == ["old"]  # w2 is not s's worker
    handoffs = b.release(w1, 0.004)
    assert [(h.item, h.lease.worker_id) for h in handoffs] == [("s-next", "w1")]
    assert handoffs[0].lease.session_from == ""  # it stays: no move


def test_a_sessions_caller_skips_an_idle_lease_of_another_worker_while_held() -> None:
    b = broker()
    _, w2 = two_leases(b)
    b.release(w2, 0.001)  # idle
    assert b.acquire("s-next", "s", 0.002) is None and b.idle == 1
    assert b.next_hold_end() == 0.002 + WAIT_S


def test_when_the_hold_ends_the_caller_takes_any_lease_and_the_lease_says_it_moved() -> None:
    b = broker()
    _, w2 = two_leases(b)
    b.release(w2, 0.001)
    b.acquire("s-next", "s", 0.002)
    assert b.tick(0.002 + WAIT_S / 2) == []
    (moved,) = b.tick(0.002 + WAIT_S)
    assert (moved.item, moved.lease.worker_id, moved.lease.session_from) == ("s-next", "w2", "w1")


def test_a_held_caller_whose_idle_leases_went_back_is_served_by_the_pools_next_grant() -> None:
    b = broker(idle_return_s=0.005)
    _, w2 = two_leases(b)
    b.release(w2, 0.001)
    b.acquire("s-next", "s", 0.002)
    (request,) = b.take_outgoing().requests  # a lease request covers the held caller
    assert request.session_id == "s"
    assert b.tick(0.01) == [] and b.idle == 0  # w2's idle lease went back meanwhile
    assert b.tick(0.002 + WAIT_S) == []
    (moved,) = b.granted(request.request_id, "w3", "unix:/3", 3, 0.03)
    assert (moved.item, moved.lease.session_from) == ("s-next", "w1")


def test_a_hold_that_ends_with_no_idle_lease_queues_behind_the_fifo() -> None:
    b = broker()
    w1, w2 = two_leases(b)
    b.acquire("s-next", "s", 0.0)
    b.acquire("late", None, 0.001)
    assert b.tick(WAIT_S) == []
    assert [h.item for h in b.release(w2, WAIT_S + 0.001)] == ["late"]
    assert [h.item for h in b.release(w1, WAIT_S + 0.002)] == ["s-next"]


def test_a_held_caller_whose_own_grant_went_to_another_worker_asks_again_when_its_hold_ends(
        ) -> None:
    b = broker(idle_return_s=0.005)
    two_leases(b)
    b.acquire("s-next", "s", 0.0)
    (request,) = b.take_outgoing().requests
    assert b.granted(request.request_id, "w3", "unix:/3", 3, 0.001) == []  # not s's worker
    b.tick(0.01)  # w3's lease idled and went back
    assert b.requested == 0 and b.waiting == 1
    b.tick(WAIT_S)
    (again,) = b.take_outgoing().requests
    assert again.session_id == "s" and b.requested == 1
    (handoff,) = b.granted(again.request_id, "w3", "unix:/3", 3, 0.03)
    assert handoff.item == "s-next"


def test_a_session_whose_worker_process_changed_is_marked_moved_even_on_the_same_worker() -> None:
    b = broker()
    w1, _ = two_leases(b)
    b.ran("s", "w1", 99)  # its last run was on w1's previous process
    b.release(w1, 0.001)
    lease = b.acquire("s-next", "s", 0.002)
    assert lease is not None and (lease.worker_id, lease.session_from) == ("w1", "w1")


def test_without_affinity_wait_a_session_takes_any_idle_lease_at_once() -> None:
    b = broker(affinity_wait_s=0.0)
    _, w2 = two_leases(b)
    b.release(w2, 0.001)
    lease = b.acquire("s-next", "s", 0.002)
    assert lease is not None and (lease.worker_id, lease.session_from) == ("w2", "w1")


def test_an_abandoned_or_refused_held_caller_is_never_handed_a_lease() -> None:
    b = broker()
    w1, _ = two_leases(b)
    b.acquire("gone", "s", 0.0)
    assert b.abandon("gone") and b.waiting == 0
    assert b.release(w1, 0.001) == [] and b.idle == 1
    assert b.acquire("next", "s", 0.002) is w1  # w1 is idle: taken at once
    b.acquire("held", "s", 0.003)
    (request,) = b.take_outgoing().requests
    (refusal,) = b.refused(request.request_id, PoolSaturatedError("full"))
    assert refusal.item == "held" and b.waiting == 0 and b.next_hold_end() is None


def test_holds_end_in_arrival_order_and_a_worker_serves_its_oldest_live_hold() -> None:
    holds: Holds[str] = Holds()
    holds.hold("a", "w1", 1.0)
    holds.hold("b", "w2", 2.0)
    holds.hold("c", "w1", 3.0)
    assert holds.drop("a") and not holds.drop("a")
    assert holds.take_for("w1") == "c" and holds.take_for("w1") is None
    assert holds.next_at() == 2.0 and holds.expired(2.0) == ["b"] and len(holds) == 0


@given(st.lists(st.tuples(st.sampled_from(["hold", "take", "drop", "tick", "newest"]),
                          st.sampled_from(["w1", "w2"]), st.integers(0, 5)), max_size=60))
def test_holds_behave_like_a_plain_list_of_holds(ops: list[tuple[str, str, int]]) -> None:
    holds: Holds[int] = Holds()
    model: list[tuple[int, str, float]] = []  # (item, worker, until), arrival order
    now, items = 0.0, itertools.count()
    for op, worker, n in ops:
        if op == "hold":
            item = next(items)
            holds.hold(item, worker, now + 1.0)
            model.append((item, worker, now + 1.0))
        elif op == "take":
            want = next((m for m in model if m[1] == worker), None)
            assert holds.take_for(worker) == (want[0] if want else None)
            if want:
                model.remove(want)
        elif op == "drop" and model:
            victim = model.pop(n % len(model))
            assert holds.drop(victim[0])
        elif op == "tick":
            now += n * 0.3
            assert holds.expired(now) == [m[0] for m in model if m[2] <= now]
            model = [m for m in model if m[2] > now]
        elif op == "newest":
            assert holds.pop_newest() == (model.pop()[0] if model else None)
        assert len(holds) == len(model) and holds.items() == [m[0] for m in model]
        assert holds.next_at() == (model[0][2] if model else None)
