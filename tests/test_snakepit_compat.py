"""Snakepit 0.13.0's own Python workers (unmodified, from the test peer folder) run in the pool:
``PoolConfig(protocol="snakepit")`` (docs/snakepit-compat.md).

One pool per data path serves the module; the crash and timeout tests run last on it (the pool
heals). Skipped when the peer folder is absent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.errors import (
    ConfigError,
    InvalidArgumentsError,
    RequestTimeoutError,
    SnakepitError,
    ToolError,
    UnknownToolError,
    WorkerCrashedError,
)
from snakepit_actors.protocols.snakepit_codec import (
    chunk_value,
    encode_parameters,
    error_from_payload,
)
from tests.conftest import shared_pool, wait_gone

pytestmark = pytest.mark.timeout(120)

PEER = (Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "snakepit-0.13.0"
        / "priv" / "python")
ADAPTER = "snakepit_bridge.adapters.showcase.ShowcaseAdapter"
needs_peer = pytest.mark.skipif(
    not (PEER / "grpc_server.py").is_file() or importlib.util.find_spec("numpy") is None,
    reason=f"Snakepit's Python side is not at {PEER} (the test peer folder, ../shared/peers/), "
           "or numpy, which it imports, is not installed (the dev extra has it)")


def _config(**changes: object) -> PoolConfig:
    return PoolConfig(name="snakepit-compat", pool_size=2, protocol="snakepit", adapter=ADAPTER,
                      python_path=(str(PEER),), queue_timeout=20.0,
                      env={"SNAKEPIT_OTEL_CONSOLE": "false", "SNAKEPIT_LOG_LEVEL": "info"}
                      ).with_overrides(**changes)


# --- configuration and encoding (no processes) --------------------------------------------------

def test_a_snakepit_pool_is_configured_by_protocol_adapter_and_python_path() -> None:
    cfg = PoolConfig(protocol="snakepit", adapter=ADAPTER, python_path=("/opt/snakepit/python",))
    assert cfg.python_path == ("/opt/snakepit/python",)


@pytest.mark.parametrize(("changes", "named"), [
    ({"protocol": "snakepit"}, "adapter of protocol 'snakepit' must look like"),
    ({"protocol": "snakepit", "adapter": ADAPTER}, "python_path of protocol 'snakepit'"),
    ({"python_path": ("/x",)}, "python_path is for protocol 'snakepit' only"),
    ({"protocol": "grpc"}, "protocol must be 'snakepit_actors' or 'snakepit'"),
])
def test_a_bad_snakepit_configuration_names_the_field_and_the_fix(
        changes: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        PoolConfig(**changes)  # type: ignore[arg-type]


def test_toml_selects_the_snakepit_protocol(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(f'[pool]\nprotocol = "snakepit"\nadapter = "{ADAPTER}"\n'
                    'python_path = ["deps/snakepit/priv/python"]\n')
    cfg = PoolConfig.from_toml(path)
    assert (cfg.protocol, cfg.python_path) == ("snakepit", ("deps/snakepit/priv/python",))


def test_arguments_travel_as_one_json_value_per_keyword() -> None:
    assert encode_parameters(b'{"a": 1, "b": [true, "x"]}') == {"a": b"1", "b": b'[true,"x"]'}
    with pytest.raises(InvalidArgumentsError, match="must be a JSON object"):
        encode_parameters(b"[1, 2]")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text()
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(), inner, max_size=3), max_leaves=10)


@given(st.dictionaries(st.text(), _JSON, max_size=5))
def test_every_keyword_argument_decodes_to_its_own_value(args: dict[str, object]) -> None:
    encoded = encode_parameters(json.dumps(args).encode())
    assert {k: json.loads(v) for k, v in encoded.items()} == args


def test_snakepit_error_payloads_become_typed_errors() -> None:
    def payload(type_name: str, message: str) -> str:
        return json.dumps({"type": type_name, "message": message,
                           "stacktrace": ["Traceback\n", f"{type_name}: {message}\n"]})

    unknown = error_from_payload(payload("AttributeError", "Tool 'nope' not found in X"), "w1")
    assert isinstance(unknown, UnknownToolError) and "'nope'" in str(unknown)
    bad = error_from_payload(payload("TypeError", "add() got an unexpected keyword argument "
                                     "'q'"), "w1")
    assert isinstance(bad, InvalidArgumentsError)
    raised = error_from_payload(payload("ValueError", "boom"), "w1")
    assert isinstance(raised, ToolError) and raised.python_type == "ValueError"
    assert raised.python_traceback.endswith("ValueError: boom\n")
    opaque = error_from_payload("not json", "w1")
    assert isinstance(opaque, ToolError) and opaque.python_message == "not json"


def test_streamed_chunks_are_json_or_text_or_bytes() -> None:
    assert chunk_value(b'{"i": 1}') == {"i": 1}
    assert chunk_value(b"plain text") == "plain text"
    assert chunk_value(b"\xff\x00") == b"\xff\x00"


# --- their worker in the pool -------------------------------------------------------------------

@pytest.fixture(scope="module")
def spool(data_path: str) -> Iterator[Pool]:
    """A 2-worker pool of Snakepit's showcase workers (once per data path; the actor path's on
    TCP, so both of the shim's loopback bindings are exercised)."""
    if not (PEER / "grpc_server.py").is_file() or importlib.util.find_spec("numpy") is None:
        pytest.skip(f"Snakepit's Python side is not at {PEER}, or numpy is not installed")
    with shared_pool(_config(data_path=data_path,
                             transport="tcp" if data_path == "actor" else "unix")) as pool:
        yield pool


