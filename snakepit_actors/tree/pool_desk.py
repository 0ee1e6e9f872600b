"""What the Pool actor's handler mixins (``LeaseDesk``, ``RecycleDesk``, ``SessionDesk``) may use
of the Pool and of Thespian, declared once for the type checker; nothing here exists at run
time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snakepit_actors.config import PoolConfig
    from snakepit_actors.core.lease_ledger import LeaseLedger
    from snakepit_actors.core.scheduling import Dispatch, Scheduler


class PoolDesk:
    """Base of the Pool's handler mixins: the state and sends they share with the Pool."""

    if TYPE_CHECKING:  # provided by Pool / Thespian
        _config: PoolConfig | None
        _core: Scheduler[Any]
        _workers: dict[str, Any]
        _ledger: LeaseLedger[Any]

        def send(self, target: Any, message: Any) -> None: ...
        def wakeupAfter(self, timePeriod: Any, payload: Any = None) -> None: ...
        def _send_dispatches(self, dispatches: list[Dispatch[Any]]) -> None: ...
