"""A supervisor's bookkeeping, with no actors: configuration checks, child records, batches.

The ``SupervisorCore`` (supervisor_core.py) owns one ``ChildTable``. Each child moves through::

    (created) -> running --crash--------------------------> restarting -> running (new address)
                 running --stopped with its group---> stopping -> restarting -> running
                 running --TerminateChild------------> stopping -> (forgotten)
                 running --exit not restarted----------------------------> (forgotten)
    restarting -> held (``child_start_held``) -> running (``resume_held_starts``)

A ``RestartBatch`` holds the children that start again together (one for one_for_one, several
for one_for_all / rest_for_one). It starts them once its backoff is ``due`` and every sibling it
stopped has exited. Addresses are opaque here and compared with ``==`` only: Thespian's
``ActorAddress`` is unhashable, and a child's address string changes when Thespian resolves it.

``init_problems`` / ``spec_problem`` check an ``InitSupervisor`` before anything starts, and
``load_actor_class`` turns ``"package.module:Class"`` into the class to create.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .intensity import RestartPlanner
from .messages import (
    RESTART_TYPES,
    STRATEGIES,
    ActorAddress,
    ChildInfo,
    ChildSpec,
    ChildState,
    InitSupervisor,
)

_ACTOR_PATH_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def load_actor_class(path: str) -> type:
    """Import the actor class named by ``"package.module:Class"``.

    Raises:
        ValueError: if the path is malformed, the module cannot be imported or the attribute is
            missing or not a class; the message names the value and the fix.
    """
    if not isinstance(path, str) or not _ACTOR_PATH_RE.match(path):
        raise ValueError(f"actor must look like 'package.module:Class', got {path!r}")
    module_name, _, attr_path = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"actor {path!r}: cannot import {module_name!r}: {exc}") from exc
    for attr in attr_path.split("."):
        target = getattr(target, attr, None)
        if target is None:
            raise ValueError(f"actor {path!r}: {module_name!r} has no attribute {attr_path!r}")
    if not isinstance(target, type):
        raise ValueError(f"actor {path!r} is not a class but {type(target).__name__}")
    return target


def spec_problem(spec: Any) -> str | None:
    """What is wrong with one ``ChildSpec`` (its class must import), or None."""
    if not isinstance(spec, ChildSpec):
        return f"children must be ChildSpec, got {type(spec).__name__}"
    if not spec.child_id or not isinstance(spec.child_id, str):
        return f"child_id must be a non-empty str, got {spec.child_id!r}"
    if spec.restart not in RESTART_TYPES:
        return f"restart must be one of {RESTART_TYPES}, got {spec.restart!r}"
    try:
        load_actor_class(spec.actor)
    except ValueError as exc:
        return str(exc)
    return None


def planner_for(msg: InitSupervisor) -> RestartPlanner:
    """The ``RestartPlanner`` an ``InitSupervisor`` describes.

    Raises:
        ValueError: for an unknown strategy or out-of-range numbers.
    """
    return RestartPlanner(
        msg.strategy,
        msg.max_restarts,
        msg.max_seconds,
        msg.backoff_initial_s,
        msg.backoff_max_s,
        msg.backoff_reset_s,
    )


def init_problems(msg: InitSupervisor) -> list[str]:
    """Everything wrong with an ``InitSupervisor`` apart from its addresses (empty if valid)."""
    problems: list[str] = []
    if msg.strategy not in STRATEGIES:
        problems.append(f"strategy must be one of {STRATEGIES}, got {msg.strategy!r}")
    else:
        try:
            planner_for(msg)
        except ValueError as exc:
            problems.append(str(exc))
    ids = [getattr(spec, "child_id", None) for spec in msg.children]
    if len(set(ids)) != len(ids):
        problems.append(f"child_id values must be unique, got {ids!r}")
    problems += [p for spec in msg.children if (p := spec_problem(spec))]
    return problems


@dataclass(slots=True)
class ChildRecord:
    """One child of a supervisor: its spec, current incarnation and lifecycle state."""

    spec: ChildSpec
    actor_class: type
    state: ChildState = "restarting"
    address: ActorAddress | None = None
    restarts: int = 0
    normal_reason: str | None = None
    terminating: bool = False
    terminate_reply_to: list[ActorAddress] = field(default_factory=list)

    @property
    def child_id(self) -> str:
        """The spec's id."""
        return self.spec.child_id

    def info(self) -> ChildInfo:
        """The public snapshot of this child."""
        return ChildInfo(
            child_id=self.spec.child_id,
            actor=self.spec.actor,
            restart=self.spec.restart,
            address=self.address,
            state=self.state,
            restarts=self.restarts,
        )


@dataclass(slots=True)
class RestartBatch:
    """Children that start again together once ``due`` and no longer ``waiting_for`` exits."""

    generation: int
    restart_ids: list[str]
    waiting_for: set[str]
    due: bool = False

    def ready(self) -> bool:
        """Whether the backoff has passed and every stopped sibling is gone."""
        return self.due and not self.waiting_for


class ChildTable:
    """The ordered children of one supervisor and its pending restart batches."""

    def __init__(self) -> None:
        self._records: list[ChildRecord] = []
        self.batches: dict[int, RestartBatch] = {}
        self._generation = 0

    def __iter__(self) -> Iterator[ChildRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: ChildRecord) -> None:
        """Append a child (it is started last, and stopped first)."""
        self._records.append(record)

    def get(self, child_id: str) -> ChildRecord | None:
        """The child with this id, or None."""
        return next((r for r in self._records if r.child_id == child_id), None)

    def by_address(self, address: ActorAddress) -> ChildRecord | None:
        """The child whose current incarnation is ``address``, or None (compared with ==)."""
        return next(
            (r for r in self._records if r.address is not None and r.address == address), None
        )

    def remove(self, child_id: str) -> None:
        """Forget a child, including its place in any restart batch."""
        self._records = [r for r in self._records if r.child_id != child_id]
        self._leave_batches(child_id)

    def specs(self) -> list[ChildSpec]:
        """The children's specs in start order."""
        return [r.spec for r in self._records]

    def new_batch(self, restart_ids: tuple[str, ...], stop_ids: tuple[str, ...]) -> RestartBatch:
        """A batch for ``restart_ids``, taking them and ``stop_ids`` out of any older batch (a
        later crash widened their group). The caller fills ``waiting_for``."""
        for child_id in (*restart_ids, *stop_ids):
            self._leave_batches(child_id)
        self._generation += 1
        batch = RestartBatch(self._generation, list(restart_ids), set())
        self.batches[batch.generation] = batch
        return batch

    def batch_waiting_for(self, child_id: str) -> RestartBatch | None:
        """The batch that waits for ``child_id`` to finish stopping, if any."""
        return next((b for b in self.batches.values() if child_id in b.waiting_for), None)

    def _leave_batches(self, child_id: str) -> None:
        for generation, batch in list(self.batches.items()):
            if child_id in batch.restart_ids:
                batch.restart_ids.remove(child_id)
            batch.waiting_for.discard(child_id)
            if not batch.restart_ids and not batch.waiting_for:
                del self.batches[generation]
