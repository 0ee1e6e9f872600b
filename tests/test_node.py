"""A node (``snakepit-actors start --config``) seen from other processes: status shows every
actor and worker, exec runs tools, logs are JSON lines with context, SIGTERM drains and leaves
no process, config errors name the key. Real processes, loopback only."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from snakepit_actors.system import free_port
from tests.multihost import terminate

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snakepit_actors.ops.cli", *args],
                          capture_output=True, text=True, timeout=timeout, env=_env())


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


class RunningNode:
    def __init__(self, config: Path, stderr: Path, *options: str) -> None:
        self.config = config
        self.stderr_path = stderr
        self._err = open(stderr, "w")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snakepit_actors.ops.cli", "start", "--config", str(config),
             *options],
            stdout=subprocess.PIPE, stderr=self._err, text=True, env=_env())
        self.out: list[str] = []
        # A reader thread, not select() + readline(): readline() may buffer several lines at
        # once, after which select() sees an empty pipe and the buffered lines are never read.
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # closed by stop()
            for line in self.proc.stdout:
                self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, text: str, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if line is None:
                break
            self.out.append(line)
            if text in line:
                return line
        raise AssertionError(f"node never printed {text!r}: {self.out} "
                             f"{self.stderr_path.read_text()[-2000:]}")

    def stop(self) -> None:
        terminate(self.proc)
        self._err.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr_path.read_text().splitlines()
                if line.startswith("{")]


def node_toml(port: int, extra: str = "", level: str = "info") -> str:
    return f"""
[node]
name = "testnode"
admin_port = {port}
log_format = "json"
log_level = "{level}"
drain_timeout_s = 10

[pools.default]
pool_size = 2

