"""Whether a pool takes requests, as plain state: starting, ready, degraded (or closed).

    InitPool --> starting --(pool_size workers ready)--> ready   PoolStarted, once
       └--(a worker failed to start / startup_timeout)--> PoolStartFailed, once (still starting)
    ready --(no worker in rotation, and the supervisor gave up or every Starter did)--> degraded
    degraded --(a worker is ready again, the supervisor still runs)--> ready

While starting or degraded, a request is refused before it reaches the queue
(``PoolNotReadyError``, reason "starting" / "degraded"). ``PoolCore`` owns one ``Readiness``
and tells it the worker facts; the announcement goes to whoever sent ``StartPool``.
"""

from __future__ import annotations

from typing import Any

from snakepit_actors.config import PoolConfig
from snakepit_actors.core import pool_errors as errs
from snakepit_actors.core.pool_decisions import Announce, Decision
from snakepit_actors.errors import PoolNotReadyError, SnakepitError
from snakepit_actors.messages import PoolStarted, PoolStartFailed, StartProgress
from snakepit_actors.telemetry import get_logger

log = get_logger("pool")


class Readiness:
    """One pool's start and health; see the module docstring.

    Args:
        config: the pool's configuration (name, pool_size, startup_timeout).
        pool: the Pool actor's address, for ``PoolStarted``.
        start_reply_to: whom to announce the start to (None: nobody).
        report_progress: also send ``StartProgress`` as each worker becomes ready.
        started: the pool had started already (a Pool rebuilt under a running pool).
    """

    def __init__(self, config: PoolConfig, *, pool: Any = None, start_reply_to: Any = None,
                 report_progress: bool = False, started: bool = False) -> None:
        self.started = started
        self.degraded: str | None = None  # why no worker will take requests, if so
        self._config = config
        self._pool, self._reply_to, self._progress = pool, start_reply_to, report_progress
        self._abandoned: set[str] = set()
        self._last_start_error: SnakepitError | None = None
        self._supervisor_gone = False

    def state(self, closed: bool) -> str:
        """``PoolStats.state``: closed, degraded, ready or starting."""
        if closed:
            return "closed"
        if self.degraded is not None:
            return "degraded"
        return "ready" if self.started else "starting"

    def refusal(self) -> PoolNotReadyError | None:
        """Why a new request is refused before it may queue (None: it may); a closed pool
        refuses later, in the queue, with ``PoolClosedError``."""
        if not self.started:
            return errs.still_starting(self._config.name)
        if self.degraded is not None:
            return self.degraded_error()
        return None

    def degraded_error(self) -> PoolNotReadyError:
        return errs.degraded(self.degraded, self._abandoned)

    def worker_ready(self, worker_id: str, ready: int) -> list[Decision]:
        """``worker_id`` is ready and ``ready`` workers are in rotation now."""
        self._abandoned.discard(worker_id)
        if not self._supervisor_gone:
            self.degraded = None
        size, out = self._config.pool_size, list[Decision]()
        if not self.started and self._progress and self._reply_to is not None:
            out.append(Announce(self._reply_to, StartProgress(ready, size)))
        if not self.started and ready >= size:
            out += self._announce(PoolStarted(self._pool, self._config.name, ready))
            self.started = True
            log.info("pool.init_complete", pool=self._config.name, workers=ready)
        return out

    def start_failed(self, worker_id: str, error: SnakepitError) -> list[Decision]:
        """A worker failed to start: before the pool started, the start failed."""
        self._last_start_error = error
        log.warning("worker.start_failed", worker_id=worker_id, error=str(error))
        return [] if self.started else self._announce(PoolStartFailed(error))

    def startup_deadline(self, ready: int) -> list[Decision]:
        """``startup_timeout`` passed with ``ready`` workers in rotation."""
        if self.started:
            return []
        cfg = self._config
        return self._announce(PoolStartFailed(errs.startup_timeout(
            cfg.name, ready, cfg.pool_size, cfg.startup_timeout)))

    def abandoned(self, worker_id: str) -> None:
        self._abandoned.add(worker_id)

    def supervisor_gone(self) -> None:
        self._supervisor_gone = True

    def check_degraded(self, ready: int) -> bool:
        """With ``ready`` workers in rotation: is the pool degraded now (no worker left and
        none coming back soon)? True means what waits must fail."""
        if ready or not (self._supervisor_gone or len(self._abandoned) >= self._config.pool_size):
            return False
        self.degraded = errs.degraded_text(self._config.name, self._last_start_error)
        log.error("pool.degraded", pool=self._config.name, reason=self.degraded)
        return True

    def _announce(self, msg: PoolStarted | PoolStartFailed) -> list[Decision]:
        to, self._reply_to = self._reply_to, None
        return [] if to is None else [Announce(to, msg)]
