"""The checked-in gRPC stubs are what ``scripts/gen_proto.py`` generates from the protos.

The exact, byte-for-byte comparison needs the grpcio-tools version pinned by the ``stubs`` extra
(the one that sets the grpcio/protobuf floors). In another environment the schema check below
still proves the stubs describe the protos; ``.ci/run`` runs the exact comparison in a venv of
the floor versions (``scripts/check_floor.py``)."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
CHECKED_IN = ROOT / "snakepit_actors" / "_proto"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tools_version() -> str:
    try:
        return importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("grpcio-tools is not installed (the dev extra has it)")


def test_regenerating_the_stubs_reproduces_the_checked_in_files(tmp_path: Path) -> None:
    generator = _load_generator()
    if _tools_version() != generator.pinned_tools_version():
        pytest.skip(f"grpcio-tools {_tools_version()} is installed; the stubs are written by "
                    f"{generator.pinned_tools_version()} (scripts/check_floor.py compares them)")
    written = generator.generate(tmp_path)
    assert {p.name for p in written} == {
        f"{name}{suffix}" for name in generator.PROTOS
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")}
    stale = [p.name for p in written if p.read_text() != (CHECKED_IN / p.name).read_text()]
    assert not stale, (f"checked-in stubs differ from the protos: {stale}; "
                       "regenerate them as docs/development.md says and commit the result")


def _without_json_names(file: descriptor_pb2.FileDescriptorProto) -> bytes:
    """The schema minus ``json_name`` (derived; only some protoc outputs write it)."""
    def strip(messages: object) -> None:
        for message in messages:  # type: ignore[attr-defined]
            for field in message.field:
                field.ClearField("json_name")
            strip(message.nested_type)

    strip(file.message_type)
    return file.SerializeToString(deterministic=True)


@pytest.mark.parametrize("name", sorted(_load_generator().PROTOS))
def test_the_checked_in_stubs_describe_the_protos(name: str, tmp_path: Path) -> None:
    _tools_version()
    from grpc_tools import protoc  # type: ignore[import-untyped]

    generator = _load_generator()
    folder = generator.PROTOS[name]
    out = tmp_path / f"{name}.pb"
    assert protoc.main(["protoc", f"-I{folder}", f"-I{generator._WELL_KNOWN}",
                        f"--descriptor_set_out={out}", str(folder / f"{name}.proto")]) == 0
    (fresh,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    stub = importlib.import_module(f"snakepit_actors._proto.{name}_pb2")
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(stub.DESCRIPTOR.serialized_pb)
    assert _without_json_names(checked_in) == _without_json_names(fresh), (
        f"{name}_pb2.py does not match protos/: regenerate the stubs (docs/development.md)")


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
