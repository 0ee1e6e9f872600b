"""The fork server (``start_method="forkserver"``): one template process per pool run forks the
worker processes; everything that holds for spawned workers holds for forked ones."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from snakepit_actors import ConfigError, Pool, PoolConfig, PoolNotReadyError
from snakepit_actors.ops.bench_message import RunLoad, load_from_actor
from snakepit_actors.tree import fork_server, processes
from snakepit_actors.tree.reaper import sweep_orphans

from .conftest import pool_pids, shared_pool, wait_for, wait_gone, worker_actor_pid

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")]

ENV_ADAPTER = "tests.fork_adapters:EnvAdapter"
FORK_SERVER_MODULE = "snakepit_actors.bridge.fork_server"


def forked(**changes: object) -> PoolConfig:
    values: dict[str, object] = {"name": "forked", "pool_size": 2, "start_method": "forkserver",
                                 "adapter": ENV_ADAPTER, "startup_timeout": 60.0}
    values.update(changes)
    return PoolConfig(**values)  # type: ignore[arg-type]


def fork_servers(pool: Pool) -> list[psutil.Process]:
    """The pool's live fork server processes (children of its WorkerSupervisor)."""
    found = []
    for pid in pool_pids(pool):
        try:
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
            parent = proc.parent()
            if (FORK_SERVER_MODULE in cmdline and parent is not None
                    and FORK_SERVER_MODULE not in parent.cmdline()
                    and proc.status() != psutil.STATUS_ZOMBIE):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def worker_pids(pool: Pool) -> dict[str, int]:
    return {w.worker_id: w.pid for w in pool.workers() if w.state in ("ready", "busy")}


@pytest.fixture(scope="module")
def pool32() -> Iterator[Pool]:
    with shared_pool(forked(name="forked32", pool_size=32, env={"FORK_TEST_VAR": "yes"},
                            queue_timeout=60.0)) as pool:
        yield pool


# --- configuration ----------------------------------------------------------------------------

def test_start_method_and_preload_are_validated_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="did you mean 'forkserver'"):
        PoolConfig(start_method="fork_server")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="preload is for start_method='forkserver'"):
        PoolConfig(start_method="spawn", preload=("json",))
    with pytest.raises(ConfigError, match="preload must list module names"):
        PoolConfig(start_method="forkserver", preload=("not a module",))
    snakepit = {"protocol": "snakepit", "python_path": ("/tmp",),
                "adapter": "snakepit_bridge.adapters.showcase.ShowcaseAdapter"}
    with pytest.raises(ConfigError, match="'snakepit' workers are always spawned"):
        PoolConfig(start_method="forkserver", preload=("json",), **snakepit)  # type: ignore[arg-type]
    assert PoolConfig(start_method="forkserver", **snakepit)  # type: ignore[arg-type]


def test_the_fork_server_is_the_default_on_linux_only() -> None:
    expected = "forkserver" if sys.platform.startswith("linux") else "spawn"
    assert PoolConfig().start_method == expected


def test_start_method_and_preload_come_from_toml_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text('start_method = "forkserver"\npreload = ["json", "email.parser"]\n')
    cfg = PoolConfig.from_toml(path)
    assert (cfg.start_method, cfg.preload) == ("forkserver", ("json", "email.parser"))
    env = {"SNAKEPIT_START_METHOD": "forkserver", "SNAKEPIT_PRELOAD": '["json"]'}
    assert PoolConfig.from_env(env).preload == ("json",)


# --- the fork server without actors -----------------------------------------------------------

def test_a_forked_worker_serves_and_its_exit_code_comes_from_the_fork_server(
        tmp_path: Path, no_surviving_children: None) -> None:
    cfg = forked()
    server = fork_server.ForkServer.start(cfg, "run-direct", str(tmp_path))
    try:
        assert server.wait_ready(30.0)
        assert os.stat(server.path).st_mode & 0o777 == 0o600
        spec = processes.BridgeSpec(
            python=sys.executable, adapter=cfg.adapter, adapter_config={}, worker_id="w1",
            listen=f"unix:{tmp_path / 'w1.sock'}", run_id="run-direct", env={"X_VAR": "1"},
            log_path=str(tmp_path / "w1.log"), fork_server=server.path)
        proc = processes.spawn_bridge(spec)
        assert proc.popen is None and psutil.Process(proc.pid).ppid() == server.popen.pid
        ready = processes.wait_ready(proc, 30.0)
        assert ready.pid == proc.pid and os.getpgid(proc.pid) == proc.pid  # its own session
        os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda: processes.process_exit_code(proc) is not None)
        assert processes.process_exit_code(proc) == -signal.SIGKILL
        assert processes.stop_bridge(proc) == -signal.SIGKILL
    finally:
        server.stop()
    assert not os.path.exists(server.path)


