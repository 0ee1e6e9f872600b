"""The distribution installs side by side with Roboflow's ``supervision`` (the computer-vision
package of that name on the public index): our generic supervision layer is the top-level
package ``snakepit_supervision``, so neither install overwrites the other's files.

The wheel is built from a copy of the sources (setuptools builds in the tree it is given and
would leave ``build/`` and ``*.egg-info`` in the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What the build needs: pyproject.toml names README.md; the two package roots.
SOURCES = ("pyproject.toml", "README.md", "snakepit_actors", "supervision")
SUBPACKAGES = ("core", "tree", "client", "multihost", "ops", "messages", "bridge", "_proto",
               "protocols", "compat")
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info", ".mypy_cache",
                               ".ruff_cache", ".pytest_cache")

#: Run inside a venv holding both distributions: imports and uses each of them.
_USE_BOTH = """
import json
import supervision
import snakepit_actors.tree.pool
from snakepit_actors import PoolConfig
from snakepit_supervision import Supervisor

config = PoolConfig(pool_size=2)
assert config.pool_size == 2 and Supervisor.__name__ == "Supervisor"
assert len(supervision.Detections.empty()) == 0
print(json.dumps({"supervision": supervision.__file__,
                  "snakepit_supervision": Supervisor.__module__,
                  "snakepit_actors": snakepit_actors.__file__}))
"""


def build_wheel(out_dir: Path) -> Path:
    """Build our wheel from a copy of the sources into ``out_dir``; its path."""
    src = out_dir / "src"
    src.mkdir(parents=True)
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=_JUNK)
        else:
            shutil.copy2(ROOT / name, src / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out_dir), str(src)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out_dir.glob("snakepit_actors-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.mark.timeout(120)
def test_the_wheel_has_no_top_level_supervision_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if "/" in name}
    assert "supervision" not in tops, sorted(tops)
    assert {"snakepit_actors", "snakepit_supervision"} <= tops, sorted(tops)


@pytest.mark.timeout(120)
def test_the_wheel_holds_every_subpackage_and_the_typing_markers(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f"snakepit_actors/{sub}/__init__.py" for sub in SUBPACKAGES
               if f"snakepit_actors/{sub}/__init__.py" not in names]
    missing += [marker for marker in ("snakepit_actors/py.typed",
                                      "snakepit_supervision/py.typed",
                                      "snakepit_supervision/supervisor.py")
                if marker not in names]
    assert not missing, missing


# --- side by side with Roboflow's supervision, in fresh venvs ------------------------------------

def _index_reachable() -> tuple[bool, str]:
    """Whether pip can ask the package index about ``supervision`` (and what it said)."""
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "supervision"],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False, "pip index versions supervision timed out"
    return done.returncode == 0, (done.stderr or done.stdout).strip()[-500:]


def _isolated_env() -> dict[str, str]:
    """Our environment without what would let the venv see this checkout's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _fresh_venv(path: Path) -> Path:
    """A venv without the system site-packages (they could hide a clash); its python."""
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(path)
    return path / "bin" / "python"


def _pip_install(python: Path, *args: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300, env=_isolated_env())
    assert done.returncode == 0, f"pip install {' '.join(args)}:\n{done.stderr[-3000:]}"


def _use_both(python: Path) -> dict[str, str]:
    done = subprocess.run([str(python), "-c", _USE_BOTH], capture_output=True, text=True,
                          timeout=120, env=_isolated_env(), cwd=python.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-then-theirs",
                                                          "theirs-then-ours"])
def test_both_supervision_packages_install_side_by_side_and_work(
        wheel: Path, tmp_path: Path, ours_first: bool) -> None:
    reachable, said = _index_reachable()
    if not reachable:
        pytest.skip(f"the package index is unreachable, cannot install supervision: {said}")
    python = _fresh_venv(tmp_path / "venv")
    installs = [[str(wheel)], ["supervision"]]
    for args in installs if ours_first else installs[::-1]:
        _pip_install(python, *args)
    found = _use_both(python)
    assert found["snakepit_supervision"] == "snakepit_supervision.supervisor"
    for package in ("supervision", "snakepit_actors"):  # both from the venv, each its own
        path = Path(found[package])
        assert path.is_relative_to(tmp_path / "venv") and path.parent.name == package, found
