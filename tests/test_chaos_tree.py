"""Chaos in the pool's own actor tree: kill -9 of each kind of actor process under 16 callers,
with no queue timeout and no request timeout, on both data paths. Every request gets exactly
one outcome (its result or a typed error) within seconds of the kill; the pool serves again
(the PoolRoot restarted the actor and rebuilt its state from the others) or, when the PoolRoot,
the Thespian admin or its logger died, is closed with ``PoolClosedError``; no process is left
afterwards. Run with ``-s`` to see the table of figures (docs/supervision.md has one).

Actor pids come from the pool itself (``tree_chaos.tree_pids``: the PoolRoot's
``DescribeTree`` and each actor's Thespian port), never from process names.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import psutil
import pytest

from snakepit_actors import (
    Pool,
    PoolClosedError,
    PoolConfig,
    PoolNotReadyError,
    SnakepitError,
    WorkerCrashedError,
)
from snakepit_actors.config import DataPath
from snakepit_actors.tree.process_table import ProcessTable

from .conftest import _LIVE_POOLS, wait_gone
from .tree_chaos import (
    FATAL,
    GONE,
    HEALED,
    TABLE_HEAD,
    KillReport,
    Load,
    kill,
    pool_processes,
    report,
    starters_of,
    tree_pids,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

#: Loose bounds (the issue asks for 2 s; a busy 2-core machine gets slack; the table shows
#: the figures measured).
HANG_LIMIT_S = 4.0
#: A new WorkerSupervisor starts every worker process afresh: queued callers wait for that
#: (about 1 s on a quiet machine, 2-4 s on a loaded one).
RESTART_ALL_LIMIT_S = 10.0
ROWS: list[KillReport] = []


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    yield
    if ROWS:
        print("\n" + TABLE_HEAD + "\n" + "\n".join(r.row() for r in ROWS))


def start(name: str, path: DataPath, **overrides: object) -> Pool:
    pool = Pool.start(PoolConfig(**{"name": name, "pool_size": 4, "queue_timeout": None,
                                    "request_timeout": None, "data_path": path, **overrides}))
    _LIVE_POOLS.append(pool)
    return pool


def close(pool: Pool) -> float:
    _LIVE_POOLS.remove(pool)
    started = time.monotonic()
    pool.close()
    return time.monotonic() - started


def wait_for(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return True
        except SnakepitError:
            pass
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("role", HEALED + FATAL)
@pytest.mark.parametrize("path", ["direct", "actor"])
def test_kill_9_of_any_actor_heals_the_pool_or_closes_it_and_loses_no_request(
        role: str, path: DataPath) -> None:
    pool = start(f"c-{role}"[:16], path)
    try:
        victim = tree_pids(pool)[role]
        processes = pool_processes(pool)
        load = Load(lambda: pool.execute("sleep", {"seconds": 0.05})).start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        kill(victim)
        time.sleep(2.5)
        lost = load.stop(timeout_s=10.0)
        seen = report(role, path, load, killed_at, lost)
        errors = [c.error for c in load.calls if c.error is not None]
        assert seen.lost == 0, "a caller never got an outcome"
        assert all(isinstance(e, SnakepitError) for e in errors), {repr(e) for e in errors}
        limit_s = RESTART_ALL_LIMIT_S if role == "worker_supervisor" else HANG_LIMIT_S
        assert seen.longest_wait_s < limit_s
        if role in FATAL:
            assert seen.serving_s is None
            assert all(isinstance(e, PoolClosedError) and e.reason in GONE for e in errors)
            with pytest.raises(PoolClosedError):
                pool.execute("ping")
        else:
            assert seen.serving_s is not None and seen.serving_s < limit_s
            assert pool.execute("ping") == "pong"
            assert wait_for(lambda: pool.stats().state == "ready"
                            and len(pool.workers()) == 4, 5.0)
            assert tree_pids(pool)[role] != victim
            if role == "pool":  # the actor path fails what the dead Pool held: it may have run
                assert all(isinstance(e, PoolNotReadyError) and e.reason == "pool_restarted"
                           for e in errors)
            elif role == "data_plane" and path == "actor":  # what was in it: it may have run
                assert all(isinstance(e, WorkerCrashedError) and e.reason == "data_plane_lost"
                           for e in errors)
            elif role == "worker_supervisor":  # what ran on, or was sent ahead to, the old
                assert len(errors) <= 4 * (2 + PoolConfig().prefetch)  # workers
                assert all(isinstance(e, WorkerCrashedError) for e in errors), errors
            else:  # a registry or the LauncherWatch: nobody even notices
                assert not errors
            processes = pool_processes(pool)
    finally:
        close_s = close(pool)
    seen.left = len(wait_gone(processes, timeout_s=5.0))
    ROWS.append(seen)
    assert close_s < 5.0
    assert seen.left == 0


@pytest.mark.parametrize("path", ["direct", "actor"])
def test_a_random_actor_killed_every_half_second_for_ten_seconds_never_hangs_a_caller(
        path: DataPath) -> None:
    pool = start(f"storm-{path}", path)
    rng = random.Random(12)
    kills: list[str] = []
    try:
        load = Load(lambda: pool.execute("sleep", {"seconds": 0.05})).start()
        time.sleep(0.5)
        rounds: list[str] = []
        began = time.monotonic()
        while time.monotonic() - began < 10.0:
            if not rounds:  # every role once per round, in a random order: none more than
                rounds = rng.sample(HEALED, len(HEALED))  # 3 times in 10 s (the intensity)
            role = rounds.pop()
            victim = tree_pids(pool).get(role)
            if victim and psutil.pid_exists(victim):
                kill(victim)
                kills.append(role)
                last_kill = time.monotonic()
            time.sleep(0.5)
        time.sleep(2.0)
        lost = load.stop(timeout_s=10.0)
        seen = report("random", path, load, last_kill, lost)
        errors = [c.error for c in load.calls if c.error is not None]
        assert seen.lost == 0
        assert all(isinstance(e, SnakepitError) and not (
            isinstance(e, PoolClosedError) and e.reason in GONE) for e in errors), errors
        assert wait_for(lambda: pool.execute("ping") == "pong", RESTART_ALL_LIMIT_S)
        assert wait_for(lambda: pool.stats().state == "ready" and len(pool.workers()) == 4, 5.0)
        processes = pool_processes(pool)
        print(f"\nstorm/{path}: {len(kills)} kills {kills}; {seen.row()}")
    finally:
        close(pool)
    assert not wait_gone(processes, timeout_s=5.0)


@pytest.fixture(scope="module")
def healing_pool() -> Iterator[Pool]:
    pool = start("heal", "direct", pool_size=2, session_ttl=60.0,
                 worker_ttl=3600.0)  # a Recycler runs
    try:
        yield pool
    finally:
        processes = pool_processes(pool)
        close(pool)
        assert not wait_gone(processes, timeout_s=5.0)


def replace_actor(pool: Pool, role: str) -> None:
    victim = tree_pids(pool)[role]
    kill(victim)
    assert wait_for(lambda: tree_pids(pool).get(role, victim) != victim, 5.0)


@pytest.mark.parametrize("role", ["worker_registry", "process_registry", "starter_registry",
                                  "recycler"])
def test_after_a_registry_restart_a_worker_or_starter_crash_heals_and_its_process_is_recorded(
        healing_pool: Pool, role: str) -> None:
    pool = healing_pool
    replace_actor(pool, role)
    old = pool.workers()[0]
    assert old.pid is not None
    psutil.Process(old.pid).kill()
    assert wait_for(lambda: {w.worker_id: w for w in pool.workers()}[old.worker_id].pid
                    not in (None, old.pid) and pool.stats().state == "ready"
                    and all(w.state == "ready" for w in pool.workers()), 10.0)
    assert pool.execute("echo", {"x": 1}) == {"x": 1}
    starters = starters_of(psutil.Process(tree_pids(pool)["worker_supervisor"]))
    psutil.Process(starters[-1].pid).kill()  # a new Starter gets the tree's current addresses
    before = {w.pid for w in pool.workers()}
    assert wait_for(lambda: len({w.pid for w in pool.workers()} - before) == 1
                    and all(w.state == "ready" for w in pool.workers()), 10.0)
    pids = {w.pid for w in pool.workers()}
    with ProcessTable(pool._process_db) as table:
        assert wait_for(lambda: {r.pid for r in table.rows(pool.run_id)
                                 if not r.worker_id.endswith("_fork_server")} == pids, 5.0), (
            table.rows(pool.run_id), pids)


def test_after_a_session_store_restart_routed_sessions_exist_again_without_their_data(
        healing_pool: Pool) -> None:
    pool = healing_pool
    pool.create_session("s-keep", data={"a": 1})
    pool.execute("session_counter", session_id="s-keep")
    pool.set_program("p", 1)
    assert wait_for(lambda: pool.get_session("s-keep").worker_id, 10.0)  # the Pool pinned it
    replace_actor(pool, "session_store")
    assert wait_for(lambda: pool.get_session("s-keep", timeout=2.0).data == {}, 5.0)
    assert pool.get_program("p") is None
    assert pool.execute("session_counter", session_id="s-keep") == 2  # the worker kept its state
    pool.set_program("p", 2)
    assert pool.get_program("p") == 2


def test_session_calls_racing_a_session_store_kill_are_answered_or_fail_typed_at_once(
        healing_pool: Pool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pool = healing_pool
    victim = tree_pids(pool)["session_store"]
    with ThreadPoolExecutor(8) as callers:
        kill(victim)
        killed_at = time.monotonic()
        futures = [callers.submit(pool.list_sessions, timeout=30.0) for _ in range(32)]
        outcomes: list[object] = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=30.0))
            except SnakepitError as exc:
                outcomes.append(exc)
        took_s = time.monotonic() - killed_at
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(e, PoolNotReadyError) and e.reason == "session_store_restarted"
               for e in errors), errors
    assert took_s < HANG_LIMIT_S, "a session call waited for its timeout"
    assert wait_for(lambda: tree_pids(pool)["session_store"] != victim, 5.0)
    print(f"\nsession calls racing the kill: {len(errors)} of {len(outcomes)} failed "
          f"session_store_restarted, all answered in {took_s:.3f}s")


def test_a_worker_supervisor_that_gives_up_is_not_restarted_and_the_pool_reports_degraded(
        ) -> None:
    pool = start("tree-giveup", "actor", pool_size=1, max_restarts=1, max_seconds=30.0)
    try:
        supervisor = psutil.Process(tree_pids(pool)["worker_supervisor"])
        for _ in range(2):  # the second Starter death exceeds 1 restart in 30 s: it escalates
            # Each kill waits for a Starter that runs its worker (one killed before it even
            # connected to its parent: the next test).
            assert wait_for(lambda: pool.stats().workers == 1, 20.0)
            [starter] = starters_of(supervisor)
            starter.kill()
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and supervisor.is_running() and not [
                    c for c in starters_of(supervisor) if c.pid != starter.pid]:
                time.sleep(0.05)
        assert wait_for(lambda: pool.stats().state == "degraded", 10.0)
        assert not supervisor.is_running()
        with pytest.raises(PoolNotReadyError) as refused:
            pool.execute("ping")
        assert refused.value.reason == "degraded"
        processes = pool_processes(pool)
    finally:
        close(pool)
    assert not wait_gone(processes, timeout_s=5.0)


def test_a_starter_killed_before_it_connected_still_counts_toward_giving_up() -> None:
    """The replacement Starter is killed the moment its process exists, before it connected
    to the WorkerSupervisor. Thespian dropped such an exit: the pool then stayed "ready" with
    no worker at all (4 times in 4). Now it counts, and the pool degrades as configured."""
    pool = start("tree-unborn", "actor", pool_size=1, max_restarts=1, max_seconds=30.0)
    try:
        supervisor = psutil.Process(tree_pids(pool)["worker_supervisor"])
        assert wait_for(lambda: pool.stats().workers == 1, 20.0)
        [first] = starters_of(supervisor)
        first.kill()
        deadline, replacement = time.monotonic() + 10.0, []
        while not replacement and time.monotonic() < deadline:
            replacement = [c for c in starters_of(supervisor) if c.pid != first.pid]
            time.sleep(0.002)
        assert replacement, "no replacement Starter was forked"
        replacement[0].kill()
        assert wait_for(lambda: pool.stats().state == "degraded", 10.0), pool.stats()
        assert wait_for(lambda: not running(supervisor), 5.0)
    finally:
        close(pool)


def running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (one that exited waits for its parent to reap it)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_pool_actor_that_dies_too_often_fails_the_pool_fast() -> None:
    pool = start("tree-often", "actor", pool_size=2)
    try:
        processes = pool_processes(pool)
        for _ in range(4):  # 3 restarts in 10 s are allowed; the 4th death fails the pool
            address = pool._pool
            kill(tree_pids(pool)["pool"])
            deadline = time.monotonic() + 5.0
            while pool._pool == address and not pool._gateway.gone_error \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
        with pytest.raises(PoolClosedError) as refused:
            pool.execute("ping")
        assert refused.value.reason == "pool_tree_gone"
        assert not wait_gone(processes, timeout_s=5.0)
    finally:
        close(pool)
