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
import tarfile
import tomllib
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import snakepit_actors

ROOT = Path(__file__).resolve().parent.parent
#: What the build needs: pyproject.toml names README.md and the license files; the two package
#: roots.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "NOTICE", "snakepit_actors", "supervision")
SUBPACKAGES = ("core", "tree", "client", "multihost", "ops", "messages", "bridge", "_proto",
               "protocols", "compat", "web")
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
                                      "snakepit_supervision/supervisor.py",
                                      *(f"snakepit_actors/web/static/{page}" for page in (
                                          "index.html", "app.js", "style.css")))
                if marker not in names]
    assert not missing, missing


def test_the_wheel_metadata_has_license_version_classifiers_and_urls(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(archive.read(name).decode())
        licenses = {n.rsplit("/", 1)[1] for n in archive.namelist()
                    if ".dist-info/licenses/" in n}
    assert meta["Version"] == snakepit_actors.__version__
    assert meta["License-Expression"] == "MIT" and licenses == {"LICENSE", "NOTICE"}
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], (
        "PEP 639: the license expression replaces License classifiers")
    urls = meta.get_all("Project-URL") or []
    assert urls and all(", https://" in url for url in urls), urls
    assert meta["Author"] and meta["Requires-Python"] == ">=3.11"


def test_the_version_is_written_in_one_place() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")


@pytest.mark.timeout(120)
def test_the_sdist_carries_the_docs_protos_tests_and_license(tmp_path: Path) -> None:
    """Built without isolation from a copy of the checkout (the build writes egg-info)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "site", "dist", "__pycache__", "*.pyc", "build", "*.egg-info", ".*_cache",
        ".hypothesis"))
    done = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                           "--outdir", str(tmp_path / "dist"), str(src)],
                          capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]
    (sdist,) = (tmp_path / "dist").glob("snakepit_actors-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    wanted = {"LICENSE", "NOTICE", "CHANGELOG.md", "README.md", "pyproject.toml", "mkdocs.yml",
              "protos/snakepit/bridge/v1/bridge.proto", "docs/errors.md", "tests/conftest.py",
              "scripts/gen_proto.py", "snakepit_actors/__init__.py",
              "supervision/snakepit_supervision/__init__.py"}
    assert wanted <= names, sorted(wanted - names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


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
