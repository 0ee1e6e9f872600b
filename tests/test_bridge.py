"""The worker process (``python -m snakepit_actors.bridge``), driven over real gRPC.

Every bridge here is a real process started with ``processes.spawn_bridge``; the autouse fixture
proves that none outlives its test.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc, health_pb2, health_pb2_grpc
from snakepit_actors.errors import PoolNotReadyError
from snakepit_actors.tree import processes

from .conftest import is_alive

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_surviving_children")]

ROOT = Path(__file__).resolve().parent.parent
SHOWCASE = "snakepit_actors.bridge.showcase:ShowcaseAdapter"

EXTRA_ADAPTER = textwrap.dedent('''
    import os, subprocess, sys
    from pathlib import Path
    from snakepit_actors.bridge import BaseAdapter, tool

    class ExtraAdapter(BaseAdapter):
        @tool
        def spawn_child(self):
            return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]).pid

        @tool(name="broken_stream", description="Yields n values, then raises.")
        def broken(self, n=2):
            yield from range(n)
            raise RuntimeError("stream broke")

        @tool
        def type_error_inside(self, x):
            return len(x)

        @tool
        def modules(self):
            return sorted(m for m in sys.modules if m.split(".")[0] == "thespian")

        @tool
        def env(self, name):
            return os.environ.get(name)

        @tool
        def span(self, hold_s=0.3):
            import time
            started = time.time()
            time.sleep(hold_s)
            return [started, time.time()]

        def close(self):
            Path(self.config["close_marker"]).write_text("closed")

    class BrokenInit(BaseAdapter):
        def __init__(self, config):
            raise RuntimeError("model file missing")

    class DeepFailure(BaseAdapter):
        def setup(self, depth=60):
            if depth:
                return self.setup(depth - 1)
            raise ValueError("é" * 5000)
''')


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def extra_adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("adapters")
    (folder / "extra_adapter.py").write_text(EXTRA_ADAPTER)
    return folder


def make_spec(folder: Path, *, adapter: str = SHOWCASE, listen: str | None = None,
              worker_id: str = "w1", adapter_dir: Path | None = None,
              **overrides: Any) -> processes.BridgeSpec:
    pythonpath = os.pathsep.join([str(ROOT), str(adapter_dir or folder)])
    values: dict[str, Any] = dict(
        python=sys.executable, adapter=adapter, adapter_config={},
        listen=listen or f"unix:{folder}/{worker_id}.sock", worker_id=worker_id, run_id="run1",
        env={"PYTHONPATH": pythonpath}, log_path=str(folder / f"{worker_id}.log"))
    values.update(overrides)
    return processes.BridgeSpec(**values)


Spawn = Callable[..., tuple[processes.BridgeProcess, processes.ReadyInfo]]


@pytest.fixture
def spawn(tmp_path: Path, extra_adapter_dir: Path) -> Iterator[Spawn]:
    """Start bridges for one test (ready), stop them all afterwards."""
    started: list[processes.BridgeProcess] = []

    def start(**kwargs: Any) -> tuple[processes.BridgeProcess, processes.ReadyInfo]:
        proc = processes.spawn_bridge(make_spec(tmp_path, adapter_dir=extra_adapter_dir,
                                                **kwargs))
        started.append(proc)
        return proc, processes.wait_ready(proc, 20.0)

    yield start
    for proc in started:
        processes.stop_bridge(proc, grace_s=1.0)


@pytest.fixture(scope="module")
def showcase_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    """One showcase bridge (unix socket, capacity 2) shared by the tool tests."""
    folder = tmp_path_factory.mktemp("showcase")
    proc = processes.spawn_bridge(make_spec(folder, capacity=2, max_payload_bytes=100_000))
    channel = None
    try:
        ready = processes.wait_ready(proc, 20.0)
        channel = grpc.insecure_channel(ready.address)
        yield channel
    finally:
        if channel is not None:
            channel.close()
        assert processes.stop_bridge(proc) == 0


@pytest.fixture(scope="module")
def showcase(showcase_channel: grpc.Channel) -> bridge_pb2_grpc.BridgeServiceStub:
    return bridge_pb2_grpc.BridgeServiceStub(showcase_channel)


def call(stub: bridge_pb2_grpc.BridgeServiceStub, tool: str, args: Any = None, *,
         raw: bytes | None = None, session_id: str = "") -> bridge_pb2.ExecuteToolResponse:
    data = raw if raw is not None else json.dumps({} if args is None else args).encode()
    return stub.ExecuteTool(bridge_pb2.ExecuteToolRequest(
        request_id="r1", session_id=session_id, tool=tool, args_json=data), timeout=10)


def result(resp: bridge_pb2.ExecuteToolResponse) -> Any:
    assert resp.WhichOneof("outcome") == "result_json", resp.error
    return json.loads(resp.result_json)


def stream(stub: bridge_pb2_grpc.BridgeServiceStub, tool: str,
           args: Any = None) -> list[bridge_pb2.ToolChunk]:
    request = bridge_pb2.ExecuteToolRequest(request_id="s1", tool=tool,
                                            args_json=json.dumps(args or {}).encode())
    return list(stub.ExecuteStreamingTool(request, timeout=10))


# --- tools of the showcase adapter ---------------------------------------------------------

def test_echo_returns_its_arguments_unchanged(showcase: Any) -> None:
    args = {"x": 1, "nested": {"list": [1, 2.5, None, True]}, "text": "héllo ☃"}
    resp = call(showcase, "echo", args)
    assert result(resp) == args
    assert resp.request_id == "r1"
    assert resp.execution_time_ms >= 0


@pytest.mark.parametrize(("tool", "args", "expected"), [
    ("ping", {}, "pong"),
    ("add", {"a": 2, "b": 3}, 5),
    ("add", {"a": "ab", "b": "cd"}, "abcd"),
    ("sleep", {"seconds": 0.01}, 0.01),
    ("big", {"size": 1000}, "x" * 1000),
    ("async_echo", {"y": [1, 2]}, {"y": [1, 2]}),
])
def test_simple_tools_return_their_documented_results(showcase: Any, tool: str, args: Any,
                                                      expected: Any) -> None:
    assert result(call(showcase, tool, args)) == expected


def test_cpu_busy_loops_for_the_given_milliseconds(showcase: Any) -> None:
    resp = call(showcase, "cpu", {"ms": 30})
    assert result(resp)["ms"] == 30
    assert resp.execution_time_ms >= 29


def test_sleep_reports_its_execution_time(showcase: Any) -> None:
    assert call(showcase, "sleep", {"seconds": 0.05}).execution_time_ms >= 49


def test_info_names_the_process_worker_and_adapter(showcase: Any) -> None:
    info = result(call(showcase, "info"))
    assert info["worker_id"] == "w1"
    assert info["adapter"] == SHOWCASE
    assert is_alive(info["pid"])


def test_fail_reports_a_tool_failure_with_type_message_and_traceback(showcase: Any) -> None:
    error = call(showcase, "fail", {"message": "nope"}).error
    assert (error.category, error.type, error.message) == ("tool", "ValueError", "nope")
    assert "Traceback" in error.traceback
    assert "raise ValueError(message)" in error.traceback


def test_session_counter_counts_per_session(showcase: Any) -> None:
    counts = [result(call(showcase, "session_counter", session_id="a")) for _ in range(3)]
    assert counts == [1, 2, 3]
    assert result(call(showcase, "session_counter", session_id="b")) == 1
    assert result(call(showcase, "session_counter", session_id="a")) == 4


def test_session_counter_without_a_session_does_not_keep_state(showcase: Any) -> None:
    assert [result(call(showcase, "session_counter")) for _ in range(2)] == [1, 1]


def test_a_session_the_sender_says_moved_here_starts_afresh_and_its_ctx_says_so(
        showcase: Any) -> None:
    def visit(moved_from: str = "") -> Any:
        return result(showcase.ExecuteTool(bridge_pb2.ExecuteToolRequest(
            request_id="r1", session_id="mv", tool="session_visit", args_json=b"{}",
            session_moved_from=moved_from), timeout=10))

    assert [visit()["counter"] for _ in range(3)] == [1, 2, 3]
    back = visit(moved_from="w-elsewhere")  # a stale copy of the state here is dropped
    assert (back["counter"], back["moved"]) == (1, True)
    assert [(v["counter"], v["moved"]) for v in (visit(), visit())] == [(2, False), (3, False)]


def test_cleanup_session_forgets_its_state(showcase: Any) -> None:
    init = showcase.InitializeSession(bridge_pb2.InitializeSessionRequest(
        session_id="c", metadata={"user": "u1"}), timeout=5)
    assert init.success
    assert result(call(showcase, "session_counter", session_id="c")) == 1
    first = showcase.CleanupSession(bridge_pb2.CleanupSessionRequest(session_id="c"), timeout=5)
    again = showcase.CleanupSession(bridge_pb2.CleanupSessionRequest(session_id="c"), timeout=5)
    assert (first.success, first.resources_cleaned) == (True, 1)
    assert (again.success, again.resources_cleaned) == (True, 0)
    assert result(call(showcase, "session_counter", session_id="c")) == 1


def test_ctx_cannot_be_passed_as_an_argument(showcase: Any) -> None:
    error = call(showcase, "session_counter", {"ctx": 1}).error
    assert error.category == "invalid_arguments"


def test_stream_progress_sends_one_chunk_per_step_then_a_final_chunk(showcase: Any) -> None:
    chunks = stream(showcase, "stream_progress", {"steps": 3})
    assert [json.loads(c.data_json) for c in chunks[:-1]] == [
        {"step": 1, "of": 3}, {"step": 2, "of": 3}, {"step": 3, "of": 3}]
    assert [c.chunk_id for c in chunks] == [0, 1, 2, 3]
    assert chunks[-1].is_final and not chunks[-1].HasField("error")
    assert not any(c.is_final for c in chunks[:-1])


def test_async_generator_tools_stream_too(showcase: Any) -> None:
    chunks = stream(showcase, "async_count", {"n": 3})
    assert [json.loads(c.data_json) for c in chunks[:-1]] == [0, 1, 2]
    assert chunks[-1].is_final and not chunks[-1].HasField("error")


def test_streaming_a_plain_tool_sends_its_result_then_a_final_chunk(showcase: Any) -> None:
    chunks = stream(showcase, "echo", {"x": 1})
    assert [json.loads(c.data_json) for c in chunks[:-1]] == [{"x": 1}]
    assert chunks[-1].is_final


def test_streaming_an_unknown_tool_sends_only_a_final_chunk_with_the_error(showcase: Any) -> None:
    (chunk,) = stream(showcase, "missing")
    assert chunk.is_final and chunk.error.category == "unknown_tool"


def test_a_cancelled_stream_stops_its_generator(showcase: Any) -> None:
    request = bridge_pb2.ExecuteToolRequest(tool="stream_progress",
                                            args_json=b'{"steps": 1000, "delay": 0.01}')
    chunks = showcase.ExecuteStreamingTool(request, timeout=10)
    assert json.loads(next(chunks).data_json) == {"step": 1, "of": 1000}
    chunks.cancel()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if showcase.Heartbeat(bridge_pb2.HeartbeatRequest(), timeout=5).in_flight == 0:
            break
        time.sleep(0.02)
    assert showcase.Heartbeat(bridge_pb2.HeartbeatRequest(), timeout=5).in_flight == 0


def test_a_generator_tool_called_unary_returns_the_list_of_its_values(showcase: Any) -> None:
    assert result(call(showcase, "stream_progress", {"steps": 2})) == [
        {"step": 1, "of": 2}, {"step": 2, "of": 2}]


# --- refusals ------------------------------------------------------------------------------

def test_unknown_tool_lists_the_available_tools(showcase: Any) -> None:
    error = call(showcase, "nope").error
    assert error.category == "unknown_tool"
    assert "'nope'" in error.message and "'echo'" in error.message


@pytest.mark.parametrize("raw", [b"[1, 2]", b"3", b'"x"', b"null"])
def test_args_that_are_not_a_json_object_are_invalid_arguments(showcase: Any, raw: bytes) -> None:
    error = call(showcase, "echo", raw=raw).error
    assert error.category == "invalid_arguments"
    assert "must be a JSON object" in error.message


def test_args_that_are_not_json_are_invalid_arguments(showcase: Any) -> None:
    error = call(showcase, "echo", raw=b"{nope").error
    assert error.category == "invalid_arguments"


def test_empty_args_mean_no_arguments(showcase: Any) -> None:
    assert result(call(showcase, "ping", raw=b"")) == "pong"


@pytest.mark.parametrize(("args", "text"), [
    ({"a": 1}, "missing a required argument: 'b'"),
    ({"a": 1, "b": 2, "c": 3}, "unexpected keyword argument 'c'"),
])
def test_arguments_that_do_not_fit_the_signature_are_invalid(showcase: Any, args: Any,
                                                             text: str) -> None:
    error = call(showcase, "add", args).error
    assert (error.category, error.type) == ("invalid_arguments", "TypeError")
    assert text in error.message and "add(a, b)" in error.message


def test_a_result_json_cannot_encode_is_a_serialization_failure(showcase: Any) -> None:
    error = call(showcase, "bad_result").error
    assert error.category == "serialization"
    assert "result" in error.message and "set" in error.message


def test_a_result_over_max_payload_bytes_is_refused(showcase: Any) -> None:
    error = call(showcase, "big", {"size": 200_000}).error
    assert error.category == "payload_too_large"
    assert "100000" in error.message
    assert result(call(showcase, "big", {"size": 90_000})) == "x" * 90_000


def test_args_over_max_payload_bytes_are_refused(showcase: Any) -> None:
    error = call(showcase, "echo", {"blob": "y" * 150_000}).error
    assert error.category == "payload_too_large" and "args" in error.message


def test_a_request_whose_deadline_passed_is_not_run(showcase: Any) -> None:
    request = bridge_pb2.ExecuteToolRequest(tool="session_counter", session_id="late",
                                            deadline_unix_s=time.time() - 1.0)
    with pytest.raises(grpc.RpcError) as info:
        showcase.ExecuteTool(request, timeout=5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert result(call(showcase, "session_counter", session_id="late")) == 1


# --- service calls -------------------------------------------------------------------------

def test_describe_lists_every_tool_with_its_kind(showcase: Any) -> None:
    described = showcase.Describe(bridge_pb2.DescribeRequest(), timeout=5)
    tools = {t.name: t for t in described.tools}
    assert described.adapter == SHOWCASE and described.worker_id == "w1"
    assert {"ping", "echo", "add", "sleep", "cpu", "fail", "crash", "session_counter",
            "stream_progress", "info", "big", "bad_result", "async_echo"} <= set(tools)
    assert tools["stream_progress"].streaming and not tools["stream_progress"].is_async
    assert tools["async_echo"].is_async and not tools["async_echo"].streaming
    assert tools["ping"].description == 'Return "pong".'


def test_ping_returns_the_worker_id_and_pid(showcase: Any) -> None:
    pong = showcase.Ping(bridge_pb2.PingRequest(message="hi"), timeout=5)
    info = result(call(showcase, "info"))
    assert (pong.message, pong.worker_id, pong.pid) == ("hi", "w1", info["pid"])
    assert abs(pong.server_time_ns - time.time_ns()) < 5e9


def test_heartbeat_reports_load_figures(showcase: Any) -> None:
    before = showcase.Heartbeat(bridge_pb2.HeartbeatRequest(client_time_ns=1), timeout=5)
    call(showcase, "ping")
    after = showcase.Heartbeat(bridge_pb2.HeartbeatRequest(client_time_ns=1), timeout=5)
    assert after.requests_served == before.requests_served + 1
    assert after.in_flight == 0
    assert 10 * 2**20 < after.rss_bytes < 2**31


def test_heartbeat_counts_requests_in_flight(showcase: Any) -> None:
    slow = showcase.ExecuteTool.future(bridge_pb2.ExecuteToolRequest(
        tool="sleep", args_json=b'{"seconds": 0.5}'), timeout=10)
    time.sleep(0.2)
    beat = showcase.Heartbeat(bridge_pb2.HeartbeatRequest(), timeout=5)
    assert beat.in_flight == 1
    assert result(slow.result()) == 0.5


def test_health_check_says_serving(showcase_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(showcase_channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="other"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


# --- process behaviour (one bridge per test) -----------------------------------------------

def test_ready_handshake_over_unix_gives_a_0600_socket(spawn: Spawn, tmp_path: Path) -> None:
    proc, ready = spawn()
    assert ready.address == f"unix:{tmp_path}/w1.sock"
    assert ready.pid == proc.pid
    mode = os.stat(tmp_path / "w1.sock").st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_ready_handshake_over_tcp_gives_the_real_port(spawn: Spawn) -> None:
    _, ready = spawn(listen="127.0.0.1:0")
    host, port = ready.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    with grpc.insecure_channel(ready.address) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(channel)
        assert result(call(stub, "echo", {"x": 1})) == {"x": 1}


def test_an_adapter_import_error_fails_the_start_fast_with_its_text(tmp_path: Path) -> None:
    proc = processes.spawn_bridge(make_spec(tmp_path, adapter="nope.missing:Adapter"))
    started = time.monotonic()
    try:
        with pytest.raises(PoolNotReadyError) as info:
            processes.wait_ready(proc, 20.0)
        assert time.monotonic() - started < 5.0
    finally:
        processes.stop_bridge(proc)
    err = info.value
    assert err.reason == "worker_start_failed"
    assert "ModuleNotFoundError: No module named 'nope'" in str(err)
    assert err.details["exit_code"] == 3
    assert err.details["error"]["type"] == "ModuleNotFoundError"
    assert "Traceback" in err.details["error"]["traceback"]
    assert "bridge.start_failed" in err.details["log_tail"]


def test_an_adapter_whose_init_raises_fails_the_start(spawn: Spawn) -> None:
    with pytest.raises(PoolNotReadyError, match="RuntimeError: model file missing"):
        spawn(adapter="extra_adapter:BrokenInit")


def test_a_huge_start_error_still_arrives_as_one_ready_line(spawn: Spawn) -> None:
    with pytest.raises(PoolNotReadyError) as info:
        spawn(adapter="extra_adapter:DeepFailure")
    error = info.value.details["error"]
    assert error["type"] == "ValueError" and error["message"].startswith("éé")
    assert "in setup" in error["traceback"]


def test_an_adapter_that_is_not_a_base_adapter_fails_the_start(spawn: Spawn) -> None:
    with pytest.raises(PoolNotReadyError, match="must name a subclass of"):
        spawn(adapter="extra_adapter:os")


def test_init_delay_s_delays_the_ready_line(spawn: Spawn) -> None:
    started = time.monotonic()
    spawn(adapter_config={"init_delay_s": 1.0})
    assert time.monotonic() - started >= 1.0


def test_crash_ends_the_process_with_its_code_and_fails_the_call(spawn: Spawn) -> None:
    proc, ready = spawn()
    with grpc.insecure_channel(ready.address) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            call(stub, "crash", {"code": 7})
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
                                 grpc.StatusCode.UNKNOWN)
    assert proc.popen.wait(5) == 7


def test_a_type_error_inside_a_tool_is_a_tool_failure(spawn: Spawn) -> None:
    _, ready = spawn(adapter="extra_adapter:ExtraAdapter")
    with grpc.insecure_channel(ready.address) as channel:
        error = call(bridge_pb2_grpc.BridgeServiceStub(channel), "type_error_inside",
                     {"x": 3}).error
    assert (error.category, error.type) == ("tool", "TypeError")


def test_a_generator_that_raises_ends_with_an_error_chunk(spawn: Spawn) -> None:
    _, ready = spawn(adapter="extra_adapter:ExtraAdapter")
    with grpc.insecure_channel(ready.address) as channel:
        chunks = stream(bridge_pb2_grpc.BridgeServiceStub(channel), "broken_stream", {"n": 2})
    assert [json.loads(c.data_json) for c in chunks[:-1]] == [0, 1]
    final = chunks[-1]
    assert final.is_final and final.chunk_id == 2
    assert (final.error.category, final.error.type, final.error.message) == (
        "tool", "RuntimeError", "stream broke")


def test_the_worker_environment_names_the_worker_and_run(spawn: Spawn) -> None:
    _, ready = spawn(adapter="extra_adapter:ExtraAdapter", worker_id="w9")
    with grpc.insecure_channel(ready.address) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(channel)
        assert result(call(stub, "env", {"name": "SNAKEPIT_WORKER_ID"})) == "w9"
        assert result(call(stub, "env", {"name": "SNAKEPIT_RUN_ID"})) == "run1"


def test_the_worker_process_never_imports_thespian(spawn: Spawn) -> None:
    _, ready = spawn(adapter="extra_adapter:ExtraAdapter")
    with grpc.insecure_channel(ready.address) as channel:
        assert result(call(bridge_pb2_grpc.BridgeServiceStub(channel), "modules")) == []


def test_sigterm_stops_the_bridge_quickly_with_exit_code_0_and_closes_the_adapter(
        spawn: Spawn, tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    proc, ready = spawn(adapter="extra_adapter:ExtraAdapter",
                        adapter_config={"close_marker": str(marker)})
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.popen.wait(5) == 0
    assert time.monotonic() - started < 2.0
    assert marker.read_text() == "closed"
    assert not os.path.exists(ready.address.removeprefix("unix:"))


def test_stop_bridge_kills_the_whole_process_group(spawn: Spawn) -> None:
    proc, ready = spawn(adapter="extra_adapter:ExtraAdapter")
    with grpc.insecure_channel(ready.address) as channel:
        child = result(call(bridge_pb2_grpc.BridgeServiceStub(channel), "spawn_child"))
    assert is_alive(child) and os.getpgid(child) == proc.pgid
    assert processes.stop_bridge(proc, grace_s=1.0) == 0
    deadline = time.monotonic() + 2.0
    while is_alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not is_alive(child)
    assert processes.stop_bridge(proc) == 0  # twice is fine


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses Linux prctl")
def test_the_bridge_is_sigkilled_at_once_when_its_parent_is_killed(tmp_path: Path) -> None:
    # grandparent (a subreaper, so the orphaned bridge becomes its child and it can read the
    # exit status) -> middle (spawns the bridge, then gets SIGKILLed) -> bridge
    middle = textwrap.dedent(f'''
        import json, sys, time
        from snakepit_actors.tree import processes
        spec = processes.BridgeSpec(
            python=sys.executable, adapter={SHOWCASE!r}, adapter_config={{}},
            listen="unix:{tmp_path}/orphan.sock", worker_id="orphan", run_id="run1",
            env={{}}, log_path="{tmp_path}/orphan.log")
        proc = processes.spawn_bridge(spec)
        processes.wait_ready(proc, 20)
        print(json.dumps({{"pid": proc.pid}}), flush=True)
        time.sleep(60)
    ''')
    grandparent = textwrap.dedent(f'''
        import ctypes, json, os, subprocess, sys, time
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        middle = subprocess.Popen([sys.executable, "-c", {middle!r}], stdout=subprocess.PIPE)
        pid = json.loads(middle.stdout.readline())["pid"]
        started = time.monotonic()
        middle.kill()
        middle.wait()
        _, status = os.waitpid(pid, 0)
        print(json.dumps({{"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                          "after_s": time.monotonic() - started}}), flush=True)
    ''')
    out = subprocess.run([sys.executable, "-c", grandparent], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30, check=True)
    report = json.loads(out.stdout)
    assert report["signal"] == signal.SIGKILL  # PR_SET_PDEATHSIG, not the slower watchdog
    assert report["after_s"] < 2.0


def test_a_bridge_whose_parent_is_already_gone_exits_at_once(tmp_path: Path) -> None:
    proc = processes.spawn_bridge(make_spec(tmp_path, parent_pid=1))
    try:
        with pytest.raises(PoolNotReadyError) as info:
            processes.wait_ready(proc, 20.0)
    finally:
        processes.stop_bridge(proc)
    assert info.value.details["exit_code"] == 4



def _two_spans_at_once(address: str, tool: str, args: dict[str, Any]) -> list[list[float]]:
    with grpc.insecure_channel(address) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(channel)
        request = bridge_pb2.ExecuteToolRequest(tool=tool, args_json=json.dumps(args).encode())
        calls = [stub.ExecuteTool.future(request, timeout=30) for _ in range(2)]
        return [json.loads(call.result().result_json) for call in calls]


def test_plain_tools_of_an_adapter_not_declared_thread_safe_run_one_at_a_time(
        spawn: Spawn) -> None:
    _, ready = spawn(adapter="extra_adapter:ExtraAdapter", capacity=2)
    (_, a_end), (b_start, _) = sorted(
        _two_spans_at_once(ready.address, "span", {"hold_s": 0.3}))
    assert b_start >= a_end


def test_a_thread_safe_adapter_runs_capacity_plain_tools_at_once(spawn: Spawn) -> None:
    _, ready = spawn(capacity=2)
    spans = [(c["started_at"], c["ended_at"])
             for c in _two_spans_at_once(ready.address, "info", {"hold_s": 1.0})]
    assert max(s for s, _ in spans) < min(e for _, e in spans)
