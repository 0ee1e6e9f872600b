"""The pure lease state: the client's LeaseBroker against a model Pool and its UsageMeter
(leases.py), and the Pool's LeaseLedger (lease_ledger.py). No actors, no processes, no sleeps:
time is a number."""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from snakepit_actors.core.lease_ledger import LeaseLedger
from snakepit_actors.core.leases import Lease, LeaseBroker, Outcome
from snakepit_actors.core.scheduling import Dispatch, Scheduler, queue_expiry
from snakepit_actors.core.usage import UsageMeter
from snakepit_actors.errors import PoolClosedError, PoolSaturatedError, WorkerCrashedError

pytestmark = pytest.mark.timeout(120)

IDLE_S, HOLD_S, WITHDRAW_S = 0.005, 0.5, 0.05


def broker(max_requests: int | None = None, max_waiting: int | None = None,
           ) -> LeaseBroker[str]:
    ids = itertools.count()
    return LeaseBroker(lambda: f"L{next(ids)}", idle_return_s=IDLE_S, max_hold_s=HOLD_S,
                       withdraw_after_s=WITHDRAW_S, max_requests=max_requests,
                       max_waiting=max_waiting)


def grant(b: LeaseBroker[str], now: float, worker: str = "w1") -> tuple[Lease, list[str]]:
    """Grant the oldest lease request the broker sent; returns the lease and who got it."""
    rid = b.take_outgoing().requests[0].request_id
    served = [h.item for h in b.granted(rid, worker, "unix:/x", 42, now)]
    lease = b.lease(rid)
    assert lease is not None
    return lease, served


# --- examples -------------------------------------------------------------------------------

def test_a_caller_with_no_lease_waits_and_one_lease_request_goes_out() -> None:
    b = broker()
    assert b.acquire("c1", None, 0.0) is None
    out = b.take_outgoing()
    assert [r.session_id for r in out.requests] == [None] and b.waiting == 1


def test_a_granted_lease_serves_the_oldest_waiter_then_the_next_on_release() -> None:
    b = broker()
    b.acquire("c1", None, 0.0)
    b.acquire("c2", None, 0.0)
    out = b.take_outgoing()
    assert len(out.requests) == 2
    handoffs = b.granted(out.requests[1].request_id, "w1", "unix:/x", 42, 0.0)
    assert [h.item for h in handoffs] == ["c1"]  # grants are not bound to one caller
    lease = handoffs[0].lease
    assert [h.item for h in b.release(lease, 0.001)] == ["c2"]
    assert b.release(lease, 0.002) == [] and b.idle == 1
    assert not b.take_outgoing()  # one lease serves many requests: no message at all


def test_an_idle_lease_goes_back_after_idle_return_s_and_a_surplus_request_is_withdrawn() -> None:
    b = broker()
    b.acquire("c1", None, 0.0)
    b.acquire("c2", None, 0.0)
    held, served = grant(b, 0.0)
    assert served == ["c1"]
    b.release(held, 0.001)  # -> c2
    b.release(held, 0.002)  # idle; one request still out for nobody
    b.tick(0.003)
    assert b.idle == 1 and not b.take_outgoing()
    b.tick(0.002 + IDLE_S)
    out = b.take_outgoing()
    assert [r.request_id for r in out.returns] == [held.lease_id] and not out.withdrawn
    b.tick(0.01 + WITHDRAW_S)
    assert len(b.take_outgoing().withdrawn) == 1 and b.requested == 0


def test_the_sessions_last_worker_is_preferred_among_idle_leases() -> None:
    b = broker()
    for c in ("c1", "c2"):
        b.acquire(c, None, 0.0)
    out = b.take_outgoing()
    l1 = b.granted(out.requests[0].request_id, "w1", "unix:/1", 1, 0.0)[0].lease
    l2 = b.granted(out.requests[1].request_id, "w2", "unix:/2", 2, 0.0)[0].lease
    b.ran("s", "w1")
    b.release(l1, 0.001)
    b.release(l2, 0.001)
    got = b.acquire("c3", "s", 0.001)
    assert got is not None and got.worker_id == "w1"


