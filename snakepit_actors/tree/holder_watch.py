"""HolderWatch: are the client processes that hold leases still alive? (the Pool's I/O for it)

    client --LeaseBatch(holder_pid)--> Pool: HolderWatch.watch(holder, pid)
    Pool, every HOLDER_CHECK_S while leases are out: HolderWatch.dead() -> PoolCore

A client that dies holding leases would keep those slots forever, so a client gives its pid
and the Pool actor checks it with psutil; ``PoolCore`` (pure) only hears which holders died
(``PoolCore.holders_checked``) and reclaims their leases. Not an actor: a helper the Pool owns,
with no state worth keeping (a restarted Pool watches holders again as they send).
"""

from __future__ import annotations

from collections import OrderedDict


class HolderWatch:
    """The client processes that asked for leases, by holder address (``str``): pid and start
    time, so a reused pid is not taken for the client. ``dead`` checks them (psutil; a few
    microseconds each); holders found dead are remembered (bounded) and never watched again."""

    def __init__(self, max_dead: int = 1024) -> None:
        self._alive: dict[str, tuple[int, float]] = {}
        self._dead: OrderedDict[str, None] = OrderedDict()
        self._max_dead = max_dead

    def watch(self, key: str, pid: int) -> bool:
        """Remember holder ``key`` with ``pid``; True if it is watched. A pid with no live
        process here at first sight is not watched (a client on another host, whose pid means
        nothing here): its leases come back only when it returns them."""
        if key in self._alive:
            return True
        if key in self._dead:
            return False
        started = _create_time(pid)
        if started is None:
            return False
        self._alive[key] = (pid, started)
        return True

    def dead(self) -> list[tuple[str, int]]:
        """Holders that died since the last call: (key, pid)."""
        gone = [(key, pid) for key, (pid, started) in self._alive.items()
                if _create_time(pid) != started]
        for key, _pid in gone:
            del self._alive[key]
            self._dead[key] = None
            if len(self._dead) > self._max_dead:
                self._dead.popitem(last=False)
        return gone


def _create_time(pid: int) -> float | None:
    """The start time of the live process ``pid`` (None: gone or a zombie)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except psutil.Error:
        return None
