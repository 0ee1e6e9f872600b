"""The per-worker control plane shares what its actors need instead of copying it
(``snakepit_actors/tree/fork_warmup.py``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.proctitle import TITLE_PREFIX

pytestmark = pytest.mark.timeout(90)


def test_warming_imports_grpc_and_the_worker_modules_but_starts_no_grpc_thread() -> None:
    code = ("import gc, os, sys; from snakepit_actors.tree.fork_warmup import warm_for_workers;"
            " warm_for_workers(); "
            "print(len(os.listdir('/proc/self/task')), gc.get_freeze_count() > 0, "
            "'grpc' in sys.modules, 'snakepit_actors.tree.worker' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == ["1", "True", "True", "True"]


def test_the_launcher_collects_its_own_objects_again_once_the_system_started() -> None:
    import gc

    with Pool.start(PoolConfig(name="warm-launcher", pool_size=1)) as pool:
        assert pool.execute("echo", {"x": 1}) == {"x": 1}
        assert gc.get_freeze_count() == 0


#: Run in a fresh interpreter: fork hooks that other tests' libraries registered in the pytest
#: process (OpenTelemetry's SDK restarts its executors after a fork) would run in every forked
#: actor too and add threads that are not gRPC's.
_THREADS_OF_FORKING_ACTORS = f"""
import json, psutil
from snakepit_actors import Pool, PoolConfig
with Pool.start(PoolConfig(name="warm-tree", pool_size=2)) as pool:
    assert pool.execute("echo", {{"x": 1}}) == {{"x": 1}}
    admin = psutil.Process(pool.admin_pid)
    print(json.dumps([p.num_threads() for p in admin.children(recursive=True)
                      if any("{TITLE_PREFIX}" + role + " " in " ".join(p.cmdline())
                             for role in ("PoolRoot", "WorkerSupervisor", "Starter"))]))
"""


def test_the_actors_that_fork_workers_hold_grpc_unstarted() -> None:
    """PoolRoot, WorkerSupervisor and Starters imported grpc for their children and run no
    thread of it: one thread each (gRPC starts its threads with the first channel)."""
    out = subprocess.run([sys.executable, "-c", _THREADS_OF_FORKING_ACTORS],
                         capture_output=True, text=True, check=True, timeout=80)
    threads = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(threads) == 4
    assert all(n == 1 for n in threads), threads