def test_after_a_pool_restart_leases_are_dropped_and_every_lease_request_goes_out_again(
        ) -> None:
    b = broker()
    for caller in ("c1", "c2", "c3"):
        b.acquire(caller, None, 0.0)
    lease, served = grant(b, 0.0)  # c1 runs on it; c2 and c3 wait, two requests are out
    assert served == ["c1"] and b.requested == 2
    b.pool_replaced(PoolClosedError("restarted"))
    out = b.take_outgoing()
    assert len(out.requests) == 2 and not out.withdrawn and not out.returns
    assert b.waiting == 2 and lease.gone is not None
    assert b.release(lease, 0.1) == [] and b.held == 0  # no return to a Pool that never knew it
    assert not b.take_outgoing()


def test_a_refused_request_fails_the_newest_uncovered_caller() -> None:
    b = broker()
    for c in ("c1", "c2", "c3"):
        b.acquire(c, None, 0.0)
    out = b.take_outgoing()
    error = PoolSaturatedError("full")
    assert [r.item for r in b.refused(out.requests[2].request_id, error)] == ["c3"]
    assert b.waiting == 2 and b.requested == 2


def test_a_timed_out_lease_goes_back_for_a_recycle_and_a_lost_one_waits_for_revocation() -> None:
    b = broker()
    b.acquire("c1", None, 0.0)
    b.acquire("c2", None, 0.0)
    r1, r2 = (r.request_id for r in b.take_outgoing().requests)
    (first,) = b.granted(r1, "w1", "unix:/1", 1, 0.0)
    assert b.release(first.lease, 0.1, "recycle", "deadline") == []  # c2 waits for a grant
    ret = b.take_outgoing().returns[0]
    assert ret.recycle and not ret.worker_lost and b.held == 0
    (second,) = b.granted(r2, "w2", "unix:/2", 2, 0.2)
    lost = second.lease
    b.release(lost, 0.3, "lost", "UNAVAILABLE")
    assert b.take_outgoing().returns[0].worker_lost and b.held == 1 and b.idle == 0
    revoked = b.revoked(lost.lease_id, WorkerCrashedError("gone", details={"signal": 9}))
    assert revoked is lost and lost.gone is not None and b.held == 0
    assert (first.item, second.item) == ("c1", "c2")


def test_a_lease_held_past_max_hold_goes_back_at_its_next_release_despite_waiters() -> None:
    b = broker()
    b.acquire("c1", None, 0.0)
    b.acquire("c2", None, 0.0)
    lease, _ = grant(b, 0.0)
    assert b.release(lease, HOLD_S + 0.01) == []
    out = b.take_outgoing()
    assert len(out.returns) == 1 and b.waiting == 1 and b.requested == 1
    # ... and our request for c2 moves to the back of the Pool's queue, in the same batch:
    assert len(out.withdrawn) == 1 and len(out.requests) == 1
    assert out.requests[0].request_id not in out.withdrawn


def test_close_fails_waiters_withdraws_requests_and_returns_idle_leases() -> None:
    b = broker()
    b.acquire("c1", None, 0.0)
    b.acquire("c2", None, 0.0)
    grant(b, 0.0)
    refusals = b.close()
    assert [r.item for r in refusals] == ["c2"] and isinstance(refusals[0].error,
                                                              PoolClosedError)
    out = b.take_outgoing()
    assert len(out.withdrawn) == 1
    with pytest.raises(PoolClosedError):
        b.acquire("c3", None, 1.0)


def test_the_usage_meter_reports_once_and_thins_latencies() -> None:
    meter = UsageMeter(max_latencies=10)
    assert meter.take() is None
    for i in range(100):
        meter.ran("w1", f"s{i % 3}")
        meter.finished(ok=i % 10 != 0, latency_ms=float(i))
    meter.finished(ok=False, queue_timeout=True)
    report = meter.take()
    assert report is not None and meter.take() is None
    assert (report.requests, report.errors, report.queue_timeouts) == (101, 11, 1)
    assert len(report.latencies_ms) == 10 and report.latencies_ms[0] == 60.0  # last 40, thinned
    assert report.workers[0].requests == 100 and set(report.workers[0].sessions) == {
        "s0", "s1", "s2"}


def test_the_usage_meter_reports_requests_that_never_reached_a_worker() -> None:
    meter = UsageMeter()
    meter.finished(ok=False, queue_timeout=True)
    report = meter.take()
    assert report is not None and report.latencies_ms == () and report.queue_timeouts == 1


