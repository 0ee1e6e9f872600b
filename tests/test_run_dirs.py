"""Run directories of dead runs: the pure ``judge_run_dir`` and the sweep that removes them."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.core.process_rows import ProcessIdentity
from snakepit_actors.core.run_dirs import (
    RUN_DIR_MARKER,
    RunDirEntry,
    RunDirMarker,
    judge_run_dir,
)
from snakepit_actors.ops.cleanup import cleanup_command
from snakepit_actors.system import make_run_dir
from snakepit_actors.tree import reaper
from snakepit_actors.tree.run_dirs import reap_run_dirs

from .conftest import wait_gone

pytestmark = pytest.mark.timeout(90)

UID = os.getuid()
OWNER = ProcessIdentity(4242, 1_700_000_000.0)
MARKER = RunDirMarker(OWNER, UID)


def entry(name: str = "sp-demo-abcd_123", **changes: object) -> RunDirEntry:
    fields: dict[str, object] = {"name": name, "is_dir": True, "uid": UID, "marker": MARKER}
    fields.update(changes)
    return RunDirEntry(**fields)  # type: ignore[arg-type]


# --- the pure decision ---------------------------------------------------------------------------

def test_a_run_directory_whose_owner_is_gone_is_removed() -> None:
    assert judge_run_dir(entry(), owner=None, uid=UID).action == "remove"


def test_a_run_directory_whose_owner_pid_was_reused_is_removed() -> None:
    reused = ProcessIdentity(OWNER.pid, OWNER.create_time + 60)
    assert judge_run_dir(entry(), owner=reused, uid=UID).reason == "dead_run"


def test_a_run_directory_whose_owner_lives_is_kept() -> None:
    verdict = judge_run_dir(entry(), owner=OWNER, uid=UID)
    assert (verdict.action, verdict.reason) == ("keep", "owner_alive")


@pytest.mark.parametrize("changes", [
    {"name": "tmpabcd1234"}, {"name": "sp-demo-abcd123"}, {"name": "sp-demo-ABCD1234"},
    {"is_dir": False}, {"uid": UID + 1}, {"marker": None},
    {"marker": RunDirMarker(OWNER, UID + 1)},
])
def test_an_entry_that_does_not_prove_it_is_our_run_directory_is_kept(
        changes: dict[str, object]) -> None:
    verdict = judge_run_dir(entry(**changes), owner=None, uid=UID)
    assert (verdict.action, verdict.reason) == ("keep", "not_ours")


@given(name=st.text(max_size=30), is_dir=st.booleans(), uid=st.integers(0, 3),
       marker_uid=st.none() | st.integers(0, 3), owner_alive=st.booleans(),
       drift_s=st.floats(-5, 5))
def test_judge_never_removes_unless_every_condition_holds(
        name: str, is_dir: bool, uid: int, marker_uid: int | None, owner_alive: bool,
        drift_s: float) -> None:
    marker = None if marker_uid is None else RunDirMarker(OWNER, marker_uid)
    owner = ProcessIdentity(OWNER.pid, OWNER.create_time + drift_s) if owner_alive else None
    verdict = judge_run_dir(RunDirEntry(name, is_dir, uid, marker), owner=owner, uid=1)
    if verdict.action == "remove":
        assert name.startswith("sp-") and is_dir and uid == 1 and marker_uid == 1
        assert owner is None or abs(drift_s) > 1.5


def test_a_marker_round_trips_and_garbage_is_no_marker() -> None:
    assert RunDirMarker.from_text(MARKER.to_text()) == MARKER
    for text in ("", "{}", "[1]", '{"owner_pid": 0, "owner_create_time": 1, "uid": 0}', "\x00"):
        assert RunDirMarker.from_text(text) is None


# --- the sweep -----------------------------------------------------------------------------------

@pytest.fixture()
def temp_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sprd-")  # short: worker sockets live below it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _dead_owner_run_dir(temp_dir: str, name: str = "dead") -> str:
    """A run directory made by a process that has exited since."""
    code = ("import sys; from snakepit_actors.system import make_run_dir;"
            " print(make_run_dir(sys.argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True,
                         check=True, env={**os.environ, "TMPDIR": temp_dir}, timeout=30)
    return out.stdout.strip()


def test_make_run_dir_writes_a_marker_naming_this_process(temp_dir: str) -> None:
    tempfile.tempdir, saved = temp_dir, tempfile.tempdir
    try:
        path = make_run_dir("mine")
    finally:
        tempfile.tempdir = saved
    with open(os.path.join(path, RUN_DIR_MARKER)) as f:
        marker = RunDirMarker.from_text(f.read())
    assert marker is not None and marker.owner.pid == os.getpid() and marker.uid == UID
    assert reap_run_dirs(temp_dir).removed == ()
    assert os.path.isdir(path)


def test_the_sweep_removes_a_dead_runs_directory_and_its_contents(temp_dir: str) -> None:
    path = _dead_owner_run_dir(temp_dir)
    os.makedirs(os.path.join(path, "sub"))
    with open(os.path.join(path, "sub", "w1.log"), "w") as f:
        f.write("log")
    report = reap_run_dirs(temp_dir)
    assert [(o.path, o.action) for o in report.outcomes] == [(path, "removed")]
    assert not os.path.exists(path)


def test_a_dry_run_removes_nothing(temp_dir: str) -> None:
    path = _dead_owner_run_dir(temp_dir)
    assert [o.action for o in reap_run_dirs(temp_dir, dry_run=True).outcomes] == ["would_remove"]
    assert os.path.isdir(path)


def test_the_sweep_never_follows_a_symlink(temp_dir: str) -> None:
    victim = _dead_owner_run_dir(temp_dir, "victim")
    os.rename(victim, os.path.join(temp_dir, "elsewhere"))
    victim = os.path.join(temp_dir, "elsewhere")
    os.symlink(victim, os.path.join(temp_dir, "sp-link-abcd1234"))  # a link named like ours
    inner = _dead_owner_run_dir(temp_dir, "inner")
    os.symlink(victim, os.path.join(inner, "link"))  # a link inside a dead run's directory
    report = reap_run_dirs(temp_dir)
    assert {os.path.basename(o.path): o.action for o in report.outcomes} == {
        "sp-link-abcd1234": "kept", os.path.basename(inner): "removed"}
    assert os.path.isfile(os.path.join(victim, RUN_DIR_MARKER))


def test_a_directory_without_a_marker_is_never_removed(temp_dir: str) -> None:
    path = tempfile.mkdtemp(prefix="sp-nomarker-", dir=temp_dir)
    assert [o.reason for o in reap_run_dirs(temp_dir).outcomes] == ["not_ours"]
    assert os.path.isdir(path)


def test_a_start_sweep_removes_dead_run_directories_and_a_run_sweep_does_not(
        temp_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", temp_dir)
    db = os.path.join(temp_dir, "processes.sqlite3")
    path = _dead_owner_run_dir(temp_dir)
    assert reaper.sweep_orphans(db, ended_runs={"abc"}) is not None
    assert os.path.isdir(path)
    assert reaper.sweep_orphans(db) is not None
    assert not os.path.exists(path)


LAUNCHER = textwrap.dedent("""
    import json, time, psutil
    from snakepit_actors import Pool, PoolConfig
    pool = Pool.start(PoolConfig(name="rundir", pool_size=1))
    admin = psutil.Process(pool.admin_pid)
    pids = [admin.pid] + [c.pid for c in admin.children(recursive=True)]
    print(json.dumps({"pids": pids, "run_dir": pool._run_dir}), flush=True)
    time.sleep(60)
