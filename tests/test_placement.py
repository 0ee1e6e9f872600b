"""The pure parts of multi-host placement: NodeTable, member checks, CLI parsing, config."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from snakepit_actors import PoolConfig
from snakepit_actors.core.placement import (
    NODE_CAPABILITY,
    SECRET_CAPABILITY,
    NodeTable,
    member_problem,
    secret_digest,
)
from snakepit_actors.errors import ConfigError
from snakepit_actors.multihost.member import parse_capability, parse_leader
from snakepit_actors.tree.member_env import MemberEnv

pytestmark = pytest.mark.timeout(10)


def table(*live: str, now: float = 0.0) -> NodeTable:
    nodes = NodeTable(heartbeat_s=1.0, misses=3, placement_timeout=5.0)
    for name in live:
        nodes.add(name, {NODE_CAPABILITY: name}, agent=f"agent-{name}", now=now)
        assert nodes.pong(name, now) is True
    return nodes


def test_workers_go_to_the_least_loaded_live_member_ties_by_name() -> None:
    nodes = table("b", "a")
    assert [nodes.place(f"w{i}", 0.0) for i in range(5)] == ["a", "b", "a", "b", "a"]
    assert nodes.place("w0", 0.0) == "a"  # placed again: its seat on a is freed first (2:2)
    assert nodes.place("w5", 0.0) == "b"


def test_a_worker_with_no_live_member_is_parked_until_one_answers() -> None:
    nodes = table()
    assert nodes.place("w1", 0.0) is None
    nodes.add("m", {NODE_CAPABILITY: "m"}, agent="agent", now=1.0)
    assert nodes.settling() and nodes.place("w2", 1.0) is None  # joining is not live yet
    assert nodes.pong("m", 1.5) is True and not nodes.settling()
    assert nodes.unpark(1.5) == [("w1", "m"), ("w2", "m")]
    assert nodes.parked == {}
    assert nodes.pong("m", 2.0) is False  # already live


def test_silent_members_are_reported_then_lost_with_their_workers() -> None:
    nodes = table("a", "b")
    nodes.place("w1", 0.0)
    nodes.place("w2", 0.0)
    nodes.pong("b", 2.5)
    assert nodes.tick(2.9) == ([], [])
    assert nodes.tick(3.1) == (["a"], [])
    assert nodes.lose("a", 3.1) == ["w1"]
    assert not nodes.knows("a")
    assert [m.name for m in nodes.pingable(3.2)] == ["b"]
    assert nodes.tick(3.3) == ([], [])  # lost once


def test_a_dead_member_is_probed_with_backoff_and_taken_back_when_it_answers() -> None:
    from snakepit_actors.core.placement import PROBE_MAX_GAP_S, REVIVE_WINDOW_S

    nodes = table("a")
    nodes.lose("a", 10.0)
    probes = [t for t in range(10, 400) if [m.name for m in nodes.pingable(float(t))] == ["a"]]
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert probes[0] == 12 and gaps[:5] == [2, 4, 8, 16, 32]
    assert max(gaps) == PROBE_MAX_GAP_S  # a black-holed host gets about one ping a minute
    assert nodes.pong("a", 400.0) is True and nodes.knows("a")  # paused or cut off: back
    assert nodes.place("w", 400.0) == "a"
    nodes.lose("a", 500.0)
    assert nodes.pong("a", 500.0 + REVIVE_WINDOW_S + 1) is False  # too late: needs a rejoin
    assert nodes.pingable(500.0 + REVIVE_WINDOW_S + 1) == []
    nodes.forget("a")
    assert "a" not in nodes.members


def test_parked_workers_are_reported_once_after_the_placement_timeout() -> None:
    nodes = table()
    nodes.place("w1", 0.0)
    assert nodes.tick(4.9) == ([], [])
    assert nodes.tick(5.0) == ([], ["w1"])
    assert nodes.tick(9.0) == ([], [])
    nodes.add("m", {NODE_CAPABILITY: "m"}, "agent", 9.0)
    nodes.pong("m", 9.0)
    assert nodes.unpark(9.0) == [("w1", "m")] and not nodes.reported


def test_a_member_must_be_a_snakepit_node_with_the_capabilities_and_the_secret() -> None:
    caps = {NODE_CAPABILITY: "n1", "gpu": 1, SECRET_CAPABILITY: secret_digest("s", "n1")}
    assert member_problem(caps, {"gpu": 1}, "s") is None
    assert member_problem(caps, {"gpu": 1}, "") is None
    assert member_problem(caps, {"gpu": 2}, "") == "does not advertise {'gpu': 2}"
    assert member_problem({"gpu": 1}, {"gpu": 1}, "").startswith("not a snakepit node")
    assert member_problem(caps, {}, "other") == "wrong or missing shared secret"
    # a digest copied from another node does not open the door for this one
    assert member_problem({**caps, NODE_CAPABILITY: "n2"}, {}, "s") is not None
    assert len(secret_digest("s", "n1")) == 32
    assert secret_digest("s", "n1") != secret_digest("s", "n2")


def test_a_member_two_workers_lighter_than_another_gets_one_moved_to_it() -> None:
    nodes = table("a")
    for i in range(3):
        nodes.place(f"w{i}", 0.0)
    assert nodes.overloaded(set()) is None  # one live member: nowhere to go
    nodes.add("b", {NODE_CAPABILITY: "b"}, "agent", 1.0)
    assert nodes.overloaded(set()) is None  # b is only joining
    nodes.pong("b", 1.0)
    assert nodes.overloaded(set()) == "w2"  # 3 against 0
    assert nodes.overloaded({"w2"}) is None  # one move at a time
    assert nodes.place("w2", 2.0) == "b"
    assert nodes.overloaded(set()) is None  # 2 against 1: a move would not help
    nodes.place("w9", 2.0)  # b
    nodes.parked["w10"] = 2.0
    assert nodes.overloaded(set()) is None  # parked workers come first


def test_the_summary_hides_the_secret_digest_and_thespians_own_capabilities() -> None:
    nodes = table("a")
    nodes.members["a"].capabilities.update({SECRET_CAPABILITY: "digest", "gpu": 1,
                                            "Thespian Version": "x", "Admin Port": 1})
    nodes.place("w", 0.0)
    assert nodes.summary(2.5) == {"a": {"state": "live", "workers": 1, "silent_s": 2.5,
                                        "capabilities": {NODE_CAPABILITY: "a", "gpu": 1}}}


@pytest.mark.parametrize(("text", "expected"), [
    ("worker_node=true", ("worker_node", True)), ("gpu=2", ("gpu", 2)),
    ("zone=eu-west", ("zone", "eu-west")), ('label="a b"', ("label", "a b")),
    ("ratio=0.5", ("ratio", 0.5))])
def test_capabilities_parse_as_toml_scalars(text: str, expected: tuple[str, object]) -> None:
    assert parse_capability(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=1", "snakepit_node=x", "Admin Port=1",
                                  "list=[1, 2]"])
def test_bad_capabilities_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_capability(text)


def test_the_leader_address_is_host_and_port() -> None:
    assert parse_leader("127.0.0.1:27500") == ("127.0.0.1", 27500)
    assert parse_leader("[::1]:27500") == ("::1", 27500)
    for bad in ("27500", "host:", "host:99999", ":1"):
        with pytest.raises(ConfigError, match="HOST:PORT"):
            parse_leader(bad)


def test_a_member_advertises_its_workers_on_the_configured_address() -> None:
    env = MemberEnv("n", "/tmp/x", "run", worker_host="0.0.0.0", advertise_host="10.0.0.7")
    assert env.advertise("0.0.0.0:4711") == "10.0.0.7:4711"
    assert MemberEnv("n", "/tmp/x", "run").advertise("127.0.0.1:1") == "127.0.0.1:1"
    again = MemberEnv.from_environ("n", env.exports())
    assert (again.run_dir, again.run_id, again.worker_host, again.advertise_host) == (
        "/tmp/x", "run", "0.0.0.0", "10.0.0.7")


@pytest.mark.parametrize("changes", [
    {"placement": {"snakepit_node": "x"}}, {"placement": {"gpu": [1]}},
    {"placement": "gpu"}, {"node_heartbeat_s": 0}, {"node_heartbeat_misses": 0},
    {"placement_timeout": -1}])
def test_bad_placement_settings_are_config_errors(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PoolConfig(**changes)  # type: ignore[arg-type]


def test_a_secret_is_never_shown_in_the_config_repr() -> None:
    from snakepit_actors.config import SystemConfig

    assert "hunter2" not in repr(PoolConfig(system=SystemConfig(secret="hunter2")))


@pytest.mark.parametrize(("node", "pools", "expected"), [
    ({"convention": False}, {"placement": {"gpu": 1}}, {"placement": "fail"}),
    ({"convention": True, "bind_address": "127.0.0.1"}, {},
     {"placement": "warn", "bind_address": "warn", "secret": "warn"}),
    ({"convention": True, "bind_address": "10.1.2.3", "secret": "s",
      "allow_non_loopback": True}, {"placement": {"g": 1}},
     {"bind_address": "ok"}),
    ({"convention": True, "bind_address": "0.0.0.0", "secret": "s",
      "allow_non_loopback": True}, {"placement": {"g": 1}},
     {"bind_address": "fail"}),
    ({"convention": True, "bind_address": "8.8.8.8", "secret": "s",
      "allow_non_loopback": True}, {"placement": {"g": 1}},
     {"bind_address": "fail"}),
    ({"convention": False}, {}, {}),
    ({"bind_address": "0.0.0.0", "secret": "s", "allow_non_loopback": True}, {},
     {"bind_address": "fail"}),
])
def test_doctor_checks_a_convention_leader_and_a_node_off_loopback(
        node: dict[str, object], pools: dict[str, object], expected: dict[str, str]) -> None:
    from snakepit_actors.ops.config_file import parse_node_config
    from snakepit_actors.ops.doctor import _multihost

    node_file = parse_node_config({"node": {"admin_port": 27500, **node},
                                   "pools": {"p": pools}})
    assert {c.name: c.level for c in _multihost(node_file)} == expected


def test_a_drain_counts_only_worker_processes_still_running(tmp_path: Any) -> None:
    """Rows a stopped Worker left behind (its pid gone, or reused by another process) do not
    hold a member's drain until its timeout; a live process and a fresh spawn do."""
    import os
    import time

    import psutil

    from snakepit_actors.core.process_rows import ProcessIdentity
    from snakepit_actors.multihost.member import MemberNode, MemberOptions
    from snakepit_actors.tree.process_table import ProcessTable

    db = str(tmp_path / "processes.sqlite3")
    member = MemberNode(MemberOptions(leader=("127.0.0.1", 1)))
    member._process_db, member._env = db, MemberEnv("m", str(tmp_path), "run1")
    me = psutil.Process()
    owner = ProcessIdentity(me.pid, me.create_time())
    with ProcessTable(db) as table:
        for worker_id in ("live", "gone", "reused", "spawning"):
            table.record_spawning("run1", worker_id, "p", owner)
        table.record_spawned("run1", "live", me.pid, os.getpgid(0), me.create_time())
        table.record_spawned("run1", "gone", 2**22 + 7, 0, time.time())  # no such pid
        table.record_spawned("run1", "reused", me.pid, 0, me.create_time() - 3600)
    assert member._processes_left() == 2  # "live" and "spawning"