def test_a_forked_worker_exits_when_the_process_it_watches_is_gone(
        tmp_path: Path, no_surviving_children: None) -> None:
    cfg = forked()
    server = fork_server.ForkServer.start(cfg, "run-watch", str(tmp_path))
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert server.wait_ready(30.0)
        spec = processes.BridgeSpec(
            python=sys.executable, adapter=cfg.adapter, adapter_config={}, worker_id="w1",
            listen="127.0.0.1:0", run_id="run-watch", env={}, parent_pid=watched.pid,
            log_path=str(tmp_path / "w1.log"), fork_server=server.path)
        proc = processes.spawn_bridge(spec)
        processes.wait_ready(proc, 30.0)
        watched.kill()
        watched.wait(5)
        wait_for(lambda: processes.process_exit_code(proc) is not None)
        assert processes.process_exit_code(proc) == 5  # EXIT_PARENT_DIED
        processes.stop_bridge(proc)
    finally:
        watched.kill()
        watched.wait(5)
        server.stop()


def test_no_fork_server_is_a_typed_start_failure(tmp_path: Path) -> None:
    spec = processes.BridgeSpec(
        python=sys.executable, adapter=ENV_ADAPTER, adapter_config={}, worker_id="w1",
        listen="127.0.0.1:0", run_id="run-none", env={}, log_path=str(tmp_path / "w1.log"),
        fork_server=str(tmp_path / "gone.sock"))
    with pytest.raises(PoolNotReadyError) as caught:
        processes.spawn_bridge(spec)
    assert caught.value.reason == "fork_server_unavailable"
    assert fork_server.exit_status(spec.fork_server, 12345) == fork_server.UNKNOWN_EXIT_CODE


def test_an_adapter_module_that_starts_a_thread_is_refused_naming_it_and_spawn() -> None:
    with pytest.raises(ConfigError) as caught:
        Pool.start(forked(name="unsafe", adapter="tests.fork_unsafe_adapter:ThreadyAdapter"))
    message = str(caught.value)
    assert "'tests.fork_unsafe_adapter'" in message and "eager-loader" in message
    assert "start_method='spawn'" in message


def test_doctor_says_whether_the_fork_server_would_refuse_the_adapter() -> None:
    from snakepit_actors.ops.doctor import _worker_python

    unsafe = _worker_python(forked(adapter="tests.fork_unsafe_adapter:ThreadyAdapter"))
    [check] = [c for c in unsafe if c.name.endswith("fork-safety")]
    assert check.level == "fail" and "eager-loader" in check.detail and "spawn" in check.fix
    safe = _worker_python(forked(preload=("json",)))
    assert [c.level for c in safe if c.name.endswith("fork-safety")] == ["ok"]


def test_a_preload_module_that_starts_a_thread_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"'tests\.fork_unsafe_adapter'"):
        Pool.start(forked(name="unsafepre", adapter="snakepit_actors.bridge.showcase:"
                          "ShowcaseAdapter", preload=("tests.fork_unsafe_adapter",)))


def test_recycled_workers_are_forked_from_the_template_that_preloaded_their_modules() -> None:
    with Pool.start(forked(name="forkrecycle", adapter="snakepit_actors.bridge.showcase:"
                           "ShowcaseAdapter", preload=("tests.fork_adapters",),
                           worker_max_requests=3)) as pool:
        [template] = fork_servers(pool)
        first = set(worker_pids(pool).values())
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not (set(worker_pids(pool).values()) - first):
            pool.execute("ping")
        recycled = set(worker_pids(pool).values()) - first
        assert recycled, "no worker was recycled after 3 requests"
        assert {psutil.Process(pid).ppid() for pid in recycled} == {template.pid}
        assert "tests.fork_adapters" in " ".join(template.cmdline())


# --- a pool of 32 forked workers --------------------------------------------------------------

@pytest.mark.slow
def test_32_forked_workers_start_from_one_template_and_serve(pool32: Pool) -> None:
    workers = worker_pids(pool32)
    assert len(workers) == 32
    [template] = fork_servers(pool32)
    assert {psutil.Process(pid).ppid() for pid in workers.values()} == {template.pid}
    answers = [pool32.execute("env", {"names": ["FORK_TEST_VAR"]}) for _ in range(64)]
    assert {a["imported_in"] for a in answers} == {template.pid}  # imported once, before forks
    assert {a["env"]["FORK_TEST_VAR"] for a in answers} == {"yes"}
    done = load_from_actor(pool32, RunLoad(None, "echo", {"x": 1}, in_flight=32, count=128,
                                           seconds=30.0, batched=False))
    assert (done.sent, done.replies, done.failed, done.duplicates) == (128, 128, 0, 0), done


