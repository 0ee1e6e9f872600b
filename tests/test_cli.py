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


VERBS = ("demo", "bench", "start", "node", "status", "exec", "recycle", "doctor", "cleanup")


def test_every_verb_has_a_description_and_examples_in_its_help() -> None:
    from snakepit_actors.ops.cli_parser import build_parser

    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(subparsers) == set(VERBS)
    for verb, sub in subparsers.items():
        text = sub.format_help()
        assert sub.description and len(sub.description) > 40, verb
        assert f"examples:\n  snakepit-actors {verb}" in text or (
            "examples:\n  snakepit-actors --log-format" in text), (verb, text)
        assert "DESIGN" not in text and "§" not in text, verb


def test_the_top_level_help_lists_every_exit_code() -> None:
    from snakepit_actors.ops.cli_parser import EXIT_CODES

    done = cli("--help")
    assert done.returncode == 0
    for code, meaning in EXIT_CODES.items():
        assert f"  {code}  {meaning}" in done.stdout


def test_the_exit_codes_are_documented_in_the_operations_guide() -> None:
    from snakepit_actors.ops.cli_parser import EXIT_CODES

    guide = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in guide, code


def test_a_bad_config_exits_3_with_one_did_you_mean_per_key(tmp_path: Path) -> None:
    config = tmp_path / "pool.toml"
    config.write_text('[node]\nadmin_port = 27999\n[pools.default]\npool_sise = 2\n')
    done = cli("status", "--config", str(config))
    assert done.returncode == 3, done.stderr
    assert "pool_sise is not a PoolConfig field; did you mean 'pool_size'?" in done.stderr
    as_json = cli("status", "--config", str(config), "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 3 and report["exit_code"] == 3
    assert (report["error"]["type"], report["error"]["category"]) == ("ConfigError", "config")


def test_an_unreachable_node_exits_4_and_reports_json_under_json() -> None:
    from snakepit_actors.system import free_port

    port = str(free_port())
    done = cli("exec", "--port", port, "echo", '{"a": 1}')
    assert done.returncode == 4 and "no node is listening" in done.stderr
    as_json = cli("status", "--port", port, "--json")
    error = json.loads(as_json.stdout)["error"]
    assert as_json.returncode == 4 and as_json.stderr == ""
    assert (error["type"], error["reason"]) == ("PoolNotReadyError", "node_unreachable")


def test_usage_errors_exit_2_with_or_without_json() -> None:
    assert cli("exec", "echo").returncode == 2  # no way to find the node
    bad_args = cli("exec", "--port", "1", "--json", "echo", "[1, 2]")
    assert bad_args.returncode == 2
    error = json.loads(bad_args.stdout)["error"]
    assert error["category"] == "usage" and "ARGS must be a JSON object" in error["message"]


def test_each_error_maps_to_its_documented_exit_code() -> None:
    from snakepit_actors import errors
    from snakepit_actors.ops.cli import UsageError, error_report, exit_code

    cases = {
        errors.ToolError("ValueError: x", details={"type": "ValueError"}): 1,
        errors.RequestTimeoutError("slow"): 1,
        errors.WorkerCrashedError("gone"): 1,
        UsageError("give --port"): 2,
        errors.InvalidArgumentsError("no pool 'x'", reason="unknown_pool"): 2,
        errors.ConfigError("pool_size must be >= 1, got 0"): 3,
        errors.PoolNotReadyError("nothing on 127.0.0.1:1", reason="node_unreachable"): 4,
    }
    for error, code in cases.items():
        assert exit_code(error) == code, error
        text, same = error_report(error, as_json=False)
        assert same == code and text == f"error: {type(error).__name__}: {error}"
        document = json.loads(error_report(error, as_json=True)[0])
        assert document["exit_code"] == code and document["error"]["message"] == str(error)
    tool = json.loads(error_report(errors.ToolError("x", details={"type": "E"}), True)[0])
    assert tool["error"] == {"type": "ToolError", "message": "x", "category": "tool",
                             "reason": "tool_raised", "details": {"type": "E"}}