@needs_peer
def test_their_showcase_tools_answer_through_the_pool(spool: Pool) -> None:
    assert spool.execute("ping", {"message": "hi"})["message"] == "hi"
    assert spool.execute("add", {"a": 2, "b": 3}) == 5.0  # their integers come back as floats
    assert spool.execute("echo", {"x": [1, "a"]}) == {"echoed": {"x": [1, "a"]}}
    info = spool.execute("adapter_info")
    assert info["adapter_name"] == "ShowcaseAdapter"
    assert spool.execute("process_text", {"text": "abc", "operation": "upper"})["result"] == "ABC"


@needs_peer
def test_their_failures_are_typed_errors(spool: Pool) -> None:
    with pytest.raises(UnknownToolError, match="'no_such_tool'"):
        spool.execute("no_such_tool")
    with pytest.raises(InvalidArgumentsError, match="unexpected keyword argument 'q'"):
        spool.execute("add", {"a": 1, "q": 2})
    with pytest.raises(ToolError) as raised:
        spool.execute("error_demo", {"error_type": "value"})
    assert raised.value.python_type == "ValueError"
    assert "error_demo" in raised.value.python_traceback
    assert spool.execute("add", {"a": 1, "b": 1}) == 2.0  # the worker is fine


@needs_peer
def test_their_streams_arrive_chunk_by_chunk_and_can_be_left_early(spool: Pool) -> None:
    chunks = list(spool.execute_stream("stream_data", {"count": 3, "delay": 0.0}))
    assert [c["index"] for c in chunks] == [1, 2, 3]
    stream = spool.execute_stream("stream_data", {"count": 50, "delay": 0.05})
    assert next(iter(stream))["index"] == 1
    stream.close()  # type: ignore[attr-defined]
    assert spool.execute("add", {"a": 1, "b": 2}) == 3.0


@needs_peer
def test_a_tool_failing_mid_stream_is_a_tool_error_not_a_crash(spool: Pool) -> None:
    pids = {w.pid for w in spool.workers()}
    with pytest.raises(ToolError, match="cannot be interpreted as an integer"):
        list(spool.execute_stream("stream_data", {"count": "three", "delay": 0.0}))
    assert {w.pid for w in spool.workers()} == pids


@needs_peer
def test_a_session_keeps_its_worker_and_their_per_worker_state(spool: Pool) -> None:
    session = f"s-{time.monotonic_ns()}"
    values = [spool.execute("increment_counter", session_id=session)["value"]
              for _ in range(4)]
    assert values == [1, 2, 3, 4]
    assert spool.execute("get_counter", session_id=session) == {"value": 4}


