"""Specifications of the supervisor's pure bookkeeping: configuration checks and batches."""

from __future__ import annotations

import pytest

from snakepit_supervision import ChildSpec, InitSupervisor, Registry, load_actor_class
from snakepit_supervision.children import ChildRecord, ChildTable, init_problems, spec_problem

pytestmark = pytest.mark.timeout(30)


def test_actor_paths_import_the_named_class() -> None:
    assert load_actor_class("snakepit_supervision.registry:Registry") is Registry


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("snakepit_supervision.registry.Registry", "must look like 'package.module:Class'"),
        ("no_such_module_xyz:Actor", "cannot import 'no_such_module_xyz'"),
        ("snakepit_supervision.registry:Nope", "has no attribute 'Nope'"),
        ("snakepit_supervision.registry:log", "is not a class"),
    ],
)
def test_bad_actor_paths_say_what_is_wrong(path: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="actor") as failure:
        load_actor_class(path)
    assert fragment in str(failure.value)


def test_init_problems_lists_every_mistake_at_once() -> None:
    children = (
        ChildSpec("a", "snakepit_supervision.registry:Registry"),
        ChildSpec("a", "snakepit_supervision.registry:Registry", restart="sometimes"),  # type: ignore[arg-type]
    )
    problems = init_problems(InitSupervisor("one_for_one", 1, 1.0, children, backoff_max_s=-1))
    assert len(problems) == 3
    assert any("backoff_max_s" in p for p in problems)
    assert any("unique" in p for p in problems)
    assert any("restart must be one of" in p for p in problems)
    assert spec_problem(ChildSpec("", "x:Y")) is not None
    assert not init_problems(InitSupervisor("rest_for_one", 0, 1.0, children[:1]))


def test_a_later_batch_takes_over_children_of_an_earlier_one() -> None:
    table = ChildTable()
    for child_id in "abc":
        table.add(ChildRecord(ChildSpec(child_id, "m:C"), object))
    first = table.new_batch(("c",), ())
    first.waiting_for.add("x")
    second = table.new_batch(("b", "c"), ("c",))
    assert first.restart_ids == [] and second.restart_ids == ["b", "c"]
    assert first.generation in table.batches  # still waits for "x"
    table.remove("x")
    assert first.generation not in table.batches and second.generation in table.batches
    table.remove("b")
    assert second.restart_ids == ["c"] and [r.child_id for r in table] == ["a", "c"]
