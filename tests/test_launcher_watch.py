"""LauncherWatch: if the program that started a pool is SIGKILLed, nothing of the pool survives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from .conftest import wait_gone

pytestmark = pytest.mark.timeout(60)

LAUNCHER = textwrap.dedent("""
    import json, sys, time, psutil
    from snakepit_actors import Pool, PoolConfig
    pool = Pool.start(PoolConfig(name="orphan", pool_size=2))
    admin = psutil.Process(pool.admin_pid)
    pids = [admin.pid] + [c.pid for c in admin.children(recursive=True)]
    print(json.dumps({"pids": pids, "workers": [w.pid for w in pool.workers()]}), flush=True)
    time.sleep(60)
""")

#: Kills LauncherWatches first ("top": the one Pool.start made; "both": the PoolRoot's own, which
#: the PoolRoot restarts, then the top one), then reports like ``LAUNCHER``.
LAUNCHER_KILLING_A_WATCH = textwrap.dedent("""
    import json, os, signal, sys, time, psutil
    from snakepit_actors import Pool, PoolConfig
    from snakepit_actors.system import system_pids
    pool = Pool.start(PoolConfig(name="orphan", pool_size=2))
    admin = psutil.Process(pool.admin_pid)
    logger = system_pids(admin.pid).logger
    tops = [c for c in admin.children() if c.pid != logger]
    [root] = [c for c in tops if c.children()]
    [top_watch] = [c for c in tops if not c.children()]
    if sys.argv[1] == "both":
        os.kill(max(root.children(), key=lambda c: c.pid).pid, signal.SIGKILL)
        time.sleep(0.5)
    os.kill(top_watch.pid, signal.SIGKILL)
    time.sleep(0.5)
    assert pool.execute("ping") == "pong"
    pids = [admin.pid] + [c.pid for c in admin.children(recursive=True)]
    print(json.dumps({"pids": pids, "workers": [w.pid for w in pool.workers()]}), flush=True)
    time.sleep(60)
""")


def test_a_sigkilled_launcher_takes_its_whole_pool_down_within_seconds() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE,
                                text=True, cwd=os.getcwd())
    try:
        line = launcher.stdout.readline() if launcher.stdout else ""
        started = json.loads(line)
        pids = set(started["pids"])
        assert set(started["workers"]) <= pids and len(pids) >= 9
        assert all(psutil.pid_exists(p) for p in pids)
        killed_at = time.monotonic()
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(5)
        survivors = wait_gone(pids, timeout_s=10.0)
        elapsed = time.monotonic() - killed_at
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(5)
    assert survivors == set(), f"survived the launcher: {survivors}"
    assert elapsed < 10.0
    print(f"pool gone {elapsed:.3f} s after the launcher was killed")


@pytest.mark.parametrize("killed", ["top", "both"])
def test_with_launcher_watches_killed_a_sigkilled_launcher_still_takes_its_pool_down(
        killed: str) -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER_KILLING_A_WATCH, killed],
                                stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        line = launcher.stdout.readline() if launcher.stdout else ""
        pids = set(json.loads(line)["pids"])
        assert len(pids) >= 9
        killed_at = time.monotonic()
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(5)
        survivors = wait_gone(pids, timeout_s=10.0)
        elapsed = time.monotonic() - killed_at
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(5)
    assert survivors == set(), f"survived the launcher: {survivors}"
    print(f"{killed} watch killed: pool gone {elapsed:.3f} s after the launcher was killed")
