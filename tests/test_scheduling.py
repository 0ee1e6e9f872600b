"""Scheduler: the Pool's queue and checkout decisions, driven directly with an injected clock."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from snakepit_actors.core.scheduling import Dispatch, Expired, Queued, Rejected, Scheduler


def test_a_request_goes_straight_to_a_free_worker() -> None:
    core: Scheduler[str] = Scheduler()
    core.add_worker("w1", now=0.0)
    assert core.submit("r1", "item", now=0.0) == Dispatch("w1", "r1", "item")
    assert (core.available, core.busy) == (0, 1)


def test_requests_wait_in_fifo_order_and_checkin_serves_the_oldest() -> None:
    core: Scheduler[str] = Scheduler()
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0)
    assert core.submit("r2", "b", 0.0) == Queued(1)
    assert core.submit("r3", "c", 0.0) == Queued(2)
    assert core.checkin("w1", "r1", 1.0) == [Dispatch("w1", "r2", "b")]
    assert core.checkin("w1", "r2", 1.0) == [Dispatch("w1", "r3", "c")]


def test_a_full_queue_rejects_with_queue_full() -> None:
    core: Scheduler[str] = Scheduler(max_queue=1)
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0)
    core.submit("r2", "b", 0.0)
    assert core.submit("r3", "c", 0.0) == Rejected("queue_full")


def test_queue_timeout_expires_waiting_requests_and_reports_when_next() -> None:
    core: Scheduler[str] = Scheduler(queue_timeout_s=1.0)
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0)
    core.submit("r2", "b", 0.5)
    assert core.next_expiry() == 1.5
    assert core.expire(1.4) == []
    assert core.expire(1.5) == [Expired("r2", "b", "queue_timeout")]
    assert core.queued == 0 and core.next_expiry() is None


def test_a_request_deadline_shorter_than_the_queue_timeout_wins() -> None:
    core: Scheduler[str] = Scheduler(queue_timeout_s=10.0)
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0)
    core.submit("r2", "b", 0.0, deadline=2.0)
    assert core.expire(2.0) == [Expired("r2", "b", "deadline_in_queue")]


def test_an_already_passed_deadline_is_rejected() -> None:
    core: Scheduler[str] = Scheduler()
    assert core.submit("r1", "a", 5.0, deadline=4.0) == Rejected("deadline_passed")


def test_capacity_gives_each_worker_several_slots_round_robin() -> None:
    core: Scheduler[str] = Scheduler(capacity=2)
    core.add_worker("w1", 0.0)
    core.add_worker("w2", 0.0)
    got = [core.submit(f"r{i}", "x", 0.0) for i in range(5)]
    assert [d.worker_id for d in got[:4] if isinstance(d, Dispatch)] == ["w1", "w1", "w2", "w2"]
    assert got[4] == Queued(1)


def test_an_affinity_hint_takes_the_preferred_worker_out_of_turn() -> None:
    core: Scheduler[str] = Scheduler()
    for w in ("w1", "w2", "w3"):
        core.add_worker(w, 0.0)
    assert core.submit("r1", "a", 0.0, preferred="w3").worker_id == "w3"  # type: ignore[union-attr]
    got = [core.submit(f"r{i}", "x", 0.0) for i in (2, 3, 4)]
    assert [d.worker_id for d in got if isinstance(d, Dispatch)] == ["w1", "w2"]
    assert got[2] == Queued(1)


def test_removing_a_worker_returns_its_in_flight_requests_and_its_slots_vanish() -> None:
    core: Scheduler[str] = Scheduler(capacity=2)
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0)
    assert core.remove_worker("w1") == ["r1"]
    assert core.submit("r2", "b", 0.0) == Queued(1)
    assert core.add_worker("w1", 1.0) == [Dispatch("w1", "r2", "b")]


def test_a_lost_worker_checking_in_takes_no_more_work() -> None:
    core: Scheduler[str] = Scheduler()
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0)
    core.submit("r2", "b", 0.0)
    assert core.checkin("w1", "r1", 0.0, worker_lost=True) == []
    assert core.queued == 1 and core.workers == 0


def test_a_cancelled_queued_request_leaves_the_queue() -> None:
    core: Scheduler[str] = Scheduler()
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0)
    core.submit("r2", "b", 0.0)
    core.submit("r3", "c", 0.0)
    assert core.cancel("r2") == "b" and core.cancel("r2") is None
    assert core.checkin("w1", "r1", 0.0) == [Dispatch("w1", "r3", "c")]


def test_close_returns_the_queued_requests_and_refuses_new_ones() -> None:
    core: Scheduler[str] = Scheduler()
    core.add_worker("w1", 0.0)
    core.submit("r1", "a", 0.0)
    core.submit("r2", "b", 0.0)
    assert core.close() == [("r2", "b")]
    assert core.submit("r3", "c", 0.0) == Rejected("closed")


class SchedulerMachine(RuleBasedStateMachine):
    """Every request ends exactly once; no worker exceeds its capacity; the queue is FIFO."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 2
        self.core: Scheduler[int] = Scheduler(capacity=self.capacity, max_queue=5,
                                            queue_timeout_s=3.0, affinity_wait_s=0.5)
        self.held: dict[str, str] = {}  # request -> the busy worker it is held for
        self.hold_ends: dict[str, float] = {}  # request -> when its affinity hold ends
        self.expires: dict[str, float] = {}  # request -> when it leaves the queue unserved
        self.now = 0.0
        self.next_id = 0
        self.running: dict[str, str] = {}  # request -> worker
        self.queued: list[str] = []
        self.ended: set[str] = set()

    def _dispatched(self, dispatches: list[Dispatch[int]]) -> None:
        for d in dispatches:
            if d.request_id in self.held:  # held for its worker: served out of turn
                assert self.held.pop(d.request_id) in (d.worker_id, None)
                self.queued.remove(d.request_id)
            else:
                assert d.request_id == self._fifo()[0], "queue must be served in FIFO order"
                self.queued.remove(d.request_id)
            self.running[d.request_id] = d.worker_id

    @rule(worker=st.sampled_from(["w1", "w2", "w3"]))
    def add_worker(self, worker: str) -> None:
        self.remove_worker(worker)
        self._dispatched(self.core.add_worker(worker, self.now))

    @rule(worker=st.sampled_from(["w1", "w2", "w3"]))
    def remove_worker(self, worker: str) -> None:
        for rid in self.core.remove_worker(worker):
            assert self.running.pop(rid) == worker
            self._end(rid)
        for rid, held_for in list(self.held.items()):
            if held_for == worker:
                self.held[rid] = None  # type: ignore[assignment]  # released on the next tick

    @rule(deadline=st.one_of(st.none(), st.floats(0.1, 5.0)),
          preferred=st.sampled_from([None, "w1", "w2", "w3"]))
    def submit(self, deadline: float | None, preferred: str | None) -> None:
        rid = f"r{self.next_id}"
        self.next_id += 1
        out = self.core.submit(rid, self.next_id, self.now,
                               None if deadline is None else self.now + deadline, preferred)
        self.expires[rid] = min(self.now + 3.0, self.now + (deadline or 1e9))
        if isinstance(out, Dispatch):
            assert not self._fifo(), "a free slot while requests wait"
            if preferred and self.core.has_worker(preferred) and out.worker_id != preferred:
                assert self.core.in_flight(preferred) == self.capacity, "hint ignored"
            self.running[rid] = out.worker_id
        elif isinstance(out, Queued):
            self.queued.append(rid)
            if preferred and self.core.has_worker(preferred):
                self.held[rid] = preferred
                self.hold_ends[rid] = self.now + 0.5  # affinity_wait_s
        else:
            self._end(rid)

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data(), lost=st.booleans())
    def checkin(self, data: st.DataObject, lost: bool) -> None:
        rid = data.draw(st.sampled_from(sorted(self.running)))
        worker = self.running.pop(rid)
        self._end(rid)
        if lost:
            for other in [r for r, w in self.running.items() if w == worker]:
                self.running.pop(other)
                self._end(other)
        self._dispatched(self.core.checkin(worker, rid, self.now, worker_lost=lost))

    @precondition(lambda self: bool(self.queued))
    @rule(data=st.data())
    def cancel_queued(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(self.queued))
        assert self.core.cancel(rid) is not None
        self.queued.remove(rid)
        self.held.pop(rid, None)
        self._end(rid)

    @rule(dt=st.floats(0.0, 2.0))
    def advance(self, dt: float) -> None:
        """Time passes before the actor's wakeup fires."""
        self.now += dt

    @rule()
    def tick(self) -> None:
        """The actor's wakeup: expire what waited too long, release ended holds."""
        for e in self.core.expire(self.now):
            self.queued.remove(e.request_id)
            self.held.pop(e.request_id, None)
            self._end(e.request_id)
        released = self.core.release_held(self.now)
        for d in released:
            self.held[d.request_id] = None  # type: ignore[assignment]
        self._dispatched(released)
        for rid, worker in list(self.held.items()):
            if worker is not None and (not self.core.has_worker(worker)
                                       or self.hold_ends[rid] <= self.now):
                self.held[rid] = None  # type: ignore[assignment]  # hold over: queued anyway

    def _fifo(self) -> list[str]:
        """Queued requests that are neither held for a worker nor past their queue deadline."""
        return [r for r in self.queued if r not in self.held and self.expires[r] > self.now]

    def teardown(self) -> None:
        """Nothing is lost: far in the future every waiting request has ended somehow."""
        self.now += 1e6
        self.tick()
        assert not self.queued, f"requests never answered: {self.queued}"

    def _end(self, rid: str) -> None:
        assert rid not in self.ended, f"{rid} ended twice"
        self.ended.add(rid)

    @invariant()
    def counts_agree(self) -> None:
        assert self.core.queued == len(self.queued)
        live = [w for w in ("w1", "w2", "w3") if self.core.has_worker(w)]
        assert self.core.free_slots == sum(self.capacity - self.core.in_flight(w) for w in live)
        assert not (self._fifo() and self.core.free_slots), "requests wait beside a free slot"
        for worker in ("w1", "w2", "w3"):
            held = sum(1 for w in self.running.values() if w == worker)
            assert held == self.core.in_flight(worker) <= self.capacity


SchedulerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40,
                                             deadline=None)
test_scheduler_state_machine = SchedulerMachine.TestCase
