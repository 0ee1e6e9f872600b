"""The console script's subcommands parse and run (demo and bench run in test_examples and by
hand; cleanup is cheap enough to run here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snakepit_actors.ops.cli", *args],
                          capture_output=True, text=True, timeout=50)


def test_cleanup_on_an_empty_data_dir_reports_nothing_to_do(tmp_path: Path) -> None:
    done = cli("cleanup", "--dry-run", "--json", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert isinstance(report, dict)


def test_an_unknown_subcommand_is_a_usage_error() -> None:
    done = cli("frobnicate")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_bench_measures_one_scenario_against_raw_grpc_and_process_pool_as_json() -> None:
    done = cli("bench", "--scenario", "echo", "--dispatch", "direct", "--workers", "1",
               "--concurrency", "2", "--duration", "0.3", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    figures = {f["scenario"]: f for f in json.loads(done.stdout)}
    ours = figures["direct path echo, 2 callers, 1 workers"]
    assert ours["ratio"] > 0 and ours["p50_ms"] > 0 and ours["p99_ms"] >= ours["p50_ms"]
    assert "ProcessPoolExecutor(1) sequential echo p50" in figures
    assert "workers ready 1/1" in done.stderr


def test_bench_refuses_an_unbounded_duration_and_an_unknown_scenario() -> None:
    assert "must be in (0, 120]" in cli("bench", "--duration", "1000").stderr
    assert "invalid choice" in cli("bench", "--scenario", "pi").stderr


def test_python_dash_m_snakepit_actors_runs_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "snakepit_actors", "cleanup", "--help"],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    assert "usage: snakepit-actors cleanup" in done.stdout


def test_version_prints_the_package_version() -> None:
    from snakepit_actors import __version__

    done = subprocess.run([sys.executable, "-m", "snakepit_actors", "--version"],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0 and done.stdout.strip() == f"snakepit-actors {__version__}"
