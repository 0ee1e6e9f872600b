"""Specifications of ``snakepit_supervision.lifetime`` and of the runnable example."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import wait_dead

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "supervision"  # the folder that holds the snakepit_supervision package

ORPHAN_SCRIPT = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from snakepit_supervision.lifetime import die_with_parent
parent = os.getpid()
child = os.fork()
if child == 0:
    die_with_parent(parent)
    time.sleep(30)
    os._exit(0)
print(child, flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_process_that_asked_gets_sigterm_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(SRC)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait(5)
    assert not wait_dead([child], timeout_s=3.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_process_whose_parent_is_already_gone_signals_itself() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(SRC)!r}); import time;"
        "from snakepit_supervision.lifetime import die_with_parent; die_with_parent(-1);"
        "time.sleep(5)"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=10)
    assert proc.returncode == -signal.SIGTERM


def test_die_with_parent_without_an_expected_parent_only_arms_the_signal() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(SRC)!r});"
        "from snakepit_supervision.lifetime import die_with_parent; print(die_with_parent())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.strip() == str(sys.platform.startswith("linux"))


def test_the_example_heals_a_killed_worker_and_leaves_no_process() -> None:
    example = ROOT / "docs" / "examples" / "supervision_tree.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=45, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for expected in ("worker-1 exited (crashed)", "registry: forgot worker-1", "is back as pid"):
        assert expected in done.stdout
    leftovers = [
        p.pid for p in psutil.process_iter(["cmdline"]) if str(example) in (p.info["cmdline"] or [])
    ]
    assert not wait_dead(leftovers)  # wait_dead counts zombies as gone
