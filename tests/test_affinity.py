"""AffinityTable and Scheduler's strict affinity: the Pool's routing of session requests,
driven directly (no actors, injected clock)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from snakepit_actors.core.affinity import AffinityTable, PinLost, Route
from snakepit_actors.core.scheduling import Dispatch, Queued, Rejected, Scheduler


def live(**pids: int) -> dict[str, int]:
    return pids


def test_a_request_without_session_or_pin_goes_anywhere() -> None:
    table = AffinityTable("strict_queue")
    assert table.route(None, {}.get) == Route(None)
    assert table.route("s1", {}.get) == Route(None)


def test_hint_prefers_the_pinned_worker_and_re_pins_when_it_died() -> None:
    table = AffinityTable("hint")
    table.pin("s1", "w1", 100)
    assert table.route("s1", live(w1=100).get) == Route("w1")
    assert table.route("s1", live(w1=101).get) == Route(None)  # restarted: new process
    assert table.route("s1", live().get) == Route(None)


def test_strict_modes_require_the_pinned_worker_while_its_process_lives() -> None:
    for mode in ("strict_queue", "strict_fail_fast"):
        table = AffinityTable(mode)  # type: ignore[arg-type]
        table.pin("s1", "w1", 100)
        assert table.route("s1", live(w1=100).get) == Route("w1", mode)  # type: ignore[arg-type]


def test_strict_modes_report_a_dead_pin_once_then_start_afresh() -> None:
    table = AffinityTable("strict_fail_fast")
    table.pin("s1", "w1", 100)
    lost = table.route("s1", live(w1=101).get)
    assert isinstance(lost, PinLost) and lost.pin.worker_id == "w1"
    assert table.route("s1", live(w1=101).get) == Route(None)


def test_pins_are_bounded_least_recently_used_first() -> None:
    table = AffinityTable("hint", max_pins=2)
    table.pin("a", "w1", 1)
    table.pin("b", "w1", 1)
    table.pin("a", "w2", 2)  # a is now the most recent
    table.pin("c", "w1", 1)
    assert table.get("b") is None and table.get("a") is not None and len(table) == 2


def test_strict_fail_fast_refuses_when_the_worker_is_busy() -> None:
    core: Scheduler[str] = Scheduler()
    core.add_worker("w1", 0.0)
    core.add_worker("w2", 0.0)
    assert core.submit("r1", "a", 0.0, preferred="w1") == Dispatch("w1", "r1", "a")
    assert core.submit("r2", "b", 0.0, preferred="w1",
                       strict="strict_fail_fast") == Rejected("affinity_busy")
    assert core.available == 1  # w2 was not taken


def test_strict_queue_waits_for_its_worker_even_when_another_is_free() -> None:
    core: Scheduler[str] = Scheduler(queue_timeout_s=10.0)
    core.add_worker("w1", 0.0)
    core.add_worker("w2", 0.0)
    core.submit("r1", "a", 0.0, preferred="w1")
    assert core.submit("r2", "b", 0.0, preferred="w1", strict="strict_queue") == Queued(1)
    assert core.submit("r3", "c", 0.0) == Dispatch("w2", "r3", "c")
    assert core.release_held(5.0) == []  # no hold timer: it never goes elsewhere
    assert core.checkin("w1", "r1", 1.0) == [Dispatch("w1", "r2", "b")]


def test_strict_queue_expires_at_its_queue_deadline() -> None:
    core: Scheduler[str] = Scheduler(queue_timeout_s=1.0)
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0, preferred="w1")
    core.submit("r2", "b", 0.0, preferred="w1", strict="strict_queue")
    assert [e.request_id for e in core.expire(2.0)] == ["r2"]
    assert core.checkin("w1", "r1", 2.0) == []


def test_strict_requests_held_for_a_worker_that_leaves_are_stranded_not_moved() -> None:
    core: Scheduler[str] = Scheduler()
    core.add_worker("w1", 0.0)
    core.add_worker("w2", 0.0)
    core.submit("r1", "a", 0.0, preferred="w1")
    core.submit("r2", "b", 0.0, preferred="w1", strict="strict_queue")
    assert core.remove_worker("w1") == ["r1"]
    assert core.release_held(0.0) == []
    assert core.take_stranded() == [("w1", "r2", "b")]
    assert core.queued == 0 and core.take_stranded() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["submit", "strict", "checkin", "remove", "add"]),
                          st.sampled_from(["w1", "w2"])), max_size=40))
def test_strict_requests_only_ever_run_on_their_worker(ops: list[tuple[str, str]]) -> None:
    core: Scheduler[str] = Scheduler(max_queue=100)
    for w in ("w1", "w2"):
        core.add_worker(w, 0.0)
    running: dict[str, str] = {}
    wanted: dict[str, str] = {}

    def ran(dispatches: list[Dispatch[str]]) -> None:
        for d in dispatches:
            if d.request_id in wanted:
                assert d.worker_id == wanted[d.request_id]
            running[d.request_id] = d.worker_id

    for n, (op, w) in enumerate(ops):
        rid = f"r{n}"
        if op in ("submit", "strict"):
            if op == "strict" and core.has_worker(w):
                wanted[rid] = w
            decision = core.submit(rid, rid, 0.0, preferred=w if core.has_worker(w) else None,
                                   strict="strict_queue" if rid in wanted else "hint")
            if isinstance(decision, Dispatch):
                ran([decision])
        elif op == "checkin":
            done = [r for r, worker in running.items() if worker == w]
            if done:
                del running[done[0]]
                ran(core.checkin(w, done[0], 0.0))
        elif op == "remove":
            for r in core.remove_worker(w):
                running.pop(r, None)
            ran(core.release_held(0.0))
            for _, r, _ in core.take_stranded():
                wanted.pop(r)
        else:
            ran(core.add_worker(w, 0.0))
