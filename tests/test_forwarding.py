"""Which requests the Pool forwards to the DataPlane, and the ledger that answers them once if
the DataPlane dies (``core.forwarding``), without a pool."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.config import PoolConfig
from snakepit_actors.core.forwarding import ForwardLedger, forwardable
from snakepit_actors.core.pool_core import PoolCore
from snakepit_actors.core.pool_decisions import Forward, Reply
from snakepit_actors.errors import WorkerCrashedError
from snakepit_actors.messages import CancelRequest, Execute, ExecuteFailed, WorkerReady
from snakepit_actors.tree.pool import Pool as PoolActor


def test_only_unary_session_less_well_formed_requests_with_grouped_replies_go_there() -> None:
    assert forwardable(Execute("r", "echo", {"x": 1}, batch_replies=True))
    assert not forwardable(Execute("r", "echo", {"x": 1}))  # one message per reply: Workers
    assert not forwardable(Execute("r", "echo", session_id="s1", batch_replies=True))
    assert not forwardable(Execute("r", "stream_progress", stream=True, batch_replies=True))
    assert not forwardable(Execute("r", "", {}, batch_replies=True))  # the Pool refuses it
    assert not forwardable(Execute("r", "echo", timeout_s=-1.0, batch_replies=True))


@given(st.lists(st.tuples(st.sampled_from(["add", "served"]), st.integers(0, 20)),
                max_size=60))
def test_a_lost_data_plane_fails_exactly_the_requests_it_was_not_heard_to_answer(
        steps: list[tuple[str, int]]) -> None:
    ledger, open_ids = ForwardLedger(), set()
    for step, n in steps:
        rid = f"r{n}"
        if step == "add":
            ledger.add(rid, f"@caller{n}")
            open_ids.add(rid)
        else:
            ledger.served([rid])
            open_ids.discard(rid)
    replies = ledger.lost("killed")
    assert {r.message.request_id for r in replies} == open_ids
    assert len(replies) == len(open_ids)  # one each
    for reply in replies:
        assert isinstance(reply, Reply) and isinstance(reply.message, ExecuteFailed)
        assert reply.to == "@caller" + reply.message.request_id[1:]
        assert isinstance(reply.message.error, WorkerCrashedError)
        assert reply.message.error.reason == "data_plane_lost"
    assert ledger.lost("again") == [] and len(ledger) == 0


def _started_pool_actor(**fields: Any) -> tuple[PoolActor, list[tuple[Any, Any]]]:
    actor = PoolActor()  # its handlers only: no actor system, sends recorded
    cfg = PoolConfig(name="fwd", pool_size=1, **fields)
    actor._core = PoolCore(cfg, pool="@pool", start_reply_to="@starter")
    actor._core.start(0.0)
    actor._core.worker_ready(WorkerReady("w1", "@w1", 100, "unix:/w1", 0, 1.0), 0.0)
    actor.route.address = "@dp"
    sent: list[tuple[Any, Any]] = []
    actor.send = lambda to, message: sent.append((to, message))  # type: ignore[method-assign]
    actor.wakeupAfter = lambda after, payload=None: None  # type: ignore[method-assign]
    return actor, sent


def test_the_pool_forwards_with_reply_to_and_one_deadline_and_keeps_sessions() -> None:
    actor, sent = _started_pool_actor(request_timeout=30.0)
    actor.receiveMsg_Execute(Execute("r1", "echo", {"x": 1}, batch_replies=True), "@caller")
    actor.receiveMsg_Execute(Execute("r2", "session_counter", session_id="s1"), "@caller")
    [(to, forwarded), (to2, run)] = sent
    assert to == "@dp" and forwarded.reply_to == "@caller"
    assert forwarded.deadline_unix_s is not None  # fixed once, at the Pool
    assert to2 == "@w1" and type(run).__name__ == "RunRequest"
    assert actor.core.counters.requests == 2


def test_a_cancel_of_a_forwarded_request_goes_to_the_data_plane() -> None:
    actor, sent = _started_pool_actor()
    actor.receiveMsg_Execute(Execute("r1", "echo", batch_replies=True), "@caller")
    actor.receiveMsg_CancelRequest(CancelRequest("r1"), "@caller")
    assert sent[-1] == ("@dp", CancelRequest("r1"))
    assert actor.route.cancel(CancelRequest("unknown")) == []


def test_a_replaced_data_plane_fails_what_it_held_and_gets_what_comes_next() -> None:
    actor, sent = _started_pool_actor()
    actor.receiveMsg_Execute(Execute("r1", "echo", batch_replies=True), "@caller")
    actor.receiveMsg_Execute(Execute("r2", "echo", batch_replies=True), "@caller")
    actor.route.ledger.served(["r1"])
    decisions = actor.route.replaced("@dp2")
    assert [d.message.request_id for d in decisions] == ["r2"]  # type: ignore[union-attr]
    actor.receiveMsg_Execute(Execute("r3", "echo", batch_replies=True), "@caller")
    assert sent[-1][0] == "@dp2"
    assert not isinstance(decisions[0], Forward)
