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
    return subprocess.run([sys.executable, "-m", "snakepit_actors.cli", *args],
                          capture_output=True, text=True, timeout=50)


def test_cleanup_on_an_empty_data_dir_reports_nothing_to_do(tmp_path: Path) -> None:
    done = cli("cleanup", "--dry-run", "--json", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert isinstance(report, dict)


def test_an_unknown_subcommand_is_a_usage_error() -> None:
    done = cli("frobnicate")
    assert done.returncode == 2 and "invalid choice" in done.stderr
