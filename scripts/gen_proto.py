"""Regenerate the gRPC stubs under ``snakepit_actors/_proto/`` from ``protos/``.

Usage: ``python scripts/gen_proto.py [OUT_DIR]`` (default: ``snakepit_actors/_proto``), with
exactly the grpcio-tools version of the ``stubs`` extra in ``pyproject.toml``: the stubs it writes
set the lowest grpcio and protobuf the package claims. In a venv of its own::

    python -m venv /tmp/stubs && /tmp/stubs/bin/pip install 'grpcio-tools==1.70.0'
    /tmp/stubs/bin/python scripts/gen_proto.py

grpcio-tools writes absolute imports (``import bridge_pb2``); they are rewritten to relative
ones so the stubs live inside the package. ``tests/test_proto_stubs.py`` runs this into a
temporary directory and fails if the result differs from the checked-in files.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTOS = {
    "bridge": ROOT / "protos" / "snakepit" / "bridge" / "v1",
    "health": ROOT / "protos" / "grpc" / "health" / "v1",
    "snakepit_wire": ROOT / "protos" / "snakepit" / "compat",
}
_WELL_KNOWN = Path(protoc.__file__).resolve().parent / "_proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def pinned_tools_version() -> str:
    """The grpcio-tools version of the ``stubs`` extra (``grpcio-tools==X``)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    (spec,) = [s for s in extras["stubs"] if s.startswith("grpcio-tools==")]
    return str(spec.split("==", 1)[1])


def generate(out_dir: Path) -> list[Path]:
    """Write the stubs of every proto into ``out_dir`` and return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, folder in PROTOS.items():
        args = [
            "grpc_tools.protoc",
            f"-I{folder}",
            f"-I{_WELL_KNOWN}",  # google/protobuf/*.proto, bundled with grpcio-tools
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(folder / f"{name}.proto"),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {name}.proto")
        for suffix in GENERATED_SUFFIXES:
            path = out_dir / f"{name}{suffix}"
            text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", path.read_text(),
                          flags=re.MULTILINE)
            path.write_text(text)
            written.append(path)
    return written


if __name__ == "__main__":
    installed, pinned = importlib.metadata.version("grpcio-tools"), pinned_tools_version()
    if installed != pinned:
        raise SystemExit(f"grpcio-tools {installed} is installed, the stubs are written with "
                         f"{pinned} (the `stubs` extra): run this script in a venv of its own, "
                         f"see its docstring")
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "snakepit_actors" / "_proto"
    for path in generate(target):
        print(path.relative_to(target.parent) if path.is_relative_to(target.parent) else path)
