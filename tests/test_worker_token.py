"""Specification of snakepit_actors.worker_token and the bridge's token check (issue 13): a
worker answers only calls that carry its pool's token, and its secrets (the token, the adapter
config) never show on its command line or in its environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc
from snakepit_actors.errors import PoolNotReadyError
from snakepit_actors.tree import processes
from snakepit_actors.worker_token import new_token, with_token

from .test_bridge import make_spec
from .test_peer_access import needs_another_user, open_to_others, run_as_nobody

TOKEN = new_token()


@pytest.fixture
def tcp_bridge(tmp_path: Path) -> Iterator[tuple[processes.BridgeProcess, str]]:
    proc = processes.spawn_bridge(make_spec(tmp_path, listen="127.0.0.1:0", token=TOKEN,
                                            adapter_config={"api_key": "s3cret-key"}))
    try:
        yield proc, processes.wait_ready(proc, 20.0).address
    finally:
        processes.stop_bridge(proc, grace_s=1.0)


def echo(address: str, token: str) -> object:
    with grpc.insecure_channel(address) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(with_token(channel, token))
        reply = stub.ExecuteTool(bridge_pb2.ExecuteToolRequest(
            request_id="r", tool="echo", args_json=b'{"x": 1}'), timeout=10)
        return json.loads(reply.result_json)


def test_a_worker_answers_a_call_with_the_token_and_refuses_one_without_or_with_another(
        tcp_bridge: tuple[processes.BridgeProcess, str]) -> None:
    _, address = tcp_bridge
    assert echo(address, TOKEN) == {"x": 1}
    for token in ("", new_token()):
        with pytest.raises(grpc.RpcError) as info:
            echo(address, token)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "token" in str(info.value.details())


def test_a_streaming_call_without_the_token_is_refused_too(
        tcp_bridge: tuple[processes.BridgeProcess, str]) -> None:
    _, address = tcp_bridge
    with grpc.insecure_channel(address) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ExecuteStreamingTool(bridge_pb2.ExecuteToolRequest(
                request_id="r", tool="echo", args_json=b"{}"), timeout=10))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_token_and_adapter_config_are_neither_on_the_command_line_nor_in_the_env(
        tcp_bridge: tuple[processes.BridgeProcess, str]) -> None:
    proc, _ = tcp_bridge
    shown = " ".join(psutil.Process(proc.pid).cmdline()) + json.dumps(
        psutil.Process(proc.pid).environ())
    assert TOKEN not in shown and "s3cret-key" not in shown and "api_key" not in shown
    assert os.readlink(f"/proc/{proc.pid}/fd/0") == "/dev/null"  # the pipe is spent


def test_the_adapter_config_reaches_the_adapter_through_stdin(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("")
    config = {"fail_init_if_exists": str(broken)}
    proc = processes.spawn_bridge(make_spec(tmp_path, adapter_config=config))
    try:
        with pytest.raises(PoolNotReadyError, match="simulated broken environment"):
            processes.wait_ready(proc, 20.0)
    finally:
        processes.stop_bridge(proc, grace_s=1.0)


def test_a_tcp_pool_calls_its_workers_with_the_token_and_nobody_else_can(
        tmp_path: Path) -> None:
    for data_path in ("direct", "actor"):
        with Pool.start(PoolConfig(name="tok", pool_size=1, transport="tcp",
                                   data_path=data_path)) as pool:  # type: ignore[arg-type]
            assert pool.execute("echo", {"y": 2}) == {"y": 2}
            endpoint = next(w.endpoint for w in pool.workers())
            assert echo(endpoint, pool.worker_token) == {"x": 1}
            with pytest.raises(grpc.RpcError) as info:
                echo(endpoint, "")
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


_GRPC_ATTACKER = '''
import json, sys
import grpc
address, request = sys.argv[1], bytes.fromhex(sys.argv[2])
with grpc.insecure_channel(address) as channel:
    call = channel.unary_unary("/snakepit.bridge.v1.BridgeService/ExecuteTool")
    try:
        print(json.dumps({"answered": call(request, timeout=10).hex()}))
    except grpc.RpcError as exc:
        print(json.dumps({"refused": exc.code().name}))
'''


@needs_another_user
def test_another_user_with_grpc_cannot_call_a_tcp_worker(tmp_path: Path) -> None:
    import typing_extensions

    open_to_others(tmp_path)
    site = tmp_path / "site"
    shutil.copytree(os.path.dirname(grpc.__file__), site / "grpc")
    shutil.copy(typing_extensions.__file__, site)
    subprocess.run(["chmod", "-R", "a+rX", str(tmp_path)], check=True)
    script = tmp_path / "grpc_attacker.py"
    script.write_text(_GRPC_ATTACKER)
    request = bridge_pb2.ExecuteToolRequest(request_id="r", tool="echo",
                                            args_json=b'{"pwned": 1}').SerializeToString()
    with Pool.start(PoolConfig(name="tok", pool_size=1, transport="tcp")) as pool:
        endpoint = next(w.endpoint for w in pool.workers())
        report = run_as_nobody(tmp_path, {}, argv=[str(script), endpoint, request.hex()],
                               env={"PYTHONPATH": str(site)})
        assert report == {"refused": "UNAUTHENTICATED"}, report
        assert pool.execute("echo", {"owner": True}) == {"owner": True}
