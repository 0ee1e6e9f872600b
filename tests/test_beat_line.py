"""The beat line: a worker answers heartbeats on its ready socket, so its Worker actor needs no
gRPC channel (about 7 MB and six threads in each Worker actor) until it proxies a call.

Real bridges (``processes.spawn_bridge``, the showcase adapter) and real pools."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest

from snakepit_actors import Pool, PoolConfig, WorkerCrashedError
from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc
from snakepit_actors.tree import processes
from snakepit_actors.tree.beat_line import Beat, BeatLine, beat_ok, calls_running

from .conftest import _LIVE_POOLS, wait_for, worker_actor_pid

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_surviving_children")]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[processes.BridgeProcess]:
    spec = processes.BridgeSpec(
        python=sys.executable, adapter="snakepit_actors.bridge.showcase:ShowcaseAdapter",
        adapter_config={}, listen=f"unix:{tmp_path}/w1.sock", worker_id="w1", run_id="run1",
        env={"PYTHONPATH": str(ROOT)}, log_path=str(tmp_path / "w1.log"))
    proc = processes.spawn_bridge(spec)
    try:
        processes.wait_ready(proc, 20.0)
        yield proc
    finally:
        processes.stop_bridge(proc, grace_s=1.0)


def test_the_ready_socket_stays_open_and_each_beat_is_answered_with_the_calls_running(
        bridge: processes.BridgeProcess) -> None:
    assert bridge.ready_fd is None and bridge.beat_fd is not None
    line = BeatLine(bridge.beat_fd)
    assert line.ping(5.0)
    assert calls_running(_answered(line, line.send())) == 0
    assert bridge.ready is not None
    with grpc.insecure_channel(bridge.ready.address) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(channel)
        running = stub.ExecuteTool.future(bridge_pb2.ExecuteToolRequest(
            request_id="r1", tool="sleep", args_json=b'{"seconds": 1.0}'), timeout=10)
        wait_for(lambda: calls_running(_answered(line, line.send())) == 1, 5.0)
        running.result()
    assert calls_running(_answered(line, line.send())) == 0


def test_a_stopped_process_answers_no_beat_and_a_dead_one_closes_the_line(
        bridge: processes.BridgeProcess) -> None:
    assert bridge.beat_fd is not None
    line = BeatLine(bridge.beat_fd)
    os.kill(bridge.pid, signal.SIGSTOP)
    try:
        assert not line.ping(0.5)
    finally:
        os.kill(bridge.pid, signal.SIGCONT)
    assert line.ping(5.0)  # the late answer settled the old beat; this one is answered too
    os.kill(bridge.pid, signal.SIGKILL)
    beat = _answered(line, line.send())
    assert beat.done() and line.gone and not beat_ok(beat)


def test_beats_are_answered_while_a_sigtermed_process_lets_its_calls_finish(
        bridge: processes.BridgeProcess) -> None:
    """After SIGTERM the gRPC server gives its calls a 2 s grace: the process still lives
    then, so its beats are answered (its host learns of its end from its exit, not from
    beats it would otherwise miss, and gives it up as "still running"); then it exits."""
    assert bridge.beat_fd is not None and bridge.ready is not None
    line = BeatLine(bridge.beat_fd)
    with grpc.insecure_channel(bridge.ready.address) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(channel)
        running = stub.ExecuteTool.future(bridge_pb2.ExecuteToolRequest(
            request_id="r1", tool="sleep", args_json=b'{"seconds": 5.0}'), timeout=10)
        wait_for(lambda: calls_running(_answered(line, line.send())) == 1, 5.0)
        os.kill(bridge.pid, signal.SIGTERM)
        time.sleep(0.5)  # well inside the grace
        assert psutil.Process(bridge.pid).status() != psutil.STATUS_ZOMBIE
        assert calls_running(_answered(line, line.send())) == 1
        with pytest.raises(grpc.RpcError):
            running.result()  # cancelled at the end of the grace
    wait_for(lambda: processes.process_exit_code(bridge) is not None, 10.0)


def test_a_worker_actor_opens_no_grpc_channel_until_it_proxies_a_call() -> None:
    """Calls that do not go through the Worker actors (the DataPlane's here; the direct
    path's alike) and heartbeats leave each Worker actor with one thread (grpc starts six
    with a channel); a session call, which goes through one, opens that one's channel."""
    cfg = PoolConfig(name="beats", pool_size=2, heartbeat_interval=0.2, data_path="actor")
    with Pool.start(cfg) as pool:
        _LIVE_POOLS.append(pool)
        try:
            assert [pool.execute("echo", {"i": i}) for i in range(20)] == [
                {"i": i} for i in range(20)]
            time.sleep(1.0)  # five heartbeat intervals
            actors = [psutil.Process(worker_actor_pid(w.pid)) for w in pool.workers()]
            assert [a.num_threads() for a in actors] == [1, 1]
            assert pool.stats().restarts == 0
            assert pool.execute("echo", {"via": "worker actor"}, session_id="s1") == {
                "via": "worker actor"}
            assert sorted(a.num_threads() > 1 for a in actors) == [False, True]
        finally:
            _LIVE_POOLS.remove(pool)


def test_a_worker_stopped_with_sigstop_is_given_up_on_its_missed_beats() -> None:
    cfg = PoolConfig(name="beats2", pool_size=1, heartbeat_interval=0.2, heartbeat_misses=3,
                     queue_timeout=30.0)
    with Pool.start(cfg) as pool:
        _LIVE_POOLS.append(pool)
        try:
            victim = pool.workers()[0]
            result: list[BaseException | object] = []
            caller = threading.Thread(target=lambda: result.append(_outcome(pool)))
            caller.start()
            wait_for(lambda: pool.stats().busy == 1, 10.0)
            os.kill(victim.pid, signal.SIGSTOP)
            try:
                caller.join(20.0)
            finally:
                if psutil.pid_exists(victim.pid):
                    os.kill(victim.pid, signal.SIGKILL)
            assert len(result) == 1 and isinstance(result[0], WorkerCrashedError), result
            wait_for(lambda: pool.workers()[0].pid != victim.pid
                            and pool.workers()[0].state == "ready", 20.0)
        finally:
            _LIVE_POOLS.remove(pool)


def _outcome(pool: Pool) -> object:
    try:
        return pool.execute("sleep", {"seconds": 30.0})
    except BaseException as exc:
        return exc


def _answered(line: BeatLine, beat: Beat) -> Beat:
    """Wait (bounded) for ``beat``'s answer, reading the line as the Worker does."""
    deadline = time.monotonic() + 5.0
    while not beat.done() and time.monotonic() < deadline:
        select.select([line.fd], [], [], 0.1)
        line.read()
    return beat
