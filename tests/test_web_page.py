"""The web view's page state (core/web_page.py): what a page shows of a status report, which
updates it needs, which pid a demo button kills. Pure: no clock, no actor system."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from snakepit_actors.core.web_page import (
    REFRESH_S,
    PageDiffer,
    Target,
    TargetMissing,
    apply_update,
    apply_worker_event,
    demo_target,
    page_state,
    restarted_keys,
    walk,
    without_volatile,
)


def actor(name: str, pid: int | None, *children: dict[str, Any], restarts: int = 0,
          **extra: Any) -> dict[str, Any]:
    return {"actor": name, "pid": pid, "state": "running", "restarts": restarts,
            "children": list(children), **extra}


def worker_row(worker_id: str, pid: int | None, restarts: int = 0, requests: int = 0,
               uptime_s: float = 10.0) -> dict[str, Any]:
    return {"worker_id": worker_id, "node": "local", "pid": pid, "state": "ready",
            "reason": None, "requests": requests, "restarts": restarts, "rss_mb": 40.1,
            "uptime_s": uptime_s, "endpoint": "unix:/tmp/x.sock"}


def pool_report(name: str = "default", worker_pid: int = 500, pool_pid: int = 105,
                actor_pid: int = 400, restarts: int = 0, requests: int = 0,
                uptime_s: float = 10.0, members: bool = False) -> dict[str, Any]:
    starter = actor("Starter", 300, actor("Worker", actor_pid, restarts=restarts,
                                          id=f"{name}_worker_1",
                                          process={"pid": worker_pid, "state": "ready",
                                                   "endpoint": "", "node": "local"}),
                    id=f"{name}_worker_1")
    children = [actor("WorkerRegistry", 101), actor("Pool", pool_pid),
                actor("WorkerSupervisor", 200, starter)]
    if members:
        children.append(actor("NodeWatch", 600, members=[
            {"node": "gpu1", "state": "live", "workers": 1, "silent_s": 0.4,
             "capabilities": {"snakepit_node": "gpu1", "gpu": True}}],
            ignored={"odd": "no secret"}))
    return {"name": name, "adapter": "pkg.mod:Adapter", "pool_size": 1, "state": "ready",
            "stats": {"queued": 2, "busy": 1, "available": 0, "workers": 1, "requests": requests,
                      "errors": 0, "queue_timeouts": 0, "saturated": 0, "restarts": restarts,
                      "recycled": 0, "latency_p50_ms": 1.5, "latency_p99_ms": 9.0},
            "workers": [worker_row(f"{name}_worker_1", worker_pid, restarts, requests,
                                   uptime_s)],
            "tree": actor("PoolRoot", 100, *children)}


def report(*pools: dict[str, Any], uptime_s: float = 5.0) -> dict[str, Any]:
    return {"node": "n1", "node_pid": 42, "admin_port": 27500, "uptime_s": uptime_s,
            "pools": list(pools)}


def test_the_page_state_keys_every_actor_by_its_path_and_keeps_queue_latency_and_workers(
        ) -> None:
    state = page_state(report(pool_report()))
    pool = state["pools"]["default"]
    keys = [n["key"] for n in walk(pool["tree"])]
    assert keys == ["default/PoolRoot", "default/PoolRoot/WorkerRegistry",
                    "default/PoolRoot/Pool", "default/PoolRoot/WorkerSupervisor",
                    "default/PoolRoot/WorkerSupervisor/Starter:default_worker_1",
                    "default/PoolRoot/WorkerSupervisor/Starter:default_worker_1/"
                    "Worker:default_worker_1"]
    assert pool["queue"]["queued"] == 2 and pool["latency"] == {"p50_ms": 1.5, "p99_ms": 9.0}
    assert pool["workers"][0]["pid"] == 500 and state["node"]["node_pid"] == 42


def test_members_of_a_multi_host_pool_move_out_of_the_tree_without_the_internal_capability(
        ) -> None:
    pool = page_state(report(pool_report(members=True)))["pools"]["default"]
    assert pool["members"] == [
        {"node": "gpu1", "state": "live", "workers": 1, "silent_s": 0.4,
         "capabilities": {"gpu": True}},
        {"node": "odd", "state": "ignored", "workers": 0, "silent_s": None,
         "capabilities": {}, "reason": "no secret"}]
    assert all("members" not in n for n in walk(pool["tree"]))


def test_a_pool_that_failed_has_no_stats_and_still_renders() -> None:
    failed = {"name": "p", "adapter": "a:B", "pool_size": 1, "state": "failed", "stats": None,
              "workers": [], "tree": {"actor": "PoolRoot", "pid": None, "state": "failed",
                                      "restarts": 0, "children": []}}
    pool = page_state(report(failed))["pools"]["p"]
    assert pool["state"] == "failed" and pool["queue"]["queued"] is None


def test_the_first_look_sends_everything_and_an_unchanged_look_sends_nothing() -> None:
    differ = PageDiffer()
    first = differ.update(page_state(report(pool_report())), now=0.0)
    assert first is not None and set(first.pools) == {"default"} and first.restarted == ()
    assert differ.update(page_state(report(pool_report())), now=1.0) is None


def test_uptime_alone_is_sent_only_every_refresh_period() -> None:
    differ = PageDiffer()
    differ.update(page_state(report(pool_report(uptime_s=1.0), uptime_s=1.0)), now=0.0)
    older = page_state(report(pool_report(uptime_s=2.0), uptime_s=2.0))
    assert differ.update(older, now=1.0) is None
    later = differ.update(page_state(report(pool_report(uptime_s=9.0), uptime_s=9.0)),
                          now=REFRESH_S)
    assert later is not None and later.pools["default"]["workers"][0]["uptime_s"] == 9.0


def test_a_restarted_worker_is_sent_at_once_and_its_tree_keys_flash() -> None:
    differ = PageDiffer()
    differ.update(page_state(report(pool_report())), now=0.0)
    update = differ.update(page_state(report(pool_report(worker_pid=501, actor_pid=401,
                                                         restarts=1))), now=0.1)
    assert update is not None
    assert update.restarted == ("default/PoolRoot/WorkerSupervisor/Starter:default_worker_1/"
                                "Worker:default_worker_1",)


def test_a_new_pool_actor_flashes_and_a_pool_gone_is_removed() -> None:
    differ = PageDiffer()
    differ.update(page_state(report(pool_report(), pool_report("other"))), now=0.0)
    update = differ.update(page_state(report(pool_report(pool_pid=106))), now=0.1)
    assert update is not None and update.removed == ("other",)
    assert update.restarted == ("default/PoolRoot/Pool",)
    assert set(differ.state["pools"]) == {"default"}


def test_restarted_keys_ignore_actors_new_to_the_tree_and_unknown_pids() -> None:
    old = page_state(report(pool_report(pool_pid=0)))["pools"]["default"]
    new = page_state(report(pool_report(pool_pid=106)))["pools"]["default"]
    assert restarted_keys(old, new) == []


looks = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 5),
                           st.booleans(), st.floats(0, 100)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(looks)
def test_a_page_applying_every_update_holds_the_last_look_but_for_volatile_fields(
        sequence: list[tuple[int, int, int, bool, float]]) -> None:
    differ = PageDiffer()
    page: dict[str, Any] = {"node": {}, "pools": {}}
    now = 0.0
    for restarts, pid_step, requests, second_pool, uptime in sequence:
        pools = [pool_report(worker_pid=500 + pid_step, restarts=restarts, requests=requests,
                             uptime_s=uptime)]
        if second_pool:
            pools.append(pool_report("other", requests=requests))
        look = page_state(report(*pools, uptime_s=uptime))
        now += 0.3
        update = differ.update(look, now)
        if update is not None:
            page = apply_update(page, update)
        assert without_volatile(page) == without_volatile(look)
        assert page == differ.state


def test_demo_targets_name_the_process_the_worker_actor_and_the_pool_actor() -> None:
    state = page_state(report(pool_report()))
    assert demo_target(state, "default", "process", "default_worker_1") == Target(
        500, "the process of default_worker_1")
    assert demo_target(state, "default", "worker_actor", "default_worker_1") == Target(
        400, "the Worker actor of default_worker_1")
    assert demo_target(state, "default", "pool") == Target(105, "the Pool actor of default")


def test_a_demo_target_that_does_not_run_is_refused_with_the_reason() -> None:
    state = page_state(report(pool_report(worker_pid=0)))
    missing = [demo_target(state, "nope", "pool"),
               demo_target(state, "default", "process", "default_worker_1"),
               demo_target(state, "default", "worker_actor", "default_worker_9"),
               demo_target(state, "default", "process"),
               demo_target(state, "default", "admin")]
    assert all(isinstance(m, TargetMissing) for m in missing)
    assert missing[0] == TargetMissing(
        "no pool 'nope'; pools: ['default']")
    assert "what must be one of" in str(missing[-1])


def test_worker_events_change_the_worker_row_before_the_next_look() -> None:
    state = page_state(report(pool_report()))
    before = copy.deepcopy(state)
    exited = apply_worker_event(state, "worker.exited", {
        "pool": "default", "worker_id": "default_worker_1", "reason": "process_exited"})
    assert exited is not None and state == before
    assert exited["pools"]["default"]["workers"][0]["pid"] is None
    back = apply_worker_event(exited, "worker.restarted", {
        "pool": "default", "worker_id": "default_worker_1", "pid": 777, "restarts": 1})
    assert back is not None
    row = back["pools"]["default"]["workers"][0]
    assert (row["pid"], row["restarts"], row["state"]) == (777, 1, "ready")
    assert apply_worker_event(state, "worker.ready", {"pool": "default"}) is None
    assert apply_worker_event(state, "worker.exited", {"pool": "x", "worker_id": "y"}) is None
