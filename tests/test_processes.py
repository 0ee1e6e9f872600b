"""``tree.processes``: spawn, ready handshake, exit status and stop, on real processes.

A fake interpreter (a small script given as ``BridgeSpec.python``) plays a misbehaving bridge:
it receives the real bridge command line and acts out the mode named by ``--adapter``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from snakepit_actors.errors import ConfigError, PoolNotReadyError
from snakepit_actors.tree import processes

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_surviving_children")]

FAKE_PYTHON = textwrap.dedent('''\
    #!{python}
    import json, os, signal, sys, time
    args = sys.argv[1:]
    mode, fd = args[args.index("--adapter") + 1], int(args[args.index("--ready-fd") + 1])
    ok = json.dumps({{"ok": True, "address": "unix:/fake", "pid": os.getpid()}}).encode() + b"\\n"
    if mode == "partial":
        os.write(fd, ok[:15])
        time.sleep(0.3)
        os.write(fd, ok[15:])
    elif mode == "garbage":
        os.write(fd, b"hello\\n")
    elif mode == "silent_exit":
        sys.stderr.write("fatal: something broke\\n")
        sys.exit(7)
    elif mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.write(fd, ok)
    elif mode == "report":
        names = ("EXTRA", "SNAKEPIT_WORKER_ID", "SNAKEPIT_RUN_ID", "PYTHONUNBUFFERED")
        sys.stderr.write(json.dumps({{"env": {{n: os.environ.get(n) for n in names}},
                                      "stdin": os.readlink("/proc/self/fd/0"),
                                      "secrets": json.loads(sys.stdin.read()),
                                      "argv": sys.argv}}) + "\\n")
        sys.stderr.flush()
        os.write(fd, ok)
    time.sleep(60)
''')


Spawn = Callable[..., processes.BridgeProcess]


@pytest.fixture
def spawn_fake(tmp_path: Path) -> Iterator[Spawn]:
    """Start the fake interpreter in a given mode; stop everything afterwards."""
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    started: list[processes.BridgeProcess] = []

    def start(mode: str, **overrides: Any) -> processes.BridgeProcess:
        values: dict[str, Any] = dict(
            python=str(fake), adapter=mode, adapter_config={}, listen="unix:/fake",
            worker_id="w1", run_id="run1", env={}, log_path=str(tmp_path / "logs" / "w1.log"))
        values.update(overrides)
        proc = processes.spawn_bridge(processes.BridgeSpec(**values))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        processes.stop_bridge(proc, grace_s=0.5)


def test_the_command_line_runs_the_bridge_module_with_every_setting_but_no_secret() -> None:
    spec = processes.BridgeSpec(
        python="py", adapter="m:C", adapter_config={"k": [1]}, listen="127.0.0.1:0",
        worker_id="w1", run_id="r1", env={}, log_path="/tmp/x.log", capacity=3,
        max_payload_bytes=2048, parent_pid=42, token="t0k3n")
    argv = spec.argv(9)
    assert argv[:3] == ["py", "-m", "snakepit_actors.bridge"]
    assert argv.pop(argv.index("--secrets-stdin")) == "--secrets-stdin"
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert flags == {"--adapter": "m:C", "--listen": "127.0.0.1:0", "--ready-fd": "9",
                     "--worker-id": "w1", "--run-id": "r1", "--parent-pid": "42",
                     "--capacity": "3", "--max-payload-bytes": "2048"}
    assert json.loads(spec.secrets()) == {"adapter_config": {"k": [1]}, "token": "t0k3n"}
    assert "t0k3n" not in repr(spec)


def test_parent_pid_defaults_to_this_process() -> None:
    spec = processes.BridgeSpec(python="py", adapter="m:C", adapter_config={}, listen="x",
                                worker_id="w", run_id="r", env={}, log_path="l")
    assert spec.parent_pid == os.getpid()


def test_an_adapter_config_json_cannot_encode_is_a_config_error(tmp_path: Path) -> None:
    spec = processes.BridgeSpec(python=sys.executable, adapter="m:C",
                                adapter_config={"bad": {1, 2}}, listen="x", worker_id="w",
                                run_id="r", env={}, log_path=str(tmp_path / "l"))
    with pytest.raises(ConfigError, match="adapter_config"):
        processes.spawn_bridge(spec)


def test_an_interpreter_that_cannot_run_is_a_spawn_failure(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    spec = processes.BridgeSpec(python=str(tmp_path / "no-such-python"), adapter="m:C",
                                adapter_config={}, listen="x", worker_id="w7", run_id="r",
                                env={}, log_path=str(tmp_path / "l"))
    with pytest.raises(PoolNotReadyError) as info:
        processes.spawn_bridge(spec)
    assert info.value.reason == "spawn_failed"
    assert "No such file or directory" in str(info.value) and "w7" in str(info.value)
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_the_process_gets_its_own_session_env_log_and_its_secrets_on_a_stdin_pipe(
        spawn_fake: Spawn) -> None:
    proc = spawn_fake("report", env={"EXTRA": "yes"}, worker_id="w5")
    ready = processes.wait_ready(proc, 10.0)
    assert ready == processes.ReadyInfo(address="unix:/fake", pid=proc.pid)
    assert os.getsid(proc.pid) == proc.pid and proc.pgid == proc.pid
    assert proc.create_time == psutil.Process(proc.pid).create_time()
    report = json.loads(Path(proc.log_path).read_text().splitlines()[0])
    assert report["env"] == {"EXTRA": "yes", "SNAKEPIT_WORKER_ID": "w5",
                             "SNAKEPIT_RUN_ID": "run1", "PYTHONUNBUFFERED": "1"}
    assert report["stdin"].startswith("pipe:")
    assert report["secrets"] == {"adapter_config": {}, "token": ""}
    assert report["argv"][1:3] == ["-m", "snakepit_actors.bridge"]


def test_read_ready_returns_none_until_the_line_is_complete(spawn_fake: Spawn) -> None:
    proc = spawn_fake("partial")
    deadline = time.monotonic() + 10.0
    while not proc.buffer and time.monotonic() < deadline:
        assert processes.read_ready(proc) is None
        time.sleep(0.01)
    assert processes.read_ready(proc) is None  # half a line so far
    ready = processes.wait_ready(proc, 10.0)
    assert ready.pid == proc.pid
    assert processes.read_ready(proc) is ready
    assert proc.ready_fd is None


def test_a_line_that_is_not_a_ready_message_fails_the_start(spawn_fake: Spawn) -> None:
    proc = spawn_fake("garbage")
    with pytest.raises(PoolNotReadyError, match="invalid ready line") as info:
        processes.wait_ready(proc, 10.0)
    assert info.value.reason == "worker_start_failed"


def test_a_process_that_exits_without_a_line_reports_its_code_and_log(spawn_fake: Spawn) -> None:
    proc = spawn_fake("silent_exit")
    with pytest.raises(PoolNotReadyError) as info:
        processes.wait_ready(proc, 10.0)
    err = info.value
    assert err.reason == "worker_start_failed"
    assert "exit code 7" in str(err) and "fatal: something broke" in str(err)
    assert err.details["exit_code"] == 7
    assert "fatal: something broke" in err.details["log_tail"]


def test_wait_ready_times_out_and_leaves_the_process_to_stop_bridge(spawn_fake: Spawn) -> None:
    proc = spawn_fake("hang")
    started = time.monotonic()
    with pytest.raises(PoolNotReadyError) as info:
        processes.wait_ready(proc, 0.3)
    assert info.value.reason == "startup_timeout"
    assert 0.3 <= time.monotonic() - started < 3.0
    assert processes.process_exit_code(proc) is None
    assert processes.stop_bridge(proc, grace_s=0.5) == -signal.SIGTERM


def test_process_exit_code_sees_the_exit_without_reaping(spawn_fake: Spawn) -> None:
    proc = spawn_fake("hang")
    assert processes.process_exit_code(proc) is None
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while processes.process_exit_code(proc) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processes.process_exit_code(proc) == -signal.SIGKILL
    assert proc.popen.returncode is None  # still a zombie: its pid (and pgid) cannot be reused
    assert processes.stop_bridge(proc) == -signal.SIGKILL


def test_stop_bridge_escalates_to_sigkill_after_the_grace(spawn_fake: Spawn) -> None:
    proc = spawn_fake("ignore_term")
    processes.wait_ready(proc, 10.0)
    started = time.monotonic()
    assert processes.stop_bridge(proc, grace_s=0.3) == -signal.SIGKILL
    assert 0.3 <= time.monotonic() - started < 3.0


def test_stop_bridge_is_safe_twice_and_closes_the_ready_pipe(spawn_fake: Spawn) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    proc = spawn_fake("hang")
    assert len(os.listdir("/proc/self/fd")) == fds_before + 1  # the ready pipe's read end
    assert processes.stop_bridge(proc, grace_s=0.0) == -signal.SIGKILL
    assert processes.stop_bridge(proc) == -signal.SIGKILL
    assert proc.stopped and proc.ready_fd is None
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_kill_process_group_tolerates_a_group_that_is_gone() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    done.wait()
    assert processes.kill_process_group(done.pid, signal.SIGTERM) is False
