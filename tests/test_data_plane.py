"""The DataPlane (``tree/data_plane.py``) on real pools, through the message API: an embedding
actor's ``Execute`` with ``batch_replies`` to the Pool's address is served there with the
Pool's contract: exactly one
reply per request (also when the DataPlane itself is killed), cancellation of a waiting
request, a closing pool fails what waits, and what it cannot serve (sessions, streams) stays on
the Pool's path. Queue timeouts, max_queue and worker crashes through it: test_pool.py,
test_chaos.py and test_chaos_tree.py (their "actor" data path goes through it)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from snakepit_actors import (
    Pool,
    PoolClosedError,
    PoolConfig,
    RequestCancelledError,
    WorkerCrashedError,
)
from snakepit_actors.messages import (
    CancelRequest,
    ClosePool,
    Execute,
    ExecuteFailed,
    ExecuteReplies,
    ExecuteResult,
    PoolClosed,
)
from snakepit_actors.ops.bench_message import LoadDone, RunLoad, load_from_actor

from .conftest import wait_for
from .tree_chaos import tree_pids

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def one_worker() -> Iterator[Pool]:
    with Pool.start(PoolConfig(name="dp1", pool_size=1, queue_timeout=30.0)) as pool:
        yield pool


def _ex(request_id: str, tool: str, args: dict[str, Any]) -> Execute:
    """A request as an embedding actor that accepts grouped replies sends it."""
    return Execute(request_id, tool, args, timeout_s=30, batch_replies=True)


def _answers(ctx: Any, want: int, seconds: float = 30.0) -> dict[str, list[Any]]:
    """Every reply that reaches ``ctx`` until ``want`` request ids are answered (bounded)."""
    got: dict[str, list[Any]] = {}
    deadline = time.monotonic() + seconds
    while sum(1 for k in got if k != "") < want and time.monotonic() < deadline:
        msg = ctx.listen(0.5)
        replies = msg.replies if isinstance(msg, ExecuteReplies) else [msg]
        for reply in replies:
            if isinstance(reply, ExecuteResult | ExecuteFailed):
                got.setdefault(reply.request_id, []).append(reply)
            elif isinstance(reply, PoolClosed):
                got.setdefault("", []).append(reply)
    return got


def _occupy(pool: Pool, ctx: Any) -> Any:
    """The one worker runs request "long" (a 1 s sleep) sent by ``ctx``; the Pool's address."""
    address = pool._gateway.pool
    ctx.tell(address, _ex("long", "sleep", {"seconds": 1.0}))
    wait_for(lambda: pool.stats().busy == 1)
    return address


def test_a_waiting_request_cancelled_by_an_embedding_actor_fails_and_never_runs(
        one_worker: Pool) -> None:
    pool = one_worker
    with pool._system.actor_system.private() as ctx:
        address = _occupy(pool, ctx)
        ctx.tell(address, _ex("waits", "info", {}))
        ctx.tell(address, CancelRequest("waits"))
        got = _answers(ctx, 2)
    assert [type(r) for r in got["long"]] == [ExecuteResult]
    [cancelled] = got["waits"]
    assert isinstance(cancelled, ExecuteFailed)
    assert isinstance(cancelled.error, RequestCancelledError)
    assert cancelled.error.reason == "cancelled_queued"


def test_closing_the_pool_fails_what_waits_in_the_data_plane_and_finishes_what_runs(
        one_worker: Pool) -> None:
    pool = one_worker
    with pool._system.actor_system.private() as ctx:
        address = _occupy(pool, ctx)
        for i in range(3):
            ctx.tell(address, _ex(f"w{i}", "echo", {"i": i}))
        wait_for(lambda: pool.stats().queued >= 1)
        ctx.tell(address, ClosePool())
        got = _answers(ctx, 4)
    assert [type(r) for r in got["long"]] == [ExecuteResult]
    for i in range(3):
        [reply] = got[f"w{i}"]
        assert isinstance(reply, ExecuteFailed) and isinstance(reply.error, PoolClosedError)


def test_session_requests_stay_on_the_pools_path_beside_the_data_planes(
        one_worker: Pool) -> None:
    assert one_worker.execute("session_counter", {}, session_id="s1") == 1
    assert one_worker.execute("echo", {"x": 2}) == {"x": 2}
    assert one_worker.execute("session_counter", {}, session_id="s1") == 2


