"""Specifications of ``snakepit_supervision.messages``: unique names, frozen, slotted, picklable."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Any

import pytest

import snakepit_actors.messages as snakepit_messages
import snakepit_supervision.messages as messages

pytestmark = pytest.mark.timeout(30)


def message_classes(module: Any) -> list[type]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__ and dataclasses.is_dataclass(obj)
    ]


SUPERVISION = message_classes(messages)


def sample(cls: type) -> Any:
    """An instance with a plausible value in every required field."""
    values = {"children": (messages.ChildSpec("a", "m:C"),), "strategy": "one_for_one"}
    kwargs = {
        f.name: values.get(f.name, 1)
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return cls(**kwargs)


def test_message_names_are_unique_across_both_packages() -> None:
    ours = {c.__name__ for c in SUPERVISION}
    theirs = {c.__name__ for c in vars(snakepit_messages).values()
              if inspect.isclass(c) and dataclasses.is_dataclass(c)}
    assert len(ours) == len(SUPERVISION)
    assert not ours & theirs, f"names Thespian cannot tell apart: {sorted(ours & theirs)}"


@pytest.mark.parametrize("cls", SUPERVISION, ids=lambda c: c.__name__)
def test_every_message_is_frozen_slotted_documented_and_pickles(cls: type) -> None:
    instance = sample(cls)
    assert cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(")
    assert hasattr(cls, "__slots__")
    assert pickle.loads(pickle.dumps(instance)) == instance
    field = dataclasses.fields(cls)[0].name if dataclasses.fields(cls) else None
    if field:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(instance, field, 2)
