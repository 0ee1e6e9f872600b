"""Shared fixtures: a showcase pool per module, and proof that no process outlives a test."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.config import SystemConfig
from snakepit_actors.proctitle import TITLE_PREFIX

_ME = psutil.Process()
_MY_CMDLINE = _ME.cmdline()
# Other test runs on this machine may share our command line (``python -m pytest -q``) but not
# our working directory, which forked actor processes inherit.
_MY_CWD = _ME.cwd()
# Worker processes are exec'd with our environment, so this marker shows in their
# /proc/PID/environ and tells them apart from another test run's. Actor processes are forks of
# this interpreter (their /proc environ is the one we were exec'd with): they keep our cmdline.
_MARKER = ("SNAKEPIT_TEST_RUN", uuid.uuid4().hex)
#: The modules a worker process runs (``-m MODULE``): our bridge, or the shim of Snakepit's.
_WORKER_MODULES = {"snakepit_actors.bridge", "snakepit_actors.compat.shim",
                   "snakepit_actors.bridge.fork_server"}  # the template and its forks
os.environ[_MARKER[0]] = _MARKER[1]


#: The actor systems' admins this test process started, pid -> create time. Other test runs on
#: the machine (same command line!) have their own: a process is ours only if it descends from
#: this process or from one of these admins (Thespian's admin is a daemon: ppid 1). The create
#: time tells a pid reused by another run's admin (pid_max may be 32768: a suite wraps it).
_OUR_ADMINS: dict[int, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Pools started by tests keep their process table out of the user's data directory, and
    every pool's admin pid is remembered (see ``_OUR_ADMINS``)."""
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="snakepit-test-data-")
    original = Pool.__init__

    def remember_admin(self: Pool, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        with contextlib.suppress(psutil.Error):
            _OUR_ADMINS[self.admin_pid] = psutil.Process(self.admin_pid).create_time()

    Pool.__init__ = remember_admin  # type: ignore[method-assign]


def _ours(proc: psutil.Process) -> bool:
    """Whether ``proc`` descends from this test process or from an admin it started."""
    try:
        line = [proc, *proc.parents()]
        return any(p.pid == _ME.pid or _OUR_ADMINS.get(p.pid) == p.create_time()
                   for p in line)
    except psutil.Error:
        return False


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.pop("XDG_DATA_HOME", ""), ignore_errors=True)


def _titled(cmdline: list[str]) -> bool:
    """An actor process renamed by setproctitle (ours, or Thespian's ``Class ActorAddr-...``):
    its command line and its /proc environ are overwritten, its name too."""
    return bool(cmdline) and (cmdline[0].startswith(TITLE_PREFIX) or "ActorAddr-" in cmdline[0])


