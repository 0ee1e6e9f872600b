"""Process titles by role: ``ps`` shows ``snakepit-actors: Worker w1 (pool p)`` for actor
processes (with the optional setproctitle installed), never renames the launching program, and
leaves worker processes their command line (``cleanup`` identifies orphans by it)."""

from __future__ import annotations

import importlib.util
import sys

import psutil
import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.proctitle import TITLE_PREFIX, name_process, process_title

pytestmark = pytest.mark.timeout(60)


def test_a_title_names_the_role_the_worker_and_the_pool() -> None:
    assert process_title("Worker", worker="p_worker_1", pool="p") == (
        "snakepit-actors: Worker p_worker_1 (pool p)")
    assert process_title("Pool", pool="p") == "snakepit-actors: Pool (pool p)"
    assert process_title("LauncherWatch") == "snakepit-actors: LauncherWatch"


def test_the_launching_program_keeps_its_own_title() -> None:
    before = psutil.Process().cmdline()
    assert name_process("Pool", pool="p") is False
    assert psutil.Process().cmdline() == before


@pytest.mark.skipif(importlib.util.find_spec("setproctitle") is None,
                    reason="setproctitle is not installed: titles are off (a dependency; "
                           "the pool works without it)")
def test_actor_processes_show_their_role_and_workers_keep_their_command_line() -> None:
    with Pool.start(PoolConfig(name="titled", pool_size=1, start_method="spawn")) as pool:
        (info,) = pool.workers()
        bridge = psutil.Process(info.pid)
        worker = bridge.parent()
        assert worker is not None
        starter = worker.parent()
        assert starter is not None
        assert worker.cmdline()[0] == f"{TITLE_PREFIX}Worker titled_worker_1 (pool titled)"
        assert starter.cmdline()[0] == f"{TITLE_PREFIX}Starter titled_worker_1 (pool titled)"
        titles = {p.cmdline()[0] for p in psutil.Process(pool.admin_pid).children(True)}
        for role in ("PoolRoot", "Pool", "WorkerSupervisor"):
            assert f"{TITLE_PREFIX}{role} (pool titled)" in titles, titles
        argv = bridge.cmdline()
        assert argv[0] == sys.executable and "snakepit_actors.bridge" in argv
        assert "--worker-id" in argv and "SNAKEPIT_RUN_ID" in bridge.environ()
