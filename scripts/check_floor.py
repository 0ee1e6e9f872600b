"""Install the lowest versions the package claims in a throw-away venv, and use them.

Usage: ``python scripts/check_floor.py [--wheel PATH]`` (``.ci/run`` runs it).

1. Reads the floors from ``pyproject.toml``: the ``>=`` bound of every dependency, and the
   ``grpcio-tools`` pin of the ``stubs`` extra.
2. Creates a venv (no system site-packages) and installs exactly those versions, then the
   package's wheel with ``--no-deps`` (built from a copy of the sources unless ``--wheel``).
3. Regenerates the gRPC stubs there with the pinned grpcio-tools and compares them, byte for
   byte, with the checked-in ones.
4. Smoke test: imports the package, checks the floor versions are the ones in use, starts a
   pool of one worker, makes one echo call, closes it, and checks no process it started is left.

Exits 0 when all of that holds; prints what failed otherwise. Needs the package index.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
import venv
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "NOTICE", "snakepit_actors", "supervision")
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info", ".mypy_cache")
_MARKER = "SNAKEPIT_FLOOR_CHECK"

#: Run in the venv: the versions in use, then one pool of one worker, one call, closed.
SMOKE = """
import json, sys
import grpc, google.protobuf
from snakepit_actors import Pool, PoolConfig, __version__
with Pool.start(PoolConfig(name="floor", pool_size=1, startup_timeout=60)) as pool:
    assert pool.execute("echo", {"x": 1}, timeout=30) == {"x": 1}
print(json.dumps({"grpcio": grpc.__version__, "protobuf": google.protobuf.__version__,
                  "snakepit_actors": __version__}))
"""


def floors(pyproject: Path) -> dict[str, str]:
    """``{distribution: lowest claimed version}``, plus the ``stubs`` extra's grpcio-tools."""
    project = tomllib.loads(pyproject.read_text())["project"]
    found: dict[str, str] = {}
    for spec in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", spec)
        if match is None:
            raise SystemExit(f"dependency {spec!r} has no '>=' floor to install")
        found[match.group(1)] = match.group(2)
    (tools,) = [s for s in project["optional-dependencies"]["stubs"] if "grpcio-tools" in s]
    found["grpcio-tools"] = tools.split("==", 1)[1]
    return found


def _run(args: list[str], timeout_s: float, **kwargs: object) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                          **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return str(done.stdout)


def build_wheel(work: Path) -> Path:
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=_JUNK)
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(work), str(src)], 180)
    (wheel,) = work.glob("snakepit_actors-*.whl")
    return wheel


def _clean_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(XDG_DATA_HOME=str(work / "data"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _leftovers(marker: str) -> list[int]:
    """Processes whose environment carries this run's marker (workers, actors, admin)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(_MARKER) == marker:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def check(wheel: Path | None) -> None:
    wanted = floors(ROOT / "pyproject.toml")
    with tempfile.TemporaryDirectory(prefix="snakepit-floor-") as tmp:
        work = Path(tmp)
        env = _clean_env(work)
        started = time.monotonic()
        wheel = wheel or build_wheel(work)
        venv.EnvBuilder(with_pip=True, system_site_packages=False).create(work / "venv")
        python = str(work / "venv" / "bin" / "python")
        pins = [f"{name}=={version}" for name, version in wanted.items()]
        _run([python, "-m", "pip", "install", "-q", *pins], 300, env=env)
        _run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], 120, env=env)
        _run([python, "-m", "pip", "check"], 60, env=env)
        print(f"installed {' '.join(pins)} and {wheel.name} "
              f"({time.monotonic() - started:.1f}s)", flush=True)

        out = work / "stubs"
        _run([python, str(ROOT / "scripts" / "gen_proto.py"), str(out)], 120, env=env)
        checked_in = ROOT / "snakepit_actors" / "_proto"
        stale = [p.name for p in sorted(out.iterdir())
                 if p.read_text() != (checked_in / p.name).read_text()]
        if stale:
            raise SystemExit(f"stubs from grpcio-tools {wanted['grpcio-tools']} differ from "
                             f"the checked-in ones: {stale}; regenerate them (docs/development.md)")
        print(f"stubs regenerated by grpcio-tools {wanted['grpcio-tools']}: identical", flush=True)

        marker = uuid.uuid4().hex
        try:
            said = _run([python, "-c", SMOKE], 120, env={**env, _MARKER: marker}, cwd=work)
        finally:
            left = _leftovers(marker)
            for pid in left:
                psutil.Process(pid).kill()
        used = dict(json.loads(said.strip().splitlines()[-1]))
        if left:
            raise SystemExit(f"processes outlived the smoke test's pool: {left}")
        for name in ("grpcio", "protobuf"):
            if used[name] != wanted[name]:
                raise SystemExit(f"{name} {used[name]} was used, not the floor {wanted[name]}")
        print(f"smoke test on {used}: a 1-worker pool answered and closed "
              f"({time.monotonic() - started:.1f}s in all)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--wheel", type=Path, default=None,
                        help="install this wheel (default: build one from the sources)")
    check(parser.parse_args().wheel)


if __name__ == "__main__":
    main()
