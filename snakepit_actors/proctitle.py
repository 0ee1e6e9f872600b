"""Process titles by role, so ``ps`` and ``top`` tell the processes of a pool apart.

    snakepit-actors: PoolRoot (pool default)
    snakepit-actors: Pool (pool default)
    snakepit-actors: WorkerSupervisor (pool default)
    snakepit-actors: Starter default_worker_3 (pool default)
    snakepit-actors: Worker default_worker_3 (pool default)

Every actor process is a fork of the launching program and would otherwise show its command
line. The actors call ``name_process`` on their first (``Init...``) message. It needs the
optional ``setproctitle`` package and does nothing without it; with it, Thespian itself titles
the processes we do not (``MultiProcAdmin ActorAddr-...``, ``logger ...``, ``WorkerRegistry
...``). It never renames the launching process (``simpleSystemBase`` runs actors there).

Worker processes (``python -m snakepit_actors.bridge --worker-id ... --run-id ...``) keep
their command line: it already names the worker, and ``cleanup`` identifies orphans by it
(setproctitle would overwrite it, and the environment that follows it in memory).
"""

from __future__ import annotations

import multiprocessing

#: What every title starts with (``ps -ef | grep 'snakepit-actors:'``).
TITLE_PREFIX = "snakepit-actors: "


def process_title(role: str, *, worker: str = "", pool: str = "") -> str:
    """``"snakepit-actors: Worker w3 (pool p1)"``; empty parts are left out."""
    return (TITLE_PREFIX + role + (f" {worker}" if worker else "")
            + (f" (pool {pool})" if pool else ""))


def name_process(role: str, *, worker: str = "", pool: str = "") -> bool:
    """Set this actor process's title (see ``process_title``). Never raises, never blocks.

    Returns:
        True if the title was set; False without ``setproctitle``, or in a process that was
        not forked by another (the launching program keeps its own title).
    """
    if multiprocessing.parent_process() is None:
        return False
    try:
        from setproctitle import setproctitle
    except ImportError:
        return False
    try:
        setproctitle(process_title(role, worker=worker, pool=pool))
    except Exception:  # a title is cosmetic: never let it break an actor's start
        return False
    return True


def bind_actor_process(role: str, *, worker: str = "", pool: str = "") -> None:
    """What an actor of the pool's tree does on its first message: die with its parent process
    (``snakepit_supervision.lifetime.die_with_parent``) and take the title of ``role``."""
    from snakepit_supervision.lifetime import die_with_parent

    die_with_parent()
    name_process(role, worker=worker, pool=pool)