[pools.second]
pool_size = 1
data_path = "actor"
{extra}"""


N = TypeVar("N", bound=RunningNode)


def start_on_free_ports(config: Path, text: Callable[[], str], start: Callable[[], N],
                        ready: Callable[[N], object] = lambda n: n.wait_for("ready on")) -> N:
    """Write ``text()`` (fresh free ports each call) to ``config``, ``start()`` the node and
    wait until it is ``ready``; again, up to 3 times, when a free port was taken by another
    test runner before the node bound it."""
    for attempt in range(3):
        config.write_text(text())
        running = start()
        try:
            ready(running)
            return running
        except AssertionError:
            running.stop()
            if attempt == 2 or "is in use" not in running.stderr_path.read_text():
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    config = tmp_path / "pool.toml"
    running = start_on_free_ports(
        config, lambda: node_toml(free_port(), level="debug").replace(
            "drain_timeout_s = 10", f"drain_timeout_s = 10\nmetrics_port = {free_port()}"),
        lambda: RunningNode(config, tmp_path / "node.err"))
    try:
        yield running
    finally:
        running.stop()


def all_pids(report: dict[str, Any]) -> set[int]:
    pids = {report["node_pid"]}

    def walk(n: dict[str, Any]) -> None:
        if n.get("pid"):
            pids.add(n["pid"])
        if "process" in n:
            pids.add(n["process"]["pid"])
        for c in n["children"]:
            walk(c)

    for pool in report["pools"]:
        walk(pool["tree"])
        pids |= {w["pid"] for w in pool["workers"]}
    return pids


def test_status_from_another_process_shows_every_pool_actor_and_worker(
        node: RunningNode) -> None:
    t0 = time.perf_counter()
    done = cli("status", "--config", str(node.config), "--json")
    took = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["node"] == "testnode" and report["node_pid"] == node.proc.pid
    pools = {p["name"]: p for p in report["pools"]}
    assert set(pools) == {"default", "second"}
    for name, size in (("default", 2), ("second", 1)):
        pool = pools[name]
        assert pool["state"] == "ready" and pool["stats"]["workers"] == size
        assert [w["worker_id"] for w in pool["workers"]] == [
            f"{name}_worker_{i}" for i in range(1, size + 1)]
        for w in pool["workers"]:
            assert psutil.pid_exists(w["pid"]) and w["rss_mb"] > 5 and w["uptime_s"] >= 0
        tree = pool["tree"]
        assert tree["actor"] == "PoolRoot" and tree["pid"]
        kinds = [c["actor"] for c in tree["children"]]
        assert {"Pool", "WorkerSupervisor", "WorkerRegistry", "ProcessRegistry"} <= set(kinds)
        (sup,) = [c for c in tree["children"] if c["actor"] == "WorkerSupervisor"]
        assert [s["id"] for s in sup["children"]] == [w["worker_id"] for w in pool["workers"]]
        for starter in sup["children"]:
            (worker,) = starter["children"]
            assert worker["actor"] == "Worker" and worker["pid"] and worker["restarts"] == 0
            assert worker["process"]["pid"] in {w["pid"] for w in pool["workers"]}
    text = cli("status", "--port", str(report["admin_port"]), "--pool", "second")
    assert text.returncode == 0 and "second_worker_1" in text.stdout
    assert "default_worker_1" not in text.stdout
    by_name = cli("status", "--name", "testnode")
    assert by_name.returncode == 0 and "default_worker_2" in by_name.stdout
    missing = cli("status", "--name", "nonode")
    assert missing.returncode == 4 and "no running node named 'nonode'" in missing.stderr
    print(f"\nstatus --json of a 2-pool node: {took * 1000:.0f} ms (whole CLI process)")


def test_exec_runs_a_tool_on_the_named_pool_and_prints_json(node: RunningNode) -> None:
    done = cli("exec", "--config", str(node.config), "echo", '{"a": 1}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"a": 1}
    info = cli("exec", "--config", str(node.config), "--pool", "second", "info")
    assert json.loads(info.stdout)["worker_id"] == "second_worker_1"
    failed = cli("exec", "--config", str(node.config), "fail", '{"message": "nope"}')
    assert failed.returncode == 1 and "ToolError" in failed.stderr
    as_json = cli("exec", "--config", str(node.config), "--json", "fail", '{"message": "no"}')
    error = json.loads(as_json.stdout)["error"]
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["exit_code"] == 1
    assert (error["type"], error["category"], error["details"]["type"]) == (
        "ToolError", "tool", "ValueError")
    unknown = cli("exec", "--config", str(node.config), "--pool", "nope", "echo")
    assert unknown.returncode == 2 and "pools: ['default', 'second']" in unknown.stderr


def test_recycle_from_the_shell_replaces_the_process_and_status_shows_it(
        node: RunningNode) -> None:
    def pid() -> int:
        report = json.loads(cli("status", "--config", str(node.config), "--pool", "second",
                                "--json").stdout)
        return int(report["pools"][0]["workers"][0]["pid"])

    before = pid()
    done = cli("recycle", "--config", str(node.config), "--pool", "second", "second_worker_1")
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while pid() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid() != before and not _alive(before)
    refused = cli("recycle", "--config", str(node.config), "--pool", "second", "nope")
    assert refused.returncode == 1 and "no worker 'nope'" in refused.stderr


def test_log_lines_are_json_with_context_and_the_metrics_endpoint_counts_the_calls(
        node: RunningNode) -> None:
    for _ in range(3):
        assert cli("exec", "--config", str(node.config), "--pool", "second", "echo",
                   '{"x": 1}').returncode == 0
    deadline = time.monotonic() + 10
    completed: list[dict[str, Any]] = []
    while not completed and time.monotonic() < deadline:
        time.sleep(0.2)
        completed = [e for e in node.log_events() if e["event"] == "request.completed"]
    assert completed, node.stderr_path.read_text()[-2000:]
    event = completed[0]
    assert event["worker_id"] == "second_worker_1" and event["request_id"]
    assert event["pool"] == "second" and event["node"] == "testnode"
    assert event["duration_ms"] >= 0 and event["level"] == "debug" and event["timestamp"]
    ready = [e for e in node.log_events() if e["event"] == "worker.ready"]
    assert {e["worker_id"] for e in ready} == {"default_worker_1", "default_worker_2",
                                               "second_worker_1"}
    # the worker processes' own output (here the bridge's start-up line), with their ids
    output = [e for e in node.log_events() if e["event"] == "worker.output"]
    assert {e["worker_id"] for e in output} >= {"default_worker_1", "second_worker_1"}
    assert any(e.get("worker_event") == "bridge.ready" for e in output)  # parsed, not a string
    port = int(node.config.read_text().split("metrics_port = ")[1].split()[0])
    want = 'snakepit_requests_total{node="testnode",pool="second"} 3.0'
    text = ""
    while want not in text and time.monotonic() < deadline + 10:  # refreshed every 2 s
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        time.sleep(0.2)
    assert want in text, text
    assert 'snakepit_workers{node="testnode",pool="default"} 2.0' in text


def test_sigterm_drains_in_flight_requests_and_leaves_no_process(node: RunningNode) -> None:
    report = json.loads(cli("status", "--config", str(node.config), "--json").stdout)
    pids = all_pids(report)
    slow = subprocess.Popen([sys.executable, "-m", "snakepit_actors.ops.cli", "exec", "--config",
                             str(node.config), "sleep", '{"seconds": 3}'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the request runs on a worker
        status = json.loads(cli("status", "--config", str(node.config), "--json").stdout)
        if any(p["stats"]["busy"] for p in status["pools"]):
            break
    t0 = time.perf_counter()
    node.proc.send_signal(signal.SIGTERM)
    out, err = slow.communicate(timeout=30)
    assert slow.returncode == 0, err
    assert json.loads(out) == 3
    assert node.proc.wait(30) == 0
    drain_s = time.perf_counter() - t0
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = {p for p in pids if _alive(p)}
        time.sleep(0.1)
    assert not alive, f"left running after SIGTERM: {alive}"
    events = [e["event"] for e in node.log_events()]
    assert "node.draining" in events and events[-1] == "node.stopped"
    print(f"\nSIGTERM with a 3 s request running: node gone after {drain_s:.2f} s, "
          f"{len(pids)} processes checked")


def _alive(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def test_a_bad_config_file_fails_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "pool.toml"
    config.write_text(node_toml(free_port(), extra="[pools.third]\npool_size = 0\n"))
    done = cli("start", "--config", str(config))
    assert done.returncode == 3
    assert "pools.third.pool_size must be an int in 1..512, got 0" in done.stderr


def test_status_without_a_running_node_says_how_to_start_one(tmp_path: Path) -> None:
    done = cli("status", "--port", str(free_port()))
    assert done.returncode == 4 and "snakepit-actors start --config" in done.stderr


def test_doctor_checks_the_configured_pools_and_suggests_fixes(tmp_path: Path) -> None:
    config = tmp_path / "pool.toml"
    config.write_text(node_toml(free_port(), extra='[pools.broken]\nadapter = "nope.mod:X"\n'))
    done = cli("doctor", "--config", str(config), "--json")
    assert done.returncode == 1, done.stdout
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["interpreter"]["level"] == "ok"
    assert checks["pool default: grpc"]["level"] == "ok"
    assert checks["pool default: adapter"]["level"] == "ok"
    assert checks["pool broken: adapter"]["level"] == "fail"
    assert "nope" in checks["pool broken: adapter"]["fix"]
    assert checks["admin_port"]["level"] == "ok" and checks["data dir"]["level"] == "ok"
    assert checks["orphans"]["level"] in ("ok", "warn")


def test_cleanup_finds_the_data_dir_through_the_config(tmp_path: Path) -> None:
    config = tmp_path / "pool.toml"
    config.write_text(node_toml(free_port()).replace(
        'name = "testnode"', f'name = "testnode"\ndata_dir = "{tmp_path / "data"}"'))
    done = cli("cleanup", "--config", str(config), "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), dict)


def test_a_pool_that_cannot_start_stops_the_node_with_its_error(tmp_path: Path) -> None:
    config = tmp_path / "pool.toml"
    config.write_text(node_toml(free_port(), extra='[pools.broken]\nadapter = "nope.mod:X"\n'
                                                  "startup_timeout = 10\n"))
    t0 = time.perf_counter()
    done = cli("start", "--config", str(config))
    assert done.returncode == 1
    assert "pool 'broken' did not start" in done.stdout and "nope" in done.stdout
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(e["event"] == "node.pool_failed" and e["pool"] == "broken" for e in events)
    assert events[-1]["event"] == "node.stopped"
    print(f"\nfailed start and full stop in {time.perf_counter() - t0:.2f} s")


def test_a_restarted_pool_actor_is_followed_and_a_failed_tree_shows_as_failed(
        node: RunningNode) -> None:
    def second() -> dict[str, Any]:
        done = cli("status", "--config", str(node.config), "--pool", "second", "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout)["pools"][0])

    def actor_pid(pool: dict[str, Any], actor: str) -> int:
        (child,) = [c for c in pool["tree"]["children"] if c["actor"] == actor]
        return int(child["pid"])

    old = actor_pid(second(), "Pool")
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the node re-registers the new Pool (PoolReplaced)
        done = cli("exec", "--config", str(node.config), "--pool", "second", "echo", '{"a": 2}')
        if done.returncode == 0:
            break
        time.sleep(0.2)
    assert json.loads(done.stdout) == {"a": 2}, done.stderr
    pool = second()
    assert pool["state"] == "ready" and actor_pid(pool, "Pool") != old
    os.kill(int(pool["tree"]["pid"]), signal.SIGKILL)  # the PoolRoot: the whole tree goes
    deadline = time.monotonic() + 20
    while second()["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert second()["state"] == "failed"
    done = cli("exec", "--config", str(node.config), "echo", '{"a": 3}')  # the other pool
    assert json.loads(done.stdout) == {"a": 3}, done.stderr
