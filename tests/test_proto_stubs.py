"""The checked-in gRPC stubs are exactly what ``scripts/gen_proto.py`` generates from the protos."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
CHECKED_IN = ROOT / "snakepit_actors" / "_proto"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_the_stubs_reproduces_the_checked_in_files(tmp_path: Path) -> None:
    written = _load_generator().generate(tmp_path)
    assert {p.name for p in written} == {
        f"{name}{suffix}" for name in ("bridge", "health", "snakepit_wire")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")}
    stale = [p.name for p in written if p.read_text() != (CHECKED_IN / p.name).read_text()]
    assert not stale, (f"checked-in stubs differ from the protos: {stale}; "
                       "run `python scripts/gen_proto.py` and commit the result")


def test_the_stubs_import_as_a_package() -> None:
    from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc, health_pb2, health_pb2_grpc

    request = bridge_pb2.ExecuteToolRequest.DESCRIPTOR
    assert request.full_name == "snakepit.bridge.v1.ExecuteToolRequest"
    assert hasattr(bridge_pb2_grpc, "BridgeServiceStub")
    assert health_pb2.HealthCheckResponse.SERVING == 1
    assert hasattr(health_pb2_grpc, "HealthStub")


def test_the_snakepit_wire_stubs_speak_snakepits_package() -> None:
    from snakepit_actors._proto import snakepit_wire_pb2, snakepit_wire_pb2_grpc

    request = snakepit_wire_pb2.ExecuteToolRequest.DESCRIPTOR
    assert request.full_name == "snakepit.bridge.ExecuteToolRequest"
    assert request.fields_by_name["parameters"].number == 3
    assert hasattr(snakepit_wire_pb2_grpc, "BridgeServiceStub")