def test_thespians_spurious_create_error_is_dropped_and_real_ones_kept() -> None:
    import logging

    from snakepit_actors.system import SpuriousCreateFailure

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("t", logging.ERROR, __file__, 1, msg, args, None)

    keep = SpuriousCreateFailure().filter
    assert not keep(record("Pending Actor create for %s failed (%s): %s",
                           "ActorAddr-(T|:1)", 3585, None))
    assert keep(record("Pending Actor create for %s failed (%s): %s",
                       "ActorAddr-(T|:1)", 3586, None))  # no compatible system: real
    assert keep(record("Pending Actor create for %s failed (%s): %s",
                       "ActorAddr-(T|:1)", 3585, "shutting down"))
    assert keep(record("something else entirely"))


def test_a_member_whose_admin_port_is_taken_fails_at_once_with_a_clear_error() -> None:
    import socket
    import subprocess
    import sys

    from tests.multihost import cli_env

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "snakepit_actors.ops.cli", "node", "--leader", "127.0.0.1:9",
             "--admin-port", str(port), "--capability", "worker_node=true"],
            capture_output=True, text=True, timeout=60, env=cli_env())
    assert done.returncode == 3  # an invalid option value: the configuration's exit code
    assert f"--admin-port {port} is in use" in done.stdout + done.stderr


@pytest.mark.parametrize("node", [
    {"bind_address": "0.0.0.0"},
    {"bind_address": "0.0.0.0", "allow_non_loopback": True},
    {"bind_address": "10.1.2.3", "secret": "s"},
])
def test_a_node_off_loopback_needs_the_opt_in_and_a_secret(node: dict[str, object]) -> None:
    from snakepit_actors.ops.config_file import parse_node_config

    with pytest.raises(ConfigError, match=r"bind_address off loopback.*allow_non_loopback"):
        parse_node_config({"node": {"admin_port": 27500, **node}, "pools": {"p": {}}})


def test_a_pool_system_off_loopback_needs_the_opt_in_and_a_secret() -> None:
    from snakepit_actors.config import SystemConfig

    with pytest.raises(ConfigError, match=r"system\.bind_address off loopback"):
        PoolConfig(system=SystemConfig(bind_address="0.0.0.0"))
    PoolConfig(system=SystemConfig(bind_address="10.1.2.3", allow_non_loopback=True,
                                   secret="s"))