""")


def test_after_a_sigkilled_launcher_the_sweep_removes_its_run_dir_but_not_a_live_pools(
        temp_dir: str) -> None:
    env = {**os.environ, "TMPDIR": temp_dir}
    launchers = [subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE,
                                  text=True, env=env) for _ in range(2)]
    started: list[dict[str, object]] = []
    try:
        started += [json.loads(p.stdout.readline()) for p in launchers]  # type: ignore[union-attr]
        dead, live = started
        launchers[0].send_signal(signal.SIGKILL)
        launchers[0].wait(5)
        assert wait_gone(set(dead["pids"]), timeout_s=15.0) == set()
        assert os.path.isdir(dead["run_dir"])  # nothing removed it: the launcher was killed
        report = reap_run_dirs(temp_dir)
        assert {o.path: o.action for o in report.outcomes} == {
            dead["run_dir"]: "removed", live["run_dir"]: "kept"}
        assert not os.path.exists(dead["run_dir"]) and os.path.isdir(live["run_dir"])
    finally:
        for p in launchers:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(5)
        wait_gone({pid for s in started for pid in s["pids"]}, timeout_s=15.0)  # type: ignore[attr-defined]


def test_cleanup_removes_dead_run_directories_and_reports_them(
        temp_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", temp_dir)
    path = _dead_owner_run_dir(temp_dir)
    out = io.StringIO()
    assert cleanup_command(os.path.join(temp_dir, "data"), dry_run=True, as_json=False,
                           out=out) == 0
    assert "run directories of dead runs: 1 would remove" in out.getvalue()
    out = io.StringIO()
    assert cleanup_command(os.path.join(temp_dir, "data"), dry_run=False, as_json=True,
                           out=out) == 0
    [reported] = json.loads(out.getvalue())["run_dirs"]
    assert (reported["path"], reported["action"], reported["reason"]) == (
        path, "removed", "dead_run")
    assert not os.path.exists(path)