def test_the_ledger_revokes_exactly_a_workers_leases_and_drains_before_a_recycle() -> None:
    ledger: LeaseLedger[str] = LeaseLedger()
    ledger.grant("a", "client1", "w1")
    ledger.grant("b", "client2", "w1")
    ledger.grant("c", "client1", "w2")
    assert [lid for lid, _ in ledger.drain("w1", "request_timeout")] == ["a", "b"]
    ledger.end("a")
    assert ledger.recycle_due("w1") is None
    ledger.end("b")
    assert ledger.recycle_due("w1") == "request_timeout" and ledger.recycle_due("w1") is None
    ledger.mark_lost("c")
    assert [(lid, e.holder, e.lost) for lid, e in ledger.revoke_worker("w2")] == [
        ("c", "client1", True)]
    assert len(ledger) == 0


def test_a_burst_sends_one_lease_request_per_worker_slot_and_refuses_past_max_waiting_at_once(
        ) -> None:
    b = broker(max_requests=4, max_waiting=96)
    for i in range(100):  # 4 slots may be free, 96 more may queue
        assert b.acquire(f"c{i}", None, 0.0) is None
    with pytest.raises(PoolSaturatedError, match="max_queue=96"):
        b.acquire("c100", None, 0.0)
    out = b.take_outgoing()
    assert len(out.requests) == 4 and b.waiting == 100
    handoffs = b.granted(out.requests[0].request_id, "w1", "unix:/x", 42, 0.0)
    assert [h.item for h in handoffs] == ["c0"]
    # one slot held: requests stay out for the other 3 only (none for a slot we hold)
    assert not b.take_outgoing() and b.requested == 3
    assert [h.item for h in b.release(handoffs[0].lease, 0.001)] == ["c1"]  # no message
    assert not b.take_outgoing()
    assert b.acquire("c101", None, 0.002) is None  # one slot held: 3 may be free, 96 queue
    with pytest.raises(PoolSaturatedError):
        b.acquire("c102", None, 0.002)


def test_a_client_holding_every_slot_has_no_request_out_until_it_gives_one_back() -> None:
    """A request for a slot the client holds could only be granted once that slot came back,
    and every rotation would move it to the back of the Pool's queue: none goes out."""
    b = broker(max_requests=2, max_waiting=10)
    for i in range(6):
        b.acquire(f"c{i}", None, 0.0)
    first, second = b.take_outgoing().requests
    (one,) = b.granted(first.request_id, "w1", "unix:/1", 1, 0.0)
    (two,) = b.granted(second.request_id, "w2", "unix:/2", 2, 0.0)
    assert not b.take_outgoing() and b.requested == 0 and b.waiting == 4
    assert [h.item for h in b.release(one.lease, 0.001)] == ["c2"]
    assert not b.take_outgoing()  # a lease passed from caller to caller: no message
    assert b.release(two.lease, HOLD_S + 0.01) == []  # held past max_hold: it goes back ...
    out = b.take_outgoing()
    assert len(out.returns) == 1 and len(out.requests) == 1  # ... and one request, for it
    assert b.requested == 1


def test_past_max_hold_one_lease_goes_back_per_rotate_every_s_however_many_are_held() -> None:
    b = broker(max_requests=8, max_waiting=100)
    for i in range(16):
        b.acquire(f"c{i}", None, 0.0)
    leases = [h.lease for r in b.take_outgoing().requests
              for h in b.granted(r.request_id, f"w-{r.request_id}", "unix:/x", 1, 0.0)]
    assert len(leases) == 8
    now = HOLD_S + 0.01
    handed = [b.release(lease, now) for lease in leases]
    assert sum(1 for h in handed if not h) == 1  # one went back; 7 served the next callers
    assert len(b.take_outgoing().returns) == 1


def test_a_refusal_under_the_cap_fails_the_newest_caller_and_asks_for_the_next() -> None:
    b = broker(max_requests=2, max_waiting=10)
    for i in range(5):
        b.acquire(f"c{i}", None, 0.0)
    first, _second = b.take_outgoing().requests
    refusals = b.refused(first.request_id, PoolSaturatedError("full"))
    assert [r.item for r in refusals] == ["c4"] and b.waiting == 4
    assert len(b.take_outgoing().requests) == 1 and b.requested == 2