@needs_peer
def test_a_deleted_session_is_cleaned_up_in_their_worker(spool: Pool) -> None:
    """Deleting a session frees it in the process: their CleanupSession (which also stops
    their heartbeat loop for it) runs on the worker that served it."""
    with spool.session() as session:
        session.execute("increment_counter")
        pid = int(session.execute("get_worker_info", {"call_number": 1})["worker_pid"])
    worker = next(w for w in spool.workers() if w.pid == pid)
    log = Path(spool._run_dir) / f"{worker.worker_id}.log"
    _wait_for(lambda: f"CleanupSession for: {session.id}" in log.read_text(errors="replace"),
              10.0)


@needs_peer
def test_asyncio_callers_are_served(spool: Pool) -> None:
    async def run() -> list[object]:
        return list(await asyncio.gather(*(spool.execute_async("add", {"a": i, "b": 1})
                                           for i in range(6))))
    assert asyncio.run(run()) == [float(i + 1) for i in range(6)]

    async def stream() -> list[object]:
        return [chunk["index"] async for chunk in spool.execute_stream_async(
            "stream_data", {"count": 3, "delay": 0.0})]
    assert asyncio.run(stream()) == [1, 2, 3]


@needs_peer
def test_map_over_their_workers_sends_one_call_per_item(spool: Pool) -> None:
    # Their worker has no ExecuteBatch: a chunk goes as unary calls, each with its own outcome.
    items = [{"a": i, "b": 1} for i in range(7)] + [{"a": 1, "q": 2}]
    out = list(spool.map("add", items, chunksize=3, return_exceptions=True))
    assert out[:7] == [float(i + 1) for i in range(7)]
    assert isinstance(out[7], SnakepitError)


def test_their_workers_listen_on_loopback_or_unix_sockets_only(spool: Pool) -> None:
    workers = spool.workers()
    assert len(workers) == 2 and all(w.state in ("ready", "busy") for w in workers)
    for worker in workers:
        proc = psutil.Process(worker.pid)
        assert "snakepit_actors.compat.shim" in proc.cmdline()
        listening = [c for c in proc.net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert all(_loopback(c.laddr.ip) for c in listening), listening
        if spool.config.transport == "tcp":
            assert worker.endpoint.startswith("127.0.0.1:")
            assert [c.laddr.port for c in listening] == [int(worker.endpoint.rsplit(":")[1])]
        else:
            assert worker.endpoint.startswith("unix:") and not listening
        assert proc.environ().get("SNAKEPIT_RUN_ID")
        assert proc.environ().get("SNAKEPIT_WORKER_ID") == worker.worker_id


@needs_peer
def test_a_recycled_worker_is_replaced_by_a_fresh_snakepit_process(spool: Pool) -> None:
    """The replacement starts first, with its own host socket: the old process ending takes
    nothing of the new one with it."""
    worker = spool.workers()[0]
    assert worker.pid is not None
    spool.recycle(worker.worker_id)
    _wait_for(lambda: any(w.worker_id == worker.worker_id and w.pid != worker.pid
                          and w.state == "ready" for w in spool.workers()), 20.0)
    new_pid = {w.worker_id: w.pid for w in spool.workers()}[worker.worker_id]
    assert wait_gone({worker.pid}) == set()
    run_dir = Path(spool._run_dir)
    assert (run_dir / f"{worker.worker_id}.{new_pid}.host.sock").is_socket()
    assert not (run_dir / f"{worker.worker_id}.{worker.pid}.host.sock").exists()
    session = f"r-{time.monotonic_ns()}"
    assert [spool.execute("increment_counter", session_id=session)["value"]
            for _ in range(2)] == [1, 2]


@needs_peer
def test_a_call_past_its_deadline_fails_and_recycles_the_worker(spool: Pool) -> None:
    """Their unary calls are not cancelled on a deadline: the worker's process is replaced."""
    session, pid = _session_and_pid(spool, "t")
    with pytest.raises(RequestTimeoutError):
        spool.execute("telemetry_demo", {"delay_ms": 20_000}, session_id=session, timeout=0.5)
    _wait_for(lambda: pid not in {w.pid for w in spool.workers()}
              and all(w.state == "ready" for w in spool.workers()), 20.0)
    assert spool.execute("add", {"a": 1, "b": 1}, timeout=15.0) == 2.0


@needs_peer
def test_kill_9_of_their_worker_mid_call_is_a_worker_crash_and_the_pool_heals(
        spool: Pool) -> None:
    session, pid = _session_and_pid(spool, "k")
    killer = _kill_later(pid, 0.5)
    with pytest.raises(WorkerCrashedError):
        spool.execute("telemetry_demo", {"delay_ms": 20_000}, session_id=session, timeout=30.0)
    killer.join()
    _wait_for(lambda: pid not in {w.pid for w in spool.workers()}
              and len([w for w in spool.workers() if w.state == "ready"]) == 2, 20.0)
    assert spool.execute("add", {"a": 2, "b": 2}, timeout=15.0) == 4.0


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # grpc binds 127.0.0.1 as ::ffff:127.0.0.1
    return bool((mapped or address).is_loopback)


def _session_and_pid(pool: Pool, prefix: str) -> tuple[str, int]:
    """A fresh session and the pid of the worker process it landed on (affinity keeps it)."""
    session = f"{prefix}-{time.monotonic_ns()}"
    info = pool.execute("get_worker_info", {"call_number": 1}, session_id=session)
    return session, int(info["worker_pid"])


def _kill_later(pid: int, after_s: float) -> threading.Thread:
    def kill() -> None:
        time.sleep(after_s)
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout_s}s")


