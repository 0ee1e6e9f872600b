"""Workers on other "hosts" through Thespian conventions (issue 6), with real processes only.

The leader is a pool started here with ``SystemConfig(convention=True)`` (or a node started by
``snakepit-actors start`` with ``[node] convention = true``); members are
``snakepit-actors node --leader`` processes, each its own actor system on 127.0.0.1. Every
member's processes are checked to be gone at the end of each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.config import SystemConfig
from snakepit_actors.errors import PoolNotReadyError, WorkerCrashedError
from snakepit_actors.ops.status import render
from snakepit_actors.system import free_port
from tests.multihost import Member, alive, cli_env, kill_all, system_tree, wait_until

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

WORKER_NODE = {"worker_node": True}


@pytest.fixture
def members(tmp_path: Path) -> Iterator[list[Member]]:
    """Members started by a test (``members.append``); all stopped and checked afterwards."""
    started: list[Member] = []
    yield started
    left = {m.name: m.stop() for m in started}
    assert not any(left.values()), f"member processes outlived their member: {left}" + "".join(
        f"\n{m.name}: {m.left_described}" for m in started if m.left_described)


def leader_config(port: int, size: int = 2, **kw: Any) -> PoolConfig:
    fields: dict[str, Any] = {"name": "mh", "pool_size": size, "placement": WORKER_NODE,
                              "startup_timeout": 30.0, "queue_timeout": 20.0,
                              "node_heartbeat_s": 0.5, "node_heartbeat_misses": 4,
                              "system": SystemConfig(admin_port=port, convention=True)}
    fields.update(kw)
    return PoolConfig(**fields)


def worker_nodes(pool: Pool) -> dict[str, str]:
    return {w.worker_id: w.node for w in pool.workers()}


def test_workers_land_on_the_member_with_the_capability_and_serve_both_paths(
        tmp_path: Path, members: list[Member]) -> None:
    port = free_port()
    members.append(Member(port, "plain", "zone=a", log_dir=tmp_path))
    members.append(Member(port, "gpu", "worker_node=true", "zone=b", log_dir=tmp_path,
                          extra=("--worker-host", "127.0.0.2")))  # another loopback address
    # worker_memory_mb=1: every process is above it, but a member's RSS cannot be sampled
    # from the leader (its pids are another host's), so nothing may be recycled for it
    cfg = leader_config(port, worker_memory_mb=1, heartbeat_interval=0.5)
    with Pool.start(cfg) as pool:
        assert worker_nodes(pool) == {"mh_worker_1": "gpu", "mh_worker_2": "gpu"}
        gpu_pids = members[1].tree()
        workers = pool.workers()
        assert all(w.pid in gpu_pids for w in workers), "worker processes run on the member"
        assert not {w.pid for w in workers} & members[0].tree()
        assert all(w.endpoint.startswith("127.0.0.2:") for w in workers)  # TCP, advertised
        # direct path: gRPC from here straight to the member's processes
        assert [pool.execute("add", {"a": i, "b": 1}) for i in range(20)] == list(range(1, 21))

        async def through_actors() -> list[Any]:  # async streams take the actor path
            return [c async for c in pool.execute_stream_async("stream_progress", {"steps": 4})]

        chunks = asyncio.run(through_actors())
        assert len(chunks) == 4
        assert sum(w.requests for w in pool.workers()) >= 21
        assert wait_until(lambda: any(  # worker output lands in the member's log
            e.get("event") == "worker.output" and e.get("worker_id") == "mh_worker_1"
            for e in members[1].events()), 10.0)
        remote_pids = {w.pid for w in workers}
        time.sleep(1.5)  # three memory samples
        assert (pool.stats().recycled, pool.stats().restarts) == (0, 0)
    # closing the pool ends its processes on the member; the member itself runs on
    assert wait_until(lambda: not any(alive(p) for p in remote_pids), 10.0)
    assert members[1].proc.poll() is None


def test_a_member_killed_outright_fails_its_requests_and_its_workers_move(
        tmp_path: Path, members: list[Member]) -> None:
    """SIGKILL of every process of one member (a dead host): in-flight requests there fail
    with WorkerCrashedError, the member is declared lost by our heartbeat (Thespian would take
    minutes), and its workers are placed on the other member."""
    port = free_port()
    members += [Member(port, "m1", "worker_node=true", log_dir=tmp_path),
                Member(port, "m2", "worker_node=true", log_dir=tmp_path)]
    with Pool.start(leader_config(port)) as pool:
        placed = worker_nodes(pool)  # least loaded, unless one member answered first
        victim = next(m for m in members if m.name == placed["mh_worker_1"])
        survivor = next(m for m in members if m is not victim)
        on_victim = list(placed.values()).count(victim.name)
        outcomes: dict[str, tuple[float, Any]] = {}

        def call(tag: str) -> None:
            try:
                outcome: Any = pool.execute("sleep", {"seconds": 6}, timeout=30)
            except Exception as exc:
                outcome = exc
            outcomes[tag] = (time.monotonic() - killed_at, outcome)

        killed_at = time.monotonic() + 3600
        callers = [threading.Thread(target=call, args=(f"c{i}",)) for i in range(2)]
        for caller in callers:
            caller.start()
        time.sleep(1.5)  # both calls are running, one per worker
        killed_at = time.monotonic()
        victim.kill()
        for caller in callers:
            caller.join(30)
        assert len(outcomes) == 2, outcomes
        failed = [o for _, o in outcomes.values() if isinstance(o, WorkerCrashedError)]
        assert len(failed) == on_victim, outcomes
        assert [o for _, o in outcomes.values() if not isinstance(o, Exception)] == [6] * (
            2 - on_victim)
        failed_after = min(t for t, o in outcomes.values() if isinstance(o, WorkerCrashedError))
        assert failed_after < 8.0, outcomes  # heartbeat 0.5 s x 4 misses, loosely
        assert wait_until(lambda: set(worker_nodes(pool).values()) == {survivor.name}
                          and all(w.state in ("ready", "busy") for w in pool.workers()), 20.0)
        print(f"kill -9 of {victim.name}: its request failed after {failed_after:.2f} s; "
              f"both workers on {survivor.name} after {time.monotonic() - killed_at:.2f} s")
        assert [pool.execute("add", {"a": i, "b": i}) for i in range(10)] == [
            2 * i for i in range(10)]


def test_a_pool_with_no_member_left_is_degraded_until_a_member_joins(
        tmp_path: Path, members: list[Member]) -> None:
    port = free_port()
    members.append(Member(port, "first", "worker_node=true", log_dir=tmp_path))
    with Pool.start(leader_config(port, placement_timeout=1.0, queue_timeout=3.0)) as pool:
        killed = time.monotonic()
        members[0].kill()
        # lost after 0.5 s x 4 of silence, then parked for placement_timeout: degraded
        assert wait_until(lambda: pool.stats().state == "degraded", 20.0), pool.stats()
        print(f"degraded {time.monotonic() - killed:.2f} s after the kill")
        with pytest.raises(PoolNotReadyError) as caught:  # a clear error, never a hang
            pool.execute("ping", timeout=10)
        assert caught.value.reason == "degraded"
        joined = time.monotonic()
        members.append(Member(port, "later", "worker_node=true", log_dir=tmp_path))
        assert wait_until(lambda: sorted(worker_nodes(pool).values()) == ["later", "later"]
                          and pool.stats().workers == 2, 30.0), pool.workers()
        took = time.monotonic() - joined
        assert pool.execute("ping") == "pong"
        print(f"a member joining later ran both workers {took:.2f} s after its launch")


def test_a_member_paused_past_the_deadline_loses_its_workers_and_is_taken_back_later(
        tmp_path: Path, members: list[Member]) -> None:
    """SIGSTOP of a member (a long pause or a network cut): its workers move to the other
    member, and its agent, once it runs again, stops the orphaned Worker there. After SIGCONT
    the pool takes the member back: when the other one dies, the workers return to it."""
    port = free_port()
    members += [Member(port, "a", "worker_node=true", log_dir=tmp_path),
                Member(port, "b", "worker_node=true", log_dir=tmp_path)]
    with Pool.start(leader_config(port, placement_timeout=1.0)) as pool:
        first = next(m for m in members if m.name == worker_nodes(pool)["mh_worker_1"])
        other = next(m for m in members if m is not first)
        paused = first.tree()
        orphan_pids = {w.pid for w in pool.workers() if w.node == first.name}
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert wait_until(lambda: set(worker_nodes(pool).values()) == {other.name}
                              and pool.stats().workers == 2, 20.0), pool.workers()
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)
        # silence_s = 2 x (0.5 s x 4): the agent stops the orphaned worker process (a few
        # seconds; loose, as a resumed member catches up slowly beside other test runners)
        assert wait_until(lambda: not any(alive(p) for p in orphan_pids), 40.0)
        time.sleep(3.0)  # a few probes: the pool hears the member again
        other.kill()
        assert wait_until(lambda: set(worker_nodes(pool).values()) == {first.name}
                          and pool.stats().workers == 2, 30.0), (pool.workers(), pool.stats())
        assert pool.execute("ping") == "pong"


def test_a_member_stopped_with_sigterm_hands_its_workers_over_without_a_failed_request(
        tmp_path: Path, members: list[Member]) -> None:
    """Maintenance: SIGTERM to a member drains it. Its workers finish what they run, then move
    to the other member; callers see no error; the member exits 0 once nothing is left."""
    port = free_port()
    members += [Member(port, "a", "worker_node=true", log_dir=tmp_path),
                Member(port, "b", "worker_node=true", log_dir=tmp_path)]
    with Pool.start(leader_config(port)) as pool, ThreadPoolExecutor(4) as ex:
        leaving = next(m for m in members if m.name == worker_nodes(pool)["mh_worker_1"])
        staying = next(m for m in members if m is not leaving)
        sleeps = [ex.submit(pool.execute, "sleep", {"seconds": 2}, timeout=60)
                  for _ in range(2)]  # one on each worker (they are both busy)
        time.sleep(0.5)
        t0 = time.monotonic()
        leaving.proc.send_signal(signal.SIGTERM)
        echoes, exited = [], 0.0
        while time.monotonic() - t0 < 4.0:  # bounded: about 4 s of traffic meanwhile
            echoes.append(pool.execute("echo", {"n": len(echoes)}, timeout=60))
            if not exited and leaving.proc.poll() is not None:
                exited = time.monotonic() - t0
        assert [s.result(60) for s in sleeps] == [2, 2]
        assert echoes == [{"n": i} for i in range(len(echoes))]
        assert leaving.proc.wait(30) == 0
        exited = exited or time.monotonic() - t0
        assert wait_until(lambda: set(worker_nodes(pool).values()) == {staying.name}
                          and pool.stats().workers == 2, 20.0), pool.workers()
        assert pool.stats().errors == 0
        print(f"{leaving.name} exited {exited:.2f} s after SIGTERM; workers on "
              f"{staying.name} after {time.monotonic() - t0:.2f} s; {len(echoes)} requests "
              f"meanwhile, none failed")
    assert "draining" in leaving.log_path.read_text()


def test_a_member_joining_a_busy_pool_gets_workers_moved_to_it_without_a_failed_request(
        tmp_path: Path, members: list[Member]) -> None:
    port = free_port()
    members.append(Member(port, "first", "worker_node=true", log_dir=tmp_path))
    with Pool.start(leader_config(port, size=4)) as pool:
        assert set(worker_nodes(pool).values()) == {"first"}
        members.append(Member(port, "second", "worker_node=true", log_dir=tmp_path))
        t0, done = time.monotonic(), []
        while time.monotonic() - t0 < 30:  # bounded; traffic all along
            done.append(pool.execute("add", {"a": len(done), "b": 0}, timeout=60))
            nodes = sorted(worker_nodes(pool).values())
            if nodes == ["first", "first", "second", "second"] and pool.stats().workers == 4:
                break
        assert nodes == ["first", "first", "second", "second"], pool.workers()
        assert done == list(range(len(done))) and pool.stats().errors == 0
        print(f"balanced 2:2 {time.monotonic() - t0:.2f} s after the second member's "
              f"launch; {len(done)} requests meanwhile, none failed")


def test_a_placement_no_member_meets_fails_start_up_naming_what_is_missing(
        tmp_path: Path, members: list[Member]) -> None:
    port = free_port()
    members.append(Member(port, "cpu-only", "zone=a", log_dir=tmp_path))
    members.append(Member(port, "wrong-secret", "gpu=1", log_dir=tmp_path, secret="nope"))
    cfg = leader_config(port, size=1, placement={"gpu": 1}, placement_timeout=4.0,
                        system=SystemConfig(admin_port=port, convention=True, secret="s3cret"))
    t0 = time.monotonic()
    with pytest.raises(PoolNotReadyError) as caught:
        Pool.start(cfg)
    assert time.monotonic() - t0 < 20.0
    error = caught.value
    assert error.reason == "no_matching_node"
    assert "{'gpu': 1}" in str(error) and "--capability gpu=1" in str(error)
    members_seen = error.details["members"]
    assert "does not advertise {'gpu': 1}" in members_seen["cpu-only"]
    assert members_seen["wrong-secret"] == "wrong or missing shared secret"


@dataclass
class Leader:
    """A ``snakepit-actors start`` process leading a convention, and its pool file."""

    config: Path
    port: int
    member: Member
    proc: subprocess.Popen[str]
    pids: set[int] = field(default_factory=set)  # the leader's actor system, once known


@contextlib.contextmanager
def leader_with_member(tmp_path: Path, members: list[Member], extra: str = "") -> Iterator[Leader]:
    """A leader whose pool "gpu" (2 workers, placed on ``worker_node=true``, heartbeat
    0.5 s x 4, plus the ``extra`` TOML lines) runs on one member "m1"; started, its workers
    ready. Afterwards the leader is stopped (SIGTERM, then SIGKILL) with everything it left."""
    port = free_port()
    config = tmp_path / "pool.toml"
    config.write_text(f"""
