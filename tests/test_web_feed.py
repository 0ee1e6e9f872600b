"""The web view's event feed (core/web_feed.py): which events become lines, what they say, and
what a page that was away gets back. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.core.web_feed import FEED_EVENTS, EventFeed, describe
from snakepit_actors.telemetry import EVENTS


def test_every_feed_event_is_an_event_the_library_emits() -> None:
    assert set(FEED_EVENTS) <= EVENTS


def test_crashes_restarts_escalations_recycles_and_member_loss_are_kept_requests_are_not(
        ) -> None:
    feed = EventFeed()
    kept = [feed.add(e, {"pool": "p"}, 1.0) for e in (
        "worker.exited", "worker.restarted", "pool.degraded", "worker.recycled",
        "placement.member_lost", "request.completed", "worker.ready")]
    assert [i.kind if i else None for i in kept] == [
        "crash", "restart", "escalation", "recycle", "member", None, None]
    assert [i.seq for i in feed.recent()] == [1, 2, 3, 4, 5]


def test_the_nodes_echo_of_a_pool_restart_is_not_a_second_line() -> None:
    feed = EventFeed()
    assert feed.add("pool.restarted", {"component": "pool_root", "child": "pool"}, 0.0)
    assert feed.add("pool.restarted", {"component": "node", "restarts": 1}, 0.0) is None
    assert len(feed.recent()) == 1


def test_a_line_names_the_worker_and_the_details_but_not_the_nodes_own_name() -> None:
    assert describe("worker.exited", {"worker_id": "w1", "reason": "process_exited",
                                      "exit_code": -9, "node": "mynode"}) == (
        "worker.exited w1 (reason=process_exited, exit_code=-9)")
    assert describe("placement.member_lost", {"node": "gpu1", "reason": "silent",
                                              "silent_s": 10.2}) == (
        "placement.member_lost member gpu1 (reason=silent, silent_s=10.2)")
    assert describe("worker.node_lost", {"worker_id": "w1", "node": "gpu1"}) == (
        "worker.node_lost w1 (node=gpu1)")
    assert describe("pool.restarted", {"child": "pool", "restarts": 1}) == (
        "pool.restarted (child=pool, restarts=1)")


def test_the_ring_keeps_the_last_items_and_says_how_many_a_late_page_missed() -> None:
    feed = EventFeed(size=3)
    for _ in range(5):
        feed.add("worker.exited", {}, 0.0)
    items, missed = feed.since(0)
    assert [i.seq for i in items] == [3, 4, 5] and missed == 2
    assert feed.since(4)[0][0].seq == 5 and feed.since(4)[1] == 0
    assert feed.since(5) == ([], 0)


@given(st.lists(st.sampled_from(sorted(EVENTS)), max_size=50), st.integers(1, 10))
def test_sequence_numbers_grow_by_one_per_kept_event_whatever_arrives(
        events: list[str], size: int) -> None:
    feed = EventFeed(size)
    items = [i for e in events if (i := feed.add(e, {}, 0.0)) is not None]
    assert [i.seq for i in items] == list(range(1, len(items) + 1))
    assert feed.recent() == items[-size:]