@needs_peer
def test_a_snakepit_adapter_calls_the_pools_host_tools() -> None:
    """Their ``SessionContext.call_elixir_tool`` reaches ``pool.register_host_tool``'s
    functions: listed by GetExposedElixirTools, run by ExecuteElixirTool."""
    adapters = Path(__file__).resolve().parent / "snakepit_adapters"
    with Pool.start(_config(pool_size=1, adapter="host_demo.HostDemoAdapter",
                            python_path=(str(PEER), str(adapters)))) as pool:
        pool.register_host_tool("double", lambda x: x * 2)
        assert pool.execute("ask_host", {"host_tool": "double", "x": 21}) == 42
        with pytest.raises(ToolError, match="'missing' not found"):
            pool.execute("ask_host", {"host_tool": "missing", "x": 1})


# --- their heartbeat dependency on the host service ----------------------------------------------

@needs_peer
def test_their_worker_exits_when_the_host_service_dies(no_surviving_children: None) -> None:
    """Our host service satisfies their dependency while it runs; once it stops answering,
    their worker exits on its own (Snakepit's dependent heartbeat)."""
    import grpc

    from snakepit_actors._proto import snakepit_wire_pb2, snakepit_wire_pb2_grpc
    from snakepit_actors.compat.host_service import serve
    from snakepit_actors.protocols import wire_for

    folder = tempfile.mkdtemp(prefix="spk-hb-")
    socket_path = os.path.join(folder, "host.sock")
    server, service = serve(socket_path, snakepit_wire_pb2, snakepit_wire_pb2_grpc)
    assert os.stat(socket_path).st_mode & 0o777 == 0o600
    ready = os.path.join(folder, "ready")
    env = {**os.environ, "PYTHONPATH": str(PEER), "SNAKEPIT_OTEL_CONSOLE": "false",
           "SNAKEPIT_READY_FILE": ready,
           "SNAKEPIT_HEARTBEAT_CONFIG": json.dumps({"interval_ms": 200, "timeout_ms": 300,
                                                    "max_missed_heartbeats": 2})}
    with open(os.path.join(folder, "log"), "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(PEER / "grpc_server.py"), "--adapter", ADAPTER, "--port", "0",
             "--elixir-address", "unix:" + socket_path], env=env, stdout=log, stderr=log)
    try:
        _wait_for(lambda: os.path.exists(ready), 30.0)
        port = int(Path(ready).read_text())
        wire = wire_for("snakepit")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            response = wire.stub(channel).ExecuteTool(
                wire.request("r1", "hb-session", "add", b'{"a": 1, "b": 2}', 0.0, ""),
                timeout=10.0)
        assert wire.decode(response, "w") == (3.0, None)
        _wait_for(lambda: service.heartbeats >= 2, 10.0)
        assert proc.poll() is None  # alive while the host answers
        server.stop(0).wait()
        proc.wait(timeout=20.0)  # it exits on its own once heartbeats fail
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop(0)