def test_a_callers_queue_deadline_is_the_pools_rule() -> None:
    assert queue_expiry(10.0, None, 5.0) == (15.0, "queue_timeout")
    assert queue_expiry(10.0, 12.0, 5.0) == (12.0, "deadline_in_queue")
    assert queue_expiry(10.0, None, None) == (None, "deadline_in_queue")


# --- the state machine ----------------------------------------------------------------------

class BrokerAgainstAPool(RuleBasedStateMachine):
    """Callers, a model Pool that grants / refuses / revokes / recalls, time passing, and the
    gateway flushing the broker's outbox now and then (so several decisions share one batch,
    which the model Pool handles in the real Pool's order: withdrawn, returns, requests).
    Checks: every lease the Pool lent comes back exactly once (or is revoked), the Pool's queue
    holds exactly the broker's lease requests after every batch, callers are served in arrival
    order and never two on one lease, lease requests cover the waiting callers, an idle lease
    never sits beside a waiting caller, and idle leases go back in time."""

    MAX_REQUESTS: int | None = None
    MAX_WAITING: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.b = broker(self.MAX_REQUESTS, self.MAX_WAITING)
        self.now = 0.0
        self.callers = itertools.count()
        self.waiting: list[str] = []  # the model's FIFO of waiting callers
        self.using: dict[str, str] = {}  # lease id -> caller using it
        self.leases: dict[str, Lease] = {}
        self.pool_queue: list[str] = []  # lease requests the Pool holds
        self.lent: dict[str, bool] = {}  # lease id -> reported lost (the Pool's view)
        self.revoked_in_use: set[str] = set()
        self.answered: set[str] = set()  # lease requests the Pool granted or refused
        self.revoked: set[str] = set()
        self.workers = itertools.cycle(["w1", "w2", "w3"])

    def _sync(self) -> None:
        """The gateway sends one batch; the model Pool handles it in the real Pool's order."""
        out = self.b.take_outgoing()
        for request_id in out.withdrawn:
            assert request_id in self.pool_queue or request_id in self.answered, (
                "withdrew a lease request the Pool never got")
            if request_id in self.pool_queue:
                self.pool_queue.remove(request_id)
        for returned in out.returns:
            if returned.request_id in self.revoked:
                continue  # crossed the revocation: the Pool ignores it
            assert returned.request_id in self.lent, "returned a lease the Pool did not lend"
            assert not self.lent[returned.request_id], "returned a lease twice"
            if returned.worker_lost:
                self.lent[returned.request_id] = True
            else:
                del self.lent[returned.request_id]
        for request in out.requests:
            assert request.request_id not in self.pool_queue, "a lease request sent twice"
            self.pool_queue.append(request.request_id)
        assert self.b.requested == len(self.pool_queue), "the Pool queues requests we forgot"
        assert self.b.held == len(self.lent) + len(self.revoked_in_use)

    @rule()
    def gateway_flushes(self) -> None:
        self._sync()

    def _served(self, handoffs: list) -> None:  # type: ignore[type-arg]
        for h in handoffs:
            assert h.item == self.waiting.pop(0), "callers must be served in arrival order"
            assert h.lease.lease_id not in self.using, "two callers on one lease"
            self.using[h.lease.lease_id] = h.item
            self.leases[h.lease.lease_id] = h.lease

    @rule(session=st.sampled_from([None, "s1", "s2"]))
    def arrive(self, session: str | None) -> None:
        caller = f"c{next(self.callers)}"
        try:
            lease = self.b.acquire(caller, session, self.now)
        except PoolSaturatedError:
            assert self.MAX_REQUESTS is not None and self.MAX_WAITING is not None
            free = max(0, self.MAX_REQUESTS - self.b.held)
            assert len(self.waiting) == free + self.MAX_WAITING
            return
        if lease is None:
            self.waiting.append(caller)
        else:
            assert not self.waiting, "an idle lease beside a waiting caller"
            assert lease.lease_id not in self.using
            self.using[lease.lease_id] = caller

    @precondition(lambda self: self.pool_queue)
    @rule(data=st.data())
    def pool_grants(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(self.pool_queue))
        self.pool_queue.remove(rid)
        self.answered.add(rid)
        self.lent[rid] = False
        worker = next(self.workers)
        handoffs = self.b.granted(rid, worker, f"unix:/{worker}", 7, self.now)
        lease = self.b.lease(rid)
        assert lease is not None
        self.leases[rid] = lease
        self._served(handoffs)

    @precondition(lambda self: self.pool_queue)
    @rule(data=st.data())
    def pool_refuses(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(self.pool_queue))
        self.pool_queue.remove(rid)
        self.answered.add(rid)
        refusals = self.b.refused(rid, PoolSaturatedError("full"))
        for r in refusals:
            assert r.item == self.waiting.pop(), "the newest callers fail first"

    @precondition(lambda self: self.using)
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "ok", "ok", "recycle", "lost"]))
    def call_ends(self, data: st.DataObject, outcome: Outcome) -> None:
        lease_id = data.draw(st.sampled_from(sorted(self.using)))
        del self.using[lease_id]
        self.revoked_in_use.discard(lease_id)
        self._served(self.b.release(self.leases[lease_id], self.now, outcome))

    @precondition(lambda self: self.lent)
    @rule(data=st.data())
    def pool_revokes(self, data: st.DataObject) -> None:
        lease_id = data.draw(st.sampled_from(sorted(self.lent)))
        del self.lent[lease_id]
        self.revoked.add(lease_id)
        self.b.revoked(lease_id, WorkerCrashedError("gone"))
        if lease_id in self.using:
            self.revoked_in_use.add(lease_id)

    @precondition(lambda self: self.lent)
    @rule(data=st.data())
    def pool_recalls(self, data: st.DataObject) -> None:
        self.b.recalled(data.draw(st.sampled_from(sorted(self.lent))))

    @precondition(lambda self: self.waiting)
    @rule(data=st.data())
    def caller_gives_up(self, data: st.DataObject) -> None:
        caller = data.draw(st.sampled_from(self.waiting))
        assert self.b.abandon(caller)
        self.waiting.remove(caller)

    @rule(dt=st.sampled_from([0.0, 0.001, IDLE_S, WITHDRAW_S, HOLD_S]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.b.tick(self.now)
        self._sync()
        at = self.b.next_tick_at(self.now)
        assert at is None or at > self.now or self.b.idle == 0

    @invariant()
    def books_agree(self) -> None:
        assert self.b.waiting == len(self.waiting)
        cap = self.MAX_REQUESTS
        need = self.b.waiting if cap is None else min(self.b.waiting, max(0, cap - self.b.held))
        assert self.b.requested >= need, "a waiting caller no request (nor held slot) covers"
        if self.MAX_REQUESTS is not None:
            assert self.b.requested <= self.MAX_REQUESTS, "more lease requests out than slots"
        assert not (self.b.idle and self.b.waiting), "an idle lease beside a waiting caller"
        assert self.b.in_use == len(self.using)

    def teardown(self) -> None:
        """Nobody starves: the Pool grants what is asked, every call ends, leases go back."""
        self._sync()
        for _ in range(1000):
            if self.using:
                lease_id = sorted(self.using)[0]
                del self.using[lease_id]
                self.revoked_in_use.discard(lease_id)
                self._served(self.b.release(self.leases[lease_id], self.now))
            elif self.pool_queue:
                rid = self.pool_queue.pop(0)
                self.answered.add(rid)
                self.lent[rid] = False
                handoffs = self.b.granted(rid, "w1", "unix:/w1", 7, self.now)
                lease = self.b.lease(rid)
                assert lease is not None
                self.leases[rid] = lease
                self._served(handoffs)
            elif self.waiting and any(self.lent.values()):  # the Pool revokes a lost lease
                lease_id = next(lid for lid, lost in self.lent.items() if lost)
                del self.lent[lease_id]
                self.revoked.add(lease_id)
                self.b.revoked(lease_id, WorkerCrashedError("gone"))
            else:
                break
            self._sync()
        assert not self.waiting, f"callers never served: {self.waiting}"
        self.now += 1.0
        self.b.tick(self.now)
        self._sync()
        assert all(lost for lost in self.lent.values()), "a lease was never given back"


BrokerAgainstAPool.TestCase.settings = settings(max_examples=300, stateful_step_count=60,
                                                deadline=None)
test_lease_broker_state_machine = BrokerAgainstAPool.TestCase


class CappedBrokerAgainstAPool(BrokerAgainstAPool):
    """The same, with the lease requests out capped (the pool's worker slots) and the callers
    beyond them bounded (max_queue): a burst costs the Pool ``cap`` requests, not one per
    caller, and the caller past the bound is refused at once."""

    MAX_REQUESTS = 2
    MAX_WAITING = 3


CappedBrokerAgainstAPool.TestCase.settings = settings(max_examples=300, stateful_step_count=60,
                                                      deadline=None)
test_capped_lease_broker_state_machine = CappedBrokerAgainstAPool.TestCase


# --- the Pool's side: leases and Execute on one capacity-1 scheduler --------------------------

class PoolWithLeases(RuleBasedStateMachine):
    """The Pool's bookkeeping as its handlers drive it (``Scheduler`` + ``LeaseLedger``):
    Execute requests and lease requests of two clients queue together; workers come and go;
    leases come back plain or for a recycle; a client dies and its leases are reclaimed (and its
    queued requests dropped at grant). Checks: a capacity-1 worker never has two requests or
    leases at once, and the ledger and the running requests account for every slot taken."""

    def __init__(self) -> None:
        super().__init__()
        self.core: Scheduler[tuple[str, str]] = Scheduler(capacity=1, max_queue=20)
        self.ledger: LeaseLedger[str] = LeaseLedger()
        self.running: dict[str, str] = {}  # Execute request -> worker
        self.dead: set[str] = set()
        self.ids = itertools.count()

    def _apply(self, dispatches: list[Dispatch[tuple[str, str]]]) -> None:
        for d in dispatches:
            kind, holder = d.item
            if kind == "execute":
                self.running[d.request_id] = d.worker_id
            elif holder in self.dead:  # as RequestDesk._grant: free the slot at once
                self._apply(self.core.checkin(d.worker_id, d.request_id, 0.0))
            else:
                self.ledger.grant(d.request_id, holder, d.worker_id)

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def worker_ready(self, worker: str) -> None:
        self.worker_exits(worker)
        self._apply(self.core.add_worker(worker, 0.0))

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def worker_exits(self, worker: str) -> None:
        for rid in self.core.remove_worker(worker):
            if rid in self.running:
                assert self.running.pop(rid) == worker
        self.ledger.revoke_worker(worker)
        self._apply(self.core.release_held(0.0))

    @rule(kind=st.sampled_from(["execute", "lease"]), holder=st.sampled_from(["c1", "c2"]))
    def submit(self, kind: str, holder: str) -> None:
        if kind == "lease" and holder in self.dead:
            return  # as RequestDesk.request_lease: a dead client's late request is dropped
        decision = self.core.submit(f"r{next(self.ids)}", (kind, holder), 0.0,
                                    expires=kind == "execute")
        if isinstance(decision, Dispatch):
            self._apply([decision])

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def execute_ends(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.running)))
        self._apply(self.core.checkin(self.running.pop(rid), rid, 0.0))

    @precondition(lambda self: len(self.ledger))
    @rule(data=st.data(), recycle=st.booleans())
    def lease_returned(self, data: st.DataObject, recycle: bool) -> None:
        lease_id = data.draw(st.sampled_from(sorted(self.ledger._leases)))
        self._return(lease_id, recycle)

    def _return(self, lease_id: str, recycle: bool) -> None:
        entry = self.ledger.end(lease_id)
        assert entry is not None
        self._apply(self.core.checkin(entry.worker_id, lease_id, 0.0, worker_lost=recycle))
        if recycle:  # the Worker replaces its process: it exits, then comes back Ready
            self.worker_exits(entry.worker_id)

    @rule(holder=st.sampled_from(["c1", "c2"]))
    def client_dies(self, holder: str) -> None:
        self.dead.add(holder)
        for lease_id, _entry in self.ledger.held_by(holder):
            self._return(lease_id, recycle=True)

    @invariant()
    def one_at_a_time(self) -> None:
        for worker in ("w1", "w2"):
            on_it = self.ledger.on_worker(worker) + sum(
                1 for w in self.running.values() if w == worker)
            assert on_it <= 1, f"{worker} has {on_it} requests or leases at once"
            assert on_it == self.core.in_flight(worker)
        assert not any(e.holder in self.dead for _, e in self.ledger._leases.items())


PoolWithLeases.TestCase.settings = settings(max_examples=300, stateful_step_count=50,
                                            deadline=None)
test_the_pool_never_puts_two_requests_or_leases_on_a_capacity_1_worker = PoolWithLeases.TestCase