def test_an_embedding_actor_is_answered_for_every_request_when_the_data_plane_is_killed() -> None:
    """Each request gets its result, or ``WorkerCrashedError(data_plane_lost)`` for what the
    dead DataPlane held; a request it answered just before it died may be answered twice (see
    docs/architecture.md, "The data plane"); then a new DataPlane serves."""
    with Pool.start(PoolConfig(name="dpkill", pool_size=2, queue_timeout=30.0)) as pool:
        victim = tree_pids(pool)["data_plane"]
        done: list[LoadDone] = []
        load = threading.Thread(target=lambda: done.append(load_from_actor(pool, RunLoad(
            None, "sleep", {"seconds": 0.005}, in_flight=32, count=1500, seconds=20.0,
            batched=True))))
        load.start()
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        load.join(90.0)
        assert done, "the load actor never finished"
        [result] = done
        assert result.replies == result.sent, result  # nobody left without an answer
        assert result.failed == 0 or "data_plane_lost" in result.first_error, result
        wait_for(lambda: tree_pids(pool).get("data_plane", victim) != victim)
        with pool._system.actor_system.private() as ctx:
            ctx.tell(pool._gateway.pool, _ex("after", "echo", {"x": 1}))
            [after] = _answers(ctx, 1)["after"]
        assert isinstance(after, ExecuteResult) and after.result == {"x": 1}
        print(f"\nDataPlane killed under load: {result}")


def test_a_worker_killed_under_the_data_plane_fails_only_its_running_request() -> None:
    cfg = PoolConfig(name="dpcrash", pool_size=1, data_path="actor", queue_timeout=30.0)
    with Pool.start(cfg) as pool:
        results: dict[int, Any] = {}

        def call(i: int, tool: str, args: dict[str, Any]) -> None:
            try:
                results[i] = pool.execute(tool, args, timeout=30)
            except Exception as exc:  # recorded: the assertions below name it
                results[i] = exc

        threads = [threading.Thread(target=call, args=(0, "sleep", {"seconds": 5.0}))]
        threads[0].start()
        wait_for(lambda: pool.stats().busy == 1)
        threads += [threading.Thread(target=call, args=(i, "echo", {"i": i}))
                    for i in range(1, 5)]
        for thread in threads[1:]:
            thread.start()
        wait_for(lambda: pool.stats().queued >= 1)
        (worker,) = pool.workers()
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        for thread in threads:
            thread.join(60.0)
        assert isinstance(results[0], WorkerCrashedError), results[0]
        assert [results[i] for i in range(1, 5)] == [{"i": i} for i in range(1, 5)]


def test_a_call_whose_channel_closed_under_it_means_a_lost_worker_not_a_cancel() -> None:
    """A new process on the same endpoint replaces the old one's channel, which ends the
    calls still running on it with CANCELLED (as when the WorkerSupervisor restarts every
    worker under load); nobody asked for that cancel, so the worker is treated as lost (its
    callers get WorkerCrashedError), and only a cancel the caller asked for is answered as one.
    A real gRPC server and channel; only the DataPlane's verdict on the call is read."""
    import grpc

    from snakepit_actors.tree.data_plane_calls import Call, DataPlaneCalls

    release = threading.Event()

    def hold(_request: bytes, _context: Any) -> bytes:
        release.wait(10.0)
        return b""

    handler = grpc.method_handlers_generic_handler(
        "t.Hold", {"Hold": grpc.unary_unary_rpc_method_handler(hold)})
    server = grpc.server(ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    calls = DataPlaneCalls(1, 1 << 20, "", "snakepit_actors")
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        future = channel.unary_unary("/t.Hold/Hold").future(b"", timeout=10.0)
        time.sleep(0.2)
        channel.close()
        error = future.exception(10.0)
        assert isinstance(error, grpc.RpcError)
        assert error.code() == grpc.StatusCode.CANCELLED
        for cancelled, lost in ((False, True), (True, False)):
            call = Call(_ex("c1", "sleep", {}), None, time.time(), started=time.perf_counter(),
                        worker_id="w1", error=error, cancelled=cancelled)
            ended = calls.ended(call)
            assert (ended.reply is None) is lost, ended
            if not lost:
                assert isinstance(ended.reply, ExecuteFailed)
                assert isinstance(ended.reply.error, RequestCancelledError)
    finally:
        release.set()
        calls.stop()
        server.stop(0).wait()


def test_a_call_waiting_on_a_stopped_process_whose_lease_was_revoked_ends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Worker actor of a stopped (SIGSTOP) worker process is killed: the Pool revokes
    the DataPlane's lease, but the DataPlane's call still waits on the stopped process (it
    would forever). The revocation closes that channel after a grace, so the call ends with
    the revocation's typed error."""
    from snakepit_actors import protocols

    from .conftest import running_call, worker_actor_pid

    monkeypatch.setattr(protocols, "LOST_CALL_GRACE_S", 0.2)  # forked into the tree
    cfg = PoolConfig(name="dp-lost", pool_size=1, data_path="actor", heartbeat_interval=60.0)
    with Pool.start(cfg) as pool:
        [worker] = pool.workers()
        caller, outcome = running_call(pool)
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            os.kill(worker_actor_pid(worker.pid), signal.SIGKILL)
            caller.join(15.0)
        finally:
            os.kill(worker.pid, signal.SIGCONT)  # it then sees its Worker actor gone, and exits
        assert len(outcome) == 1 and isinstance(outcome[0], WorkerCrashedError), outcome
