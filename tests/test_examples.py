"""The runnable examples under docs/ run and say what the docs say they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(90)


def run_example(name: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / name)],
                          capture_output=True, text=True, timeout=80, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_message_api_example_runs_three_requests_through_an_embedded_pool() -> None:
    out = run_example("message_api.py")
    assert "'r1': {'x': 1}" in out and "'r2': 5" in out and "ToolError: ValueError: no" in out


def test_the_supervision_tree_example_restarts_a_killed_child_and_exits_cleanly() -> None:
    out = run_example("supervision_tree.py")
    assert "restart" in out.lower()


def test_the_demo_command_exits_0_and_shows_the_crash_recovery() -> None:
    done = subprocess.run([sys.executable, "-m", "snakepit_actors.ops.cli", "demo"],
                          capture_output=True, text=True, timeout=80, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    for text in ("echo", "add 2 + 3", "ToolError", "WorkerCrashedError", "restarted",
                 "every actor and worker process stopped"):
        assert text in done.stdout
    assert "workers ready 4/4" in done.stderr  # start-up progress, off the results' stream
    assert "worker.exited" not in done.stderr + done.stdout  # the demo tells the crash itself
    assert not [line for line in done.stderr.splitlines() if line.startswith("{")]


def test_the_example_node_file_is_valid() -> None:
    from snakepit_actors.ops.config_file import load_node_file

    node_file = load_node_file(ROOT / "docs" / "examples" / "pool.toml")
    assert [p.name for p in node_file.pools] == ["default", "slow_start"]
    assert node_file.pool("default").worker_max_requests == 10000


def test_the_fanout_example_maps_submits_cancels_and_awaits() -> None:
    out = run_example("fanout.py")
    assert "sum of 10,000 adds: 50005000" in out and "per item: [3, 'ToolError']" in out
    assert "as completed: [0.0, 0.1, 0.2]" in out and "cancelled while queued: True" in out
    assert "submit_async: 5" in out