def project_processes() -> dict[int, str]:
    """Live processes started by this test run: actor processes and worker processes."""
    found: dict[int, str] = {}
    for proc in psutil.process_iter(["pid", "name", "status", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if (proc.pid == _ME.pid or proc.info["status"] == psutil.STATUS_ZOMBIE
                    or ("python" not in (proc.info["name"] or "") and not _titled(cmdline))):
                continue
            if ((cmdline == _MY_CMDLINE or _titled(cmdline)) and _ours(proc)) or (
                    _WORKER_MODULES & set(cmdline)
                    and proc.environ().get(_MARKER[0]) == _MARKER[1]):
                found[proc.pid] = " ".join(cmdline)[:120]
        except psutil.Error:
            continue
    return found


def wait_gone(pids: set[int], timeout_s: float = 5.0) -> set[int]:
    """The subset of ``pids`` still alive (not zombie) after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if is_alive(p)}
        if alive:
            time.sleep(0.05)
    return alive


def wait_for(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll ``condition`` until it is true; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def running_call(pool: Pool, seconds: float = 30.0) -> tuple[threading.Thread, list[object]]:
    """A ``sleep`` call made on a thread of its own, returned once it runs on a worker
    (``busy == 1``): the thread, and the list its outcome (result or exception) lands in."""
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(pool.execute("sleep", {"seconds": seconds}))
        except Exception as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    wait_for(lambda: pool.stats().busy == 1)
    return caller, outcome


def worker_actor_pid(worker_pid: int) -> int:
    """The Worker actor of the worker process ``worker_pid``: its parent when it was spawned;
    when it was forked (its parent is the fork server), the process its pidfd watches."""
    proc = psutil.Process(worker_pid)
    parent = psutil.Process(proc.ppid())
    if "snakepit_actors.bridge.fork_server" not in parent.cmdline():
        return parent.pid
    for fd in os.listdir(f"/proc/{worker_pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{worker_pid}/fd/{fd}") == "anon_inode:[pidfd]":
                with open(f"/proc/{worker_pid}/fdinfo/{fd}") as info:
                    for line in info:
                        if line.startswith("Pid:"):
                            return int(line.split()[1])
    raise AssertionError(f"forked worker {worker_pid} watches no pidfd")


def is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def no_surviving_children() -> Iterator[None]:
    """Fails the test if a process it started directly (at any depth below this one) is still
    alive afterwards: for tests that spawn worker processes without a pool."""
    before = {p.pid for p in _ME.children(recursive=True)}
    yield
    new = {p.pid for p in _ME.children(recursive=True)} - before
    alive = wait_gone(new, timeout_s=3.0)
    for pid in alive:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    assert not alive, f"processes outlived the test: {alive}"


_LIVE_POOLS: list[Pool] = []


def pool_pids(pool: Pool) -> set[int]:
    """Every process of a pool: its actor system's admin and all its descendants (actors and,
    under the Worker actors, the worker processes)."""
    try:
        admin = psutil.Process(pool.admin_pid)
        return {admin.pid} | {c.pid for c in admin.children(recursive=True)}
    except psutil.Error:
        return set()


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fails the test if a worker or actor process it started is still alive afterwards
    (processes of a module-scoped pool that is still open are not counted)."""
    before = set(project_processes())
    yield
    found = set(project_processes()) - before
    allowed: set[int] = set()
    for pool in _LIVE_POOLS:  # after the scan: a restart forked meanwhile is a pool's too
        allowed |= pool_pids(pool)
    leaked = wait_gone(found - allowed)
    described = {pid: describe_process(pid) for pid in leaked}
    for pid in leaked:  # end only what this test started, by PID, then fail
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    assert not leaked, f"processes outlived the test: {described}"


def describe_process(pid: int) -> str:
    """``pid``'s parent, status and command line (or title), for a failure report."""
    try:
        proc = psutil.Process(pid)
        return f"ppid={proc.ppid()} status={proc.status()} cmd={' '.join(proc.cmdline())[:100]}"
    except psutil.Error:
        return "gone"


@contextlib.contextmanager
def shared_pool(config: PoolConfig) -> Iterator[Pool]:
    """A pool shared by several tests (a module fixture): its processes, restarted ones
    included, are not counted as leaks of a single test; checked for leaks when it closes."""
    pool = Pool.start(config)
    _LIVE_POOLS.append(pool)
    try:
        yield pool
    finally:
        pids = pool_pids(pool)
        _LIVE_POOLS.remove(pool)
        pool.close()
        leaked = wait_gone(pids)
        assert not leaked, f"the shared pool {config.name!r} left processes: {leaked}"


@pytest.fixture(scope="module", params=["direct", "actor"])
def data_path(request: pytest.FixtureRequest) -> str:
    """Each data path of the Python handle in turn (``PoolConfig.data_path``): a test that
    takes this fixture runs once per path; module-scoped, so pytest groups the tests by path
    and a module's shared pool starts once per path."""
    return str(request.param)


@pytest.fixture(scope="module")
def module_pool(data_path: str) -> Iterator[Pool]:
    """A 4-worker showcase pool shared by one test module (once per data path); checked for
    leaks at the end."""
    with shared_pool(PoolConfig(name="test", pool_size=4, queue_timeout=10.0,
                                data_path=data_path)) as pool:  # type: ignore[arg-type]
        yield pool


@pytest.fixture
def actor_system() -> Iterator[Any]:
    """A private actor system (multiprocTCPBase on loopback) for a test of one actor; shut
    down, and its run directory removed, after the test."""
    from snakepit_actors.system import (
        make_run_dir,
        remove_run_dir,
        shutdown_actor_system,
        start_actor_system,
    )

    run_dir = make_run_dir("actor-test")
    started = start_actor_system(SystemConfig(), run_dir)
    try:
        yield started.actor_system
    finally:
        shutdown_actor_system(started)
        remove_run_dir(run_dir)
