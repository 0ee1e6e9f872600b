"""Node files: TOML + environment overrides mapped onto NodeConfig and PoolConfig; every
error names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakepit_actors.config import SHOWCASE_ADAPTER
from snakepit_actors.errors import ConfigError
from snakepit_actors.ops.config_file import NodeConfig, load_node_file, parse_node_config

MINIMAL = f"""
[node]
name = "n1"
admin_port = 27555

[pools.default]
pool_size = 2
adapter = "{SHOWCASE_ADAPTER}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.toml"
    path.write_text(text)
    return path


def test_the_minimal_file_gives_a_node_and_one_named_pool(tmp_path: Path) -> None:
    node_file = load_node_file(write(tmp_path, MINIMAL))
    assert node_file.node == NodeConfig(name="n1", admin_port=27555)
    (pool,) = node_file.pools
    assert (pool.name, pool.pool_size, pool.adapter) == ("default", 2, SHOWCASE_ADAPTER)


def test_several_pools_keep_file_order_and_their_own_settings(tmp_path: Path) -> None:
    text = MINIMAL + """
[pools.fast]
pool_size = 1
worker_max_requests = 100
data_path = "actor"
[pools.fast.adapter_config]
init_delay_s = 0.1
"""
    node_file = load_node_file(write(tmp_path, text))
    assert [p.name for p in node_file.pools] == ["default", "fast"]
    fast = node_file.pool("fast")
    assert fast.worker_max_requests == 100 and fast.adapter_config == {"init_delay_s": 0.1}
    with pytest.raises(ConfigError, match=r"no \[pools.slow\]"):
        node_file.pool("slow")


def test_environment_variables_override_single_keys(tmp_path: Path) -> None:
    env = {"SNAKEPIT_NODE__ADMIN_PORT": "27600", "SNAKEPIT_POOLS__DEFAULT__POOL_SIZE": "5",
           "SNAKEPIT_POOLS__DEFAULT__AFFINITY": "strict_queue", "UNRELATED": "1"}
    node_file = load_node_file(write(tmp_path, MINIMAL), env)
    assert node_file.node.admin_port == 27600
    assert node_file.pools[0].pool_size == 5 and node_file.pools[0].affinity == "strict_queue"


def test_every_bad_key_is_named_with_its_table_and_value(tmp_path: Path) -> None:
    text = """
[node]
name = "bad name!"
admin_port = 70000
log_level = "loud"

[pools.default]
pool_size = 0
adapter = "showcase"
colour = "blue"

[pools.other]
queue_timeout = -1
"""
    with pytest.raises(ConfigError) as info:
        load_node_file(write(tmp_path, text))
    message = str(info.value)
    for key in ("node.name", "node.admin_port must be an int in 0..65535, got 70000",
                "node.log_level", "pools.default.colour is not a PoolConfig field",
                "pools.other.queue_timeout must be None or a number of seconds > 0, got -1"):
        assert key in message, (key, message)
    assert str(tmp_path / "pool.toml") in message


def test_a_bad_value_in_a_valid_table_names_the_pool_and_field() -> None:
    with pytest.raises(ConfigError, match=r"pools\.default\.pool_size must be an int in "
                                          r"1\.\.512, got 0"):
        parse_node_config({"node": {"admin_port": 1}, "pools": {"default": {"pool_size": 0}}})


def test_the_node_needs_an_admin_port_and_at_least_one_pool() -> None:
    with pytest.raises(ConfigError) as info:
        parse_node_config({"node": {"name": "x"}})
    assert "node.admin_port must be set" in str(info.value)
    assert "at least one [pools.<name>] table" in str(info.value)


def test_a_pool_may_not_configure_the_actor_system_or_rename_itself() -> None:
    with pytest.raises(ConfigError) as info:
        parse_node_config({"node": {"admin_port": 1}, "pools": {
            "a": {"system": {"admin_port": 5}}, "b": {"name": "c"}}})
    assert "pools.a.system is not a PoolConfig field (the node owns the actor system" \
        in str(info.value)
    assert "pools.b.name must match the table's key 'b', got 'c'" in str(info.value)


def test_unknown_top_level_tables_and_broken_toml_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown table or key 'pool'"):
        parse_node_config({"node": {"admin_port": 1}, "pool": {}, "pools": {"a": {}}})
    with pytest.raises(ConfigError, match="cannot read node config"):
        load_node_file(write(tmp_path, "[node\nname="))
    with pytest.raises(ConfigError, match="cannot read node config"):
        load_node_file(tmp_path / "missing.toml")


def test_each_unknown_key_gets_one_message_with_the_closest_valid_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_node_config({"node": {"admin_port": 1, "log_levle": "info"}, "pools": {
            "default": {"pool_sise": 2, "queue_timout": 1.0, "frobnicate": True}}})
    problems = info.value.details["problems"]
    assert problems == [
        "node.log_levle is not a node setting; did you mean 'log_level'?",
        "pools.default.frobnicate is not a PoolConfig field; every valid key is listed in "
        "docs/configuration.md",
        "pools.default.pool_sise is not a PoolConfig field; did you mean 'pool_size'?",
        "pools.default.queue_timout is not a PoolConfig field; did you mean 'queue_timeout'?"]
    assert "worker_ttl" not in str(info.value)  # no list of every valid key


def test_pool_config_from_a_mapping_suggests_the_field_too() -> None:
    from snakepit_actors.config import PoolConfig

    with pytest.raises(ConfigError, match=r"^pool_sise is not a PoolConfig field; did you mean "
                                          r"'pool_size'\?$"):
        PoolConfig.from_mapping({"pool_sise": 2})


def test_the_web_settings_are_checked_and_the_token_never_shown(tmp_path: Path) -> None:
    node = parse_node_config({"node": {"admin_port": 27555, "web_port": 8780,
                                       "web_token": "x" * 20},
                              "pools": {"default": {"pool_size": 1}}}).node
    assert (node.web_port, node.web_token) == (8780, "x" * 20) and "xxxx" not in repr(node)
    with pytest.raises(ConfigError) as caught:
        parse_node_config({"node": {"admin_port": 27555, "web_port": 27555,
                                    "web_token": "short-secret"},
                           "pools": {"default": {"pool_size": 1}}})
    problems = caught.value.details["problems"]
    assert any("web_port must differ from admin_port" in p for p in problems)
    assert any("web_token must be '' (a new one per start) or at least 16" in p
               for p in problems)
    assert "short-secret" not in str(caught.value)
