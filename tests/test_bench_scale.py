"""``snakepit-actors bench scale``: its target table from measured runs, and one small real run
(``snakepit_actors/ops/bench_scale.py``). No timing assertions: the bench prints figures."""

from __future__ import annotations

import pytest

from snakepit_actors.ops.bench_scale import measure_pool_apart, role_of, run
from snakepit_actors.ops.bench_scale_table import (
    PoolRun,
    RawRun,
    ScaleOptions,
    ScaleResults,
    as_json,
    render,
    targets,
)
from snakepit_actors.ops.cli_parser import build_parser

pytestmark = pytest.mark.timeout(120)


def pool_run(n: int, method: str, **overrides: float) -> PoolRun:
    values = {"startup_s": 2.0, "tool_n": 90.0 * n, "tool_2n": 88.0 * n, "pinned": 95.0 * n,
              "close_s": 1.0, **overrides}
    uss = {"worker bridge": (n, 18.0 * n), "Worker actor": (n, 5.0 * n),
           "Starter actor": (n, 2.0 * n), "control plane": (10, 50.0)}
    return PoolRun(n, method, values["startup_s"], 3 * n + 10, uss, values["tool_n"],
                   values["tool_2n"], values["pinned"], values["close_s"])


def results() -> ScaleResults:
    return ScaleResults(
        pools=[pool_run(64, "forkserver", startup_s=2.5), pool_run(64, "spawn", startup_s=4.0),
               pool_run(256, "forkserver", startup_s=9.0, close_s=2.0)],
        raws=[RawRun(64, "spawn", 3.5, 15.7, 64, 6000.0), RawRun(64, "fork", 0.4, 5.8, 64)],
        notes=["machine loaded"])


def test_each_target_of_the_issue_is_filled_from_the_run_of_its_size() -> None:
    rows = {row.figure: row for row in targets(results())}
    fork64 = rows["start-up, 64 workers, fork server"]
    assert (fork64.measured, fork64.baseline, fork64.met) == (2.5, 3.5, True)
    assert rows["start-up, 256 workers, fork server"].met is False
    spawn = rows["start-up, 64 workers, spawn, vs raw concurrent spawn"]
    assert spawn.value == pytest.approx(4.0 / 3.5) and spawn.met is True
    control = rows["control-plane USS per worker (Starter + Worker actor) (256)"]
    assert control.measured == pytest.approx(7.0) and control.met is True
    tool = rows["10 ms tool, 64 workers, 128 callers, vs raw pinned"]
    assert tool.value == pytest.approx(88 / 95) and tool.met is True
    assert rows["close(), 256 workers"].measured == 2.0


def test_a_figure_without_its_run_shows_a_dash_and_says_why() -> None:
    only_spawn = ScaleResults(pools=[pool_run(16, "spawn")])
    rows = {row.figure: row for row in targets(only_spawn)}
    missing = rows["start-up, 64 workers, fork server"]
    assert missing.measured is None and missing.met is None
    assert "no fork-server run" in missing.note
    text = render(only_spawn)
    assert "start-up, 64 workers, fork server" in text and "target is for 256 workers" in text


def test_the_table_prints_every_figure_with_its_baseline_target_and_todays_value() -> None:
    text = render(results())
    assert "2.50      3.50  0.71x  <= 3 s     yes  - (spawn: ~9 s projected)" in text
    assert ">= 0.85x" in text and "21 MB" in text and "note: machine loaded" in text
    assert next(row for row in as_json(results()) if "figure" in row)["met"] is True


@pytest.mark.parametrize(("cmdline", "parent", "role"), [
    ("python -m snakepit_actors.bridge --adapter x:Y", "snakepit-actors: Worker w1",
     "worker bridge"),
    ("python -m snakepit_actors.bridge.fork_server --run-id r", "snakepit-actors: Pool",
     "fork server"),
    ("python -m snakepit_actors.bridge.fork_server --run-id r",
     "python -m snakepit_actors.bridge.fork_server --run-id r", "worker bridge"),
    ("snakepit-actors: Worker default_worker_1 (pool p)", "", "Worker actor"),
    ("snakepit-actors: Starter default_worker_1 (pool p)", "", "Starter actor"),
    ("snakepit-actors: WorkerSupervisor (pool p)", "", "control plane"),
    ("MultiProcAdmin ActorAddr-(T|:1234)", "", "control plane"),
])
def test_a_process_is_sorted_into_its_role_by_its_title(cmdline: str, parent: str,
                                                        role: str) -> None:
    assert role_of(cmdline, parent) == role


def test_the_cli_reads_bench_scale_and_its_sizes() -> None:
    args = build_parser().parse_args(["bench", "scale", "--n", "16,64", "--start-method",
                                      "spawn"])
    assert (args.what, args.n, args.start_method) == ("scale", (16, 64), "spawn")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "scale", "--n", "16,x"])


@pytest.mark.slow
def test_a_small_scale_run_measures_the_pool_and_the_bare_servers_and_leaves_nothing() -> None:
    said: list[str] = []
    out = run(ScaleOptions(ns=(4,), start_methods=("spawn",), seconds=1.0,
                           progress=said.append))
    assert any(line.startswith("scale: 4 workers, spawn: up in") for line in said)  # the
    # pool is measured in a fresh process of its own, which reports its progress here
    (pool,) = out.pools
    assert pool.n == 4 and pool.processes >= 3 * 4
    assert pool.uss_mb["worker bridge"][0] == 4 and pool.uss_mb["Worker actor"][0] == 4
    assert pool.uss_mb["Starter actor"][0] == 4
    assert pool.tool_n > 0 and pool.tool_2n > 0 and pool.pinned > 0
    assert {(r.how, r.answered) for r in out.raws} == {("spawn", 4), ("fork", 4)}
    assert "control-plane USS per worker" in render(out)


def test_a_pool_measured_apart_that_fails_says_so() -> None:
    with pytest.raises(RuntimeError, match=r"(?s)exit code 1.*no-such-method"):
        measure_pool_apart(2, "no-such-method", ScaleOptions(seconds=0.1))
