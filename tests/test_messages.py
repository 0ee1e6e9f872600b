"""Messages: frozen, slotted dataclasses with unique names, all of which pickle (Thespian
dispatches on the bare class name and pickles every message between processes)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
import subprocess
import sys
import typing
from typing import Any

import pytest

import snakepit_actors.messages as messages
import snakepit_supervision.messages as sup_messages
from snakepit_actors import PoolConfig, ToolError
from snakepit_actors.errors import SnakepitError

MESSAGE_CLASSES = [cls for _, cls in inspect.getmembers(messages, inspect.isclass)
                   if dataclasses.is_dataclass(cls)
                   and cls.__module__.startswith(messages.__name__ + ".")]
SUBSYSTEMS = ("api", "tree", "requests", "leases", "sessions", "placement", "node")


def sample(tp: Any) -> Any:
    """A value of annotation ``tp`` good enough to pickle."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return sample(next(a for a in typing.get_args(tp) if a is not type(None)))
    if origin is tuple:
        return ()
    if tp is Any or tp is messages.ActorAddress:
        return None
    simple = {str: "x", int: 1, float: 1.5, bool: True, bytes: b"{}", PoolConfig: PoolConfig()}
    if tp in simple:
        return simple[tp]
    if isinstance(tp, type) and issubclass(tp, SnakepitError):
        return ToolError("boom", details={"type": "ValueError"})
    if origin is not None and "Mapping" in str(origin):
        return {"k": 1}
    if dataclasses.is_dataclass(tp):
        return build(tp)
    raise AssertionError(f"no sample for {tp!r}")


def build(cls: type) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: sample(hints[f.name]) for f in dataclasses.fields(cls)})


def test_every_message_is_a_frozen_slotted_dataclass() -> None:
    assert len(MESSAGE_CLASSES) > 20
    for cls in MESSAGE_CLASSES:
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
        assert hasattr(cls, "__slots__"), cls
        assert cls.__doc__, cls


def test_the_package_exports_every_message_of_every_subsystem_module_once() -> None:
    defined: list[str] = []
    for name in SUBSYSTEMS:
        module = importlib.import_module(f"{messages.__name__}.{name}")
        defined += [n for n, c in vars(module).items()
                    if inspect.isclass(c) and c.__module__ == module.__name__]
    assert len(defined) == len(set(defined)), "a message name is defined twice"
    assert sorted(defined) == sorted(c.__name__ for c in MESSAGE_CLASSES)
    assert set(defined) <= set(messages.__all__)


def test_the_public_protocol_module_needs_no_part_of_the_tree() -> None:
    code = ("import sys, snakepit_actors.messages.api as api; "
            "assert 'thespian' not in sys.modules and 'grpc' not in sys.modules; "
            "assert api.Execute and api.ExecuteResult and api.ExecuteFailed and api.StreamChunk")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.__name__)
def test_every_message_survives_pickling(cls: type) -> None:
    msg = build(cls)
    assert pickle.loads(pickle.dumps(msg)) == msg


def test_message_names_are_unique_across_both_packages() -> None:
    ours = {c.__name__ for c in MESSAGE_CLASSES}
    theirs = {name for name, c in inspect.getmembers(sup_messages, inspect.isclass)
              if c.__module__ == sup_messages.__name__}
    assert not ours & theirs, f"clashing message names: {sorted(ours & theirs)}"
    assert not any(name.startswith("_") for name in ours)
