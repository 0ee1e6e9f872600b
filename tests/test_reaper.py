"""``snakepit_actors.tree.reaper`` (and ``ops.cleanup``): orphans of dead runs are killed, and
nothing else ever is.

Real processes play the parts: a fake worker is ``python -c "..." --run-id RUN --worker-id W``
in its own session, a dead owner is a short-lived process that has exited, an unrelated process
is a ``sleep`` without the marker. Every process a test starts is ended by pid afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakepit_actors.core.process_rows import ProcessIdentity, ProcessRow
from snakepit_actors.ops.cleanup import cleanup_command
from snakepit_actors.tree.process_table import DB_FILENAME, ProcessTable, identify_process
from snakepit_actors.tree.reaper import (
    ProcessFacts,
    has_run_marker,
    judge,
    reap_orphans,
    run_is_over,
    sweep_orphans,
)

pytestmark = pytest.mark.timeout(30)

#: Unique to this session: the reaper scans every process of this user for run markers, and
#: other test sessions on the machine may run workers with simple ids such as "run1".
RUN = f"t{uuid.uuid4().hex[:12]}"

FAKE_WORKER = """\
import signal, subprocess, sys, time
if "ignore_term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "60"]) if "with_child" in sys.argv else None
print(child.pid if child else 0, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Processes:
    """Starts the test's processes and ends every one of them (by pid) afterwards."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []
        self.handles: list[psutil.Process] = []

    def worker(self, run_id: str, worker_id: str = "w1", *flags: str) -> subprocess.Popen[bytes]:
        """A fake worker process (own session) carrying the run and worker markers."""
        proc = self._start([sys.executable, "-c", FAKE_WORKER, "--run-id", run_id,
                            "--worker-id", worker_id, *flags], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        child = int(proc.stdout.readline())  # set up (signal handler, child) and running
        if child:
            self.handles.append(psutil.Process(child))
        return proc

    def unrelated(self) -> subprocess.Popen[bytes]:
        """A live process without any marker."""
        return self._start(["sleep", "60"])

    def dead_owner(self) -> ProcessIdentity:
        """The identity of a process that lived and has exited (and been reaped)."""
        proc = self._start([sys.executable, "-c", "import sys; sys.stdin.read()"],
                           stdin=subprocess.PIPE)
        identity = identify_process(proc.pid)
        assert identity is not None and proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
        return identity

    def _start(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self.started.append(proc)
        self.handles.append(psutil.Process(proc.pid))
        return proc

    def end_all(self) -> None:
        for handle in self.handles:  # identity-checked by psutil: only what we started
            with contextlib.suppress(psutil.Error):
                handle.kill()
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


@pytest.fixture
def procs() -> Iterator[Processes]:
    processes = Processes()
    try:
        yield processes
    finally:
        processes.end_all()
    assert not [h.pid for h in processes.handles if alive(h.pid) and h.is_running()]


@pytest.fixture
def table(tmp_path: Path) -> Iterator[ProcessTable]:
    with ProcessTable(str(tmp_path / DB_FILENAME)) as t:
        yield t


def register(table: ProcessTable, pid: int, run_id: str, owner: ProcessIdentity,
             worker_id: str = "w1", create_time: float | None = None) -> None:
    """Write the two rows a Worker writes (spawning, then spawned)."""
    table.record_spawning(run_id, worker_id, "pool", owner)
    ct = psutil.Process(pid).create_time() if create_time is None else create_time
    table.record_spawned(run_id, worker_id, pid, pid, ct)


def me() -> ProcessIdentity:
    identity = identify_process(os.getpid())
    assert identity is not None
    return identity


# --- killing orphans --------------------------------------------------------------------------

def test_an_orphan_of_a_dead_owner_is_killed_with_its_group_and_its_row_deleted(
        procs: Processes, table: ProcessTable) -> None:
    worker = procs.worker(RUN, "w1", "with_child")
    child = procs.handles[-1]
    register(table, worker.pid, RUN, procs.dead_owner())
    t0 = time.monotonic()
    report = reap_orphans(table)
    elapsed = time.monotonic() - t0
    assert [(o.action, o.reason, o.pid) for o in report.outcomes] == [
        ("killed", "orphan", worker.pid)]
    assert not alive(worker.pid) and not alive(child.pid)  # the whole group
    assert worker.wait(1) == -signal.SIGTERM
    assert elapsed < 2.0 and table.rows() == []


def test_orphans_ignoring_sigterm_are_killed_after_one_shared_grace(
        procs: Processes, table: ProcessTable) -> None:
    owner = procs.dead_owner()
    workers = [procs.worker(RUN, f"w{i}", "ignore_term") for i in range(4)]
    for i, w in enumerate(workers):
        register(table, w.pid, RUN, owner, worker_id=f"w{i}")
    report = reap_orphans(table, grace_s=0.5)
    print(f"\nreaped 4 SIGTERM-ignoring orphans in {report.elapsed_s:.3f} s (grace 0.5 s)")
    assert len(report.killed) == 4 and not report.survived
    assert [w.wait(1) for w in workers] == [-signal.SIGKILL] * 4
    assert 0.5 <= report.elapsed_s < 1.5  # one grace for all, not one per orphan


def test_a_row_still_spawning_is_matched_to_its_process_by_run_and_worker_markers(
        procs: Processes, table: ProcessTable) -> None:
    owner = procs.dead_owner()
    table.record_spawning(RUN, "w1", "pool", owner, now=time.time() - 5)
    table.record_spawning(RUN, "w2", "pool", owner, now=time.time() - 5)  # never spawned
    worker = procs.worker(RUN, "w1")
    other_worker = procs.worker(RUN, "w3")  # same run, no row: not this row's process
    report = reap_orphans(table)
    assert [(o.row.worker_id, o.action, o.reason, o.pid) for o in report.outcomes] == [
        ("w1", "killed", "orphan", worker.pid), ("w2", "removed", "never_spawned", 0)]
    assert not alive(worker.pid) and alive(other_worker.pid)


def test_a_spawning_row_never_claims_a_process_older_than_itself(
        procs: Processes, table: ProcessTable) -> None:
    worker = procs.worker(RUN, "w1")
    table.record_spawning(RUN, "w1", "pool", procs.dead_owner(), now=time.time() + 30)
    (outcome,) = reap_orphans(table).outcomes
    assert (outcome.action, outcome.reason) == ("removed", "pid_reused")
    assert alive(worker.pid)


def test_a_recycled_owner_pid_does_not_keep_a_dead_run_alive(
        procs: Processes, table: ProcessTable) -> None:
    worker = procs.worker(RUN)
    recycled = ProcessIdentity(os.getpid(), me().create_time - 50)  # same pid, another process
    register(table, worker.pid, RUN, recycled)
    assert [o.action for o in reap_orphans(table).outcomes] == ["killed"]
    assert not alive(worker.pid)


def test_a_run_the_caller_ended_is_reaped_although_its_owner_lives(
        procs: Processes, table: ProcessTable) -> None:
    worker = procs.worker(RUN)
    register(table, worker.pid, RUN, me())
    assert [o.action for o in reap_orphans(table, ended_runs={RUN}).outcomes] == ["killed"]
    assert not alive(worker.pid)


# --- never signalling the wrong process -------------------------------------------------------

def test_a_pid_now_held_by_an_unrelated_process_is_never_signalled_and_its_row_goes(
        procs: Processes, table: ProcessTable) -> None:
    stranger = procs.unrelated()  # same pid and create time as the row, but no run marker
    register(table, stranger.pid, RUN, procs.dead_owner())
    (outcome,) = reap_orphans(table, grace_s=0.2).outcomes
    assert (outcome.action, outcome.reason) == ("removed", "no_marker")
    time.sleep(0.2)
    assert alive(stranger.pid) and table.rows() == []


def test_a_process_whose_create_time_differs_is_never_signalled(
        procs: Processes, table: ProcessTable) -> None:
    worker = procs.worker(RUN)  # carries the marker, but is not the process of the row
    ct = psutil.Process(worker.pid).create_time()
    register(table, worker.pid, RUN, procs.dead_owner(), create_time=ct - 60)
    (outcome,) = reap_orphans(table).outcomes
    assert (outcome.action, outcome.reason) == ("removed", "pid_reused")
    assert alive(worker.pid) and table.rows() == []


def test_a_process_of_another_run_is_never_signalled(
        procs: Processes, table: ProcessTable) -> None:
    worker = procs.worker(RUN + "0")  # RUN is a prefix of its run id, not its run id
    register(table, worker.pid, RUN, procs.dead_owner())
    assert [o.reason for o in reap_orphans(table).outcomes] == ["no_marker"]
    assert alive(worker.pid)


def test_a_gone_pid_only_loses_its_row(procs: Processes, table: ProcessTable) -> None:
    owner = procs.dead_owner()
    gone = procs.dead_owner()
    table.record_spawning(RUN, "w1", "pool", owner)
    table.record_spawned(RUN, "w1", gone.pid, gone.pid, gone.create_time)
    assert [(o.action, o.reason) for o in reap_orphans(table).outcomes] == [
        ("removed", "pid_gone")]
    assert table.rows() == []


def test_rows_of_a_live_owner_are_not_touched(procs: Processes, table: ProcessTable) -> None:
    worker = procs.worker(RUN)
    register(table, worker.pid, RUN, me())
    table.record_spawning(RUN, "w2", "pool", me())
    before = table.rows()
    report = reap_orphans(table)
    assert [(o.action, o.reason) for o in report.outcomes] == [("kept", "owner_alive")] * 2
    assert alive(worker.pid) and table.rows() == before


def test_rows_of_another_host_are_not_judged(procs: Processes, table: ProcessTable) -> None:
    worker = procs.worker(RUN)
    register(table, worker.pid, RUN, procs.dead_owner())
    (outcome,) = reap_orphans(table, host="another-host").outcomes
    assert (outcome.action, outcome.reason) == ("kept", "other_host")
    assert alive(worker.pid) and len(table.rows()) == 1


def test_a_dry_run_signals_and_deletes_nothing(procs: Processes, table: ProcessTable) -> None:
    owner = procs.dead_owner()
    worker, stranger = procs.worker(RUN), procs.unrelated()
    register(table, worker.pid, RUN, owner)
    register(table, stranger.pid, RUN, owner, worker_id="w2")
    report = reap_orphans(table, dry_run=True)
    assert [o.action for o in report.outcomes] == ["would_kill", "would_remove"]
    assert alive(worker.pid) and alive(stranger.pid) and len(table.rows()) == 2


# --- the pure decision ------------------------------------------------------------------------

ROW = ProcessRow("run1", "w1", "pool", "running", 100, 100, 50.0, 7, 10.0, "h", 49.0, 50.0)
FACTS = ProcessFacts(100, 50.0, 0, 100, ("python", "--run-id", "run1"))


def test_markers_are_exact_in_argv_or_in_the_environment() -> None:
    def facts(argv: tuple[str, ...], run: str | None = None, wid: str | None = None
              ) -> ProcessFacts:
        return ProcessFacts(1, 1.0, 0, 1, argv, run, wid)

    assert has_run_marker(facts(("x", "--run-id", "r1")), "r1")
    assert has_run_marker(facts(("x", "--run-id=r1")), "r1")
    assert has_run_marker(facts(("x",), run="r1", wid="w1"), "r1", "w1")
    assert not has_run_marker(facts(("x", "--run-id", "r10")), "r1")
    assert not has_run_marker(facts(("x", "r1", "--run-id")), "r1")
    assert not has_run_marker(facts(("x", "--run-id", "r1", "--worker-id", "w2")), "r1", "w1")
    assert not has_run_marker(facts(("x", "--run-id", "")), "")


def test_the_owner_is_alive_only_with_its_create_time() -> None:
    assert not run_is_over(ROW, ProcessIdentity(7, 10.4))
    assert run_is_over(ROW, ProcessIdentity(7, 30.0))
    assert run_is_over(ROW, None)


rows = st.builds(
    ProcessRow, run_id=st.sampled_from(["run1", "", "run10"]), worker_id=st.just("w1"),
    pool_name=st.just("pool"), state=st.sampled_from(["spawning", "running"]),
    pid=st.sampled_from([0, 100]), pgid=st.sampled_from([0, 100, 101]),
    create_time=st.sampled_from([0.0, 50.0, 51.0, 60.0]), owner_pid=st.sampled_from([0, 7]),
    owner_create_time=st.sampled_from([0.0, 10.0]), host=st.sampled_from(["h", "other"]),
    created_at=st.sampled_from([40.0, 49.0, 70.0]), updated_at=st.just(50.0))
facts = st.builds(
    ProcessFacts, pid=st.sampled_from([100, 101]), create_time=st.sampled_from([30.0, 50.0, 50.9]),
    uid=st.sampled_from([0, 1000]), pgid=st.sampled_from([100, 101]),
    cmdline=st.sampled_from([(), ("py", "--run-id", "run1"), ("py", "--run-id", "run10"),
                             ("py", "--run-id", "run1", "--worker-id", "w1")]),
    run_id_env=st.sampled_from([None, "run1"]), worker_id_env=st.sampled_from([None, "w1"]),
    zombie=st.booleans())


@settings(max_examples=500, deadline=None)
@given(row=rows, owner=st.none() | st.builds(ProcessIdentity, st.just(7),
                                             st.sampled_from([10.0, 10.9, 99.0])),
       process=st.none() | facts, run_ended=st.booleans())
def test_judge_kills_only_a_verified_process_of_an_ended_run(
        row: ProcessRow, owner: ProcessIdentity | None, process: ProcessFacts | None,
        run_ended: bool) -> None:
    verdict = judge(row, owner=owner, process=process, host="h", uid=0, run_ended=run_ended)
    if row.host != "h" or not (run_ended or run_is_over(row, owner)):
        assert verdict.action == "keep"
    if verdict.action != "kill":
        assert not verdict.signal_group
        return
    assert process is not None and not process.zombie and process.uid == 0 and row.run_id
    assert has_run_marker(process, row.run_id)
    if row.pid > 0:
        assert process.pid == row.pid and abs(process.create_time - row.create_time) <= 1.5
    else:
        assert process.create_time >= row.created_at - 1.5
        assert has_run_marker(process, row.run_id, row.worker_id)
    if verdict.signal_group:
        assert process.pgid == process.pid and (row.pid <= 0 or row.pgid == row.pid)


def test_judge_explains_each_refusal() -> None:
    dead = None
    assert judge(ROW, owner=dead, process=FACTS, host="h", uid=0).action == "kill"
    assert judge(ROW, owner=dead, process=FACTS, host="h", uid=1).reason == "other_user"
    zombie = ProcessFacts(100, 50.0, 0, 100, (), zombie=True)
    assert judge(ROW, owner=dead, process=zombie, host="h", uid=0).reason == "pid_gone"
    moved = ProcessFacts(100, 50.0, 0, 7, ("python", "--run-id", "run1"))
    verdict = judge(ROW, owner=dead, process=moved, host="h", uid=0)
    assert (verdict.action, verdict.signal_group) == ("kill", False)  # not its group's leader


# --- entry points -----------------------------------------------------------------------------

def test_cleanup_prints_a_table_and_a_missing_table_is_not_created(tmp_path: Path) -> None:
    out = StringIO()
    assert cleanup_command(str(tmp_path / "nothing"), dry_run=False, as_json=False, out=out) == 0
    assert "(0 rows)" in out.getvalue() and not (tmp_path / "nothing").exists()


def test_cleanup_reaps_and_reports_json(procs: Processes, tmp_path: Path) -> None:
    with ProcessTable(str(tmp_path / DB_FILENAME)) as table:
        worker = procs.worker(RUN)
        register(table, worker.pid, RUN, procs.dead_owner())
    out = StringIO()
    assert cleanup_command(str(tmp_path), dry_run=True, as_json=False, out=out) == 0
    assert "would_kill" in out.getvalue() and "dry run" in out.getvalue()
    assert alive(worker.pid)
    out = StringIO()
    assert cleanup_command(str(tmp_path), dry_run=False, as_json=True, out=out) == 0
    data = json.loads(out.getvalue())
    assert (data["killed"], data["outcomes"][0]["pid"]) == (1, worker.pid)
    assert not alive(worker.pid)


def test_a_broken_table_fails_cleanup_with_code_2_and_sweeping_quietly(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_bytes(b"this is not a database" * 100)
    assert cleanup_command(str(tmp_path), dry_run=False, as_json=False, out=StringIO()) == 2
    assert sweep_orphans(str(tmp_path / DB_FILENAME)) is None


def test_sweeping_creates_the_table_and_reaps(procs: Processes, tmp_path: Path) -> None:
    db = str(tmp_path / "new" / DB_FILENAME)
    report = sweep_orphans(db)
    assert report is not None and report.outcomes == () and os.path.exists(db)


def test_judging_many_stale_rows_is_fast(procs: Processes, table: ProcessTable) -> None:
    owner = procs.dead_owner()
    for i in range(50):
        register(table, os.getpid(), RUN, owner, worker_id=f"w{i}", create_time=1.0)
    report = reap_orphans(table)
    print(f"\nreap of 50 stale rows (nothing to kill): {report.elapsed_s * 1e3:.1f} ms")
    assert len(report.removed) == 50 and report.elapsed_s < 2.0