@pytest.mark.slow
def test_each_forked_worker_gets_its_own_environment_and_its_output_is_captured(
        pool32: Pool) -> None:
    seen: dict[str, int] = {}
    for _ in range(64):
        answer = pool32.execute("env", {"names": ["SNAKEPIT_WORKER_ID", "SNAKEPIT_RUN_ID"]})
        seen[answer["env"]["SNAKEPIT_WORKER_ID"]] = answer["pid"]
        assert answer["env"]["SNAKEPIT_RUN_ID"] == pool32.run_id
    assert all(worker_pids(pool32).get(wid) == pid for wid, pid in seen.items())
    text = f"hello-fork-{uuid.uuid4().hex}"
    pool32.execute("say", {"text": text})

    def logged() -> bool:
        logs = glob.glob(os.path.join(pool32._run_dir, "*.log"))
        return any(text + " (stderr)" in Path(p).read_text(errors="replace") for p in logs)

    wait_for(logged, timeout_s=10.0)


@pytest.mark.slow
def test_a_forked_worker_killed_with_sigkill_is_replaced_by_a_new_fork(pool32: Pool) -> None:
    before = worker_pids(pool32)
    victim_id, victim = sorted(before.items())[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: worker_pids(pool32).get(victim_id) not in (None, victim), timeout_s=30.0)
    [template] = fork_servers(pool32)
    assert psutil.Process(worker_pids(pool32)[victim_id]).ppid() == template.pid
    assert pool32.execute("ping") == "pong"


@pytest.mark.slow
def test_killing_the_worker_actor_of_a_forked_worker_takes_its_process_along(
        pool32: Pool) -> None:
    victim_id, victim = sorted(worker_pids(pool32).items())[1]
    actor = worker_actor_pid(victim)
    assert actor != psutil.Process(victim).ppid()  # the fork server is its parent
    os.kill(actor, signal.SIGKILL)
    assert wait_gone({victim}, 10.0) == set(), "the forked worker outlived its Worker actor"
    wait_for(lambda: worker_pids(pool32).get(victim_id) not in (None, victim), timeout_s=30.0)


@pytest.mark.slow
def test_killing_the_fork_server_leaves_workers_serving_and_a_new_one_forks_replacements(
        pool32: Pool) -> None:
    [old] = fork_servers(pool32)
    results: list[object] = []
    call = threading.Thread(target=lambda: results.append(
        pool32.execute("sleep", {"seconds": 1.0}, timeout=30.0)))
    call.start()
    time.sleep(0.2)
    old.kill()
    call.join(30.0)
    assert results == [1.0]  # a running worker keeps serving its call
    wait_for(lambda: [p.pid for p in fork_servers(pool32)] not in ([], [old.pid]),
             timeout_s=30.0)
    [new] = fork_servers(pool32)
    victim_id, victim = sorted(worker_pids(pool32).items())[-1]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: worker_pids(pool32).get(victim_id) not in (None, victim), timeout_s=30.0)
    assert psutil.Process(worker_pids(pool32)[victim_id]).ppid() == new.pid
    assert len(worker_pids(pool32)) == 32
    assert all(pool32.execute("ping") == "pong" for _ in range(32))


# --- nothing outlives the pool ----------------------------------------------------------------

def test_close_leaves_no_fork_server_and_no_forked_worker() -> None:
    pool = Pool.start(forked(name="forkclose", pool_size=3))
    [template] = fork_servers(pool)
    pids = pool_pids(pool)
    assert template.pid in pids and set(worker_pids(pool).values()) <= pids
    pool.close()
    assert wait_gone(pids) == set()


def test_the_reaper_recognises_the_fork_server_and_forked_workers_of_an_ended_run() -> None:
    pool = Pool.start(forked(name="forkreap", pool_size=2))
    try:
        [template] = fork_servers(pool)
        targets = {template.pid, *worker_pids(pool).values()}
        report = sweep_orphans(pool._process_db, ended_runs={pool.run_id}, grace_s=1.0)
        assert report is not None
        assert targets <= {o.pid for o in report.killed}, report.to_dict()
        assert wait_gone(targets) == set()
    finally:
        pool.close()


LAUNCHER = textwrap.dedent("""
    import json, time, psutil
    from snakepit_actors import Pool, PoolConfig
    pool = Pool.start(PoolConfig(name="forkorphan", pool_size=3, start_method="forkserver"))
    admin = psutil.Process(pool.admin_pid)
    pids = [admin.pid] + [c.pid for c in admin.children(recursive=True)]
    print(json.dumps({"pids": pids, "workers": [w.pid for w in pool.workers()]}), flush=True)
    time.sleep(60)
""")


def test_a_sigkilled_host_leaves_no_fork_server_and_no_forked_worker() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE,
                                text=True, cwd=os.getcwd())
    try:
        started = json.loads(launcher.stdout.readline() if launcher.stdout else "")
        pids = set(started["pids"])
        assert set(started["workers"]) <= pids
        assert any(FORK_SERVER_MODULE in psutil.Process(p).cmdline() for p in pids)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(5)
        survivors = wait_gone(pids, timeout_s=10.0)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(5)
    assert survivors == set(), f"survived the host: {survivors}"