[node]
name = "leader"
admin_port = {port}
convention = true
log_format = "json"

[pools.gpu]
pool_size = 2
placement = {{ worker_node = true }}
node_heartbeat_s = 0.5
node_heartbeat_misses = 4
{extra}
""")
    member = Member(port, "m1", "worker_node=true", log_dir=tmp_path)
    members.append(member)
    err = open(tmp_path / "leader.err", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "snakepit_actors.ops.cli", "start",
                             "--config", str(config)], stdout=subprocess.PIPE, stderr=err,
                            text=True, env=cli_env())
    leader = Leader(config, port, member, proc)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "2 workers ready" in line, (line, (tmp_path / "leader.err").read_text()[-2000:])
        yield leader
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(10)
        err.close()
        assert proc.stdout is not None
        proc.stdout.close()
        kill_all({p for p in leader.pids | system_tree(proc.pid, port) if alive(p)})


def _status(config: Path, *flags: str) -> str:
    return subprocess.run([sys.executable, "-m", "snakepit_actors.ops.cli", "status",
                           "--config", str(config), *flags], capture_output=True, text=True,
                          timeout=60, env=cli_env()).stdout


def test_a_node_leads_a_convention_status_names_each_workers_node_and_its_death_ends_them(
        tmp_path: Path, members: list[Member]) -> None:
    """``start --config`` with ``[node] convention = true``; a member joins; ``status`` shows
    where each worker runs; then the leader is SIGKILLed with its whole system: the member's
    NodeAgent notices the silence and stops the orphaned workers; the member lives on."""
    with leader_with_member(tmp_path, members) as leader:
        report = json.loads(_status(leader.config, "--json"))
        [pool] = report["pools"]
        assert {w["node"] for w in pool["workers"]} == {"m1"}
        [watch] = [n for n in pool["tree"]["children"] if n["actor"] == "NodeWatch"]
        [m1] = watch["members"]
        assert (m1["node"], m1["state"], m1["workers"]) == ("m1", "live", 2)
        assert m1["capabilities"]["worker_node"] is True and m1["silent_s"] < 5
        text = _status(leader.config)
        assert text.count(" m1 ") >= 2 and "on m1" in text, text
        assert "member m1" in text and "live" in text, text
        worker_pids = {w["pid"] for w in pool["workers"]}
        assert worker_pids <= leader.member.tree()
        leader.pids = system_tree(leader.proc.pid, leader.port)
        kill_all(leader.pids)
        # silence_s = 2 x (0.5 s x 4): the agent stops the workers within about 4-5 s
        assert wait_until(lambda: not any(alive(p) for p in worker_pids), 20.0)
        assert leader.member.proc.poll() is None, "the member outlives its leader"
        # the agent stopped them: after silence_s, or as Thespian ended it with the leader's
        # system (which comes first depends on the load); its log line travels through the
        # member's logging actor and may come a little later
        assert wait_until(lambda: any(e.get("event") in ("node.pool_silent", "node.agent_stopping")
                                      for e in leader.member.events()), 30.0)


def test_after_its_member_is_lost_status_shows_no_dead_pid_as_starting_or_ready(
        tmp_path: Path, members: list[Member]) -> None:
    """Issue 18: a pool placed on one member whose processes are all SIGKILLed turns
    degraded, and ``status`` (text, --json, --prometheus) shows its workers lost, then parked
    ("no_matching_node"), without a pid: never the dead member's pids as starting/ready."""
    with leader_with_member(tmp_path, members, "placement_timeout = 5.0") as leader:
        leader.pids = system_tree(leader.proc.pid, leader.port)
        [pool] = json.loads(_status(leader.config, "--json"))["pools"]
        dead = {w["pid"] for w in pool["workers"]}
        assert len(dead) == 2 and dead <= leader.member.tree()
        leader.member.kill()
        log = tmp_path / "leader.err"  # the leader's JSON log: wait for the degraded pool
        assert wait_until(lambda: '"pool.degraded"' in log.read_text(), 30.0, step_s=0.2), (
            log.read_text()[-2000:])
        # slow: the tree walk waits for the dead member's actors
        report = json.loads(_status(leader.config, "--json"))
        [pool] = report["pools"]
        assert pool["state"] == "degraded"
        for w in pool["workers"]:
            assert w["pid"] is None and w["state"] in ("lost", "parked") and w["reason"], w
        assert {w["reason"] for w in pool["workers"]} == {"no_matching_node"}
        assert pool["stats"]["lost_workers"] == 2 and pool["stats"]["workers"] == 0
        text = render(report)  # what `status` prints, from the same report
        assert "parked" in text and "no_matching_node" in text, text
        assert not any(str(pid) in text for pid in dead), text
        metrics = _status(leader.config, "--prometheus")
        assert 'snakepit_lost_workers{node="leader",pool="gpu"} 2' in metrics, metrics
