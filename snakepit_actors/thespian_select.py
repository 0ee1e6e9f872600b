"""A cheaper selector for Thespian's TCP transport: one ``poll()`` per pass, no epoll set.

On every pass of its loop, Thespian's ``TCPTransport`` builds a new ``selectors.DefaultSelector``
(epoll on Linux), registers every socket it keeps open and closes it again: one
``epoll_create``, one ``epoll_ctl`` per socket and a ``close`` per pass. An actor that talks to
every worker (the WorkerSupervisor, the registries, the Pool) keeps a socket per worker, so
each message it handles costs a few hundred system calls at 256 workers. Measured with 300
sockets: about 1.2 ms per pass with epoll, 0.04 ms with one ``poll()``.

``install()`` gives the transport module a ``selectors`` of its own whose ``DefaultSelector``
is ``PassSelector``: it only remembers what is registered and asks the kernel once, in
``select``. Everything else about the transport is unchanged. Call it before the actor system
starts (``system.prepare_thespian`` does): forked actor processes inherit it.
"""

from __future__ import annotations

import errno
import math
import select
import selectors
import types
from typing import Any

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE
_POLL_READ = select.POLLIN
_POLL_WRITE = select.POLLOUT


class _Key:
    """What the transport reads of a ready entry (``key.fd``), as ``selectors.SelectorKey``."""

    __slots__ = ("events", "fd")

    def __init__(self, fd: int, events: int) -> None:
        self.fd, self.events = fd, events


class PassSelector:
    """The part of ``selectors.BaseSelector`` Thespian's transport uses, for one pass:
    ``register`` (pure bookkeeping), ``select`` (one ``poll()``), ``close``."""

    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: dict[int, int] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if fd < 0:
            raise ValueError(f"invalid file descriptor: {fd}")
        self._events[fd] = self._events.get(fd, 0) | events

    def select(self, timeout: float | None = None) -> list[tuple[_Key, int]]:
        """Ready entries as ``(key, events)``; a closed descriptor raises ``OSError(EBADF)``
        as epoll's ``register`` would (the transport then finds and drops it)."""
        poller = select.poll()
        for fd, events in self._events.items():
            poller.register(fd, (_POLL_READ if events & EVENT_READ else 0)
                            | (_POLL_WRITE if events & EVENT_WRITE else 0))
        wait_ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        ready = []
        for fd, polled in poller.poll(wait_ms):
            if polled & select.POLLNVAL:
                raise OSError(errno.EBADF, "bad file descriptor", fd)
            events = 0
            if polled & ~_POLL_READ:  # as selectors.PollSelector: HUP/ERR wake both sides
                events |= EVENT_WRITE
            if polled & ~_POLL_WRITE:
                events |= EVENT_READ
            wanted = self._events[fd]
            if events & wanted:
                ready.append((_Key(fd, wanted), events & wanted))
        return ready

    def close(self) -> None:
        self._events.clear()


#: The ``selectors`` the patched transport sees.
_SELECTORS = types.SimpleNamespace(DefaultSelector=PassSelector, EVENT_READ=EVENT_READ,
                                   EVENT_WRITE=EVENT_WRITE)


def install() -> bool:
    """Make Thespian's TCP transport use ``PassSelector``; idempotent. False when this
    Thespian's transport has no module-level ``selectors`` to replace (left as it is)."""
    from thespian.system.transport import TCPTransport as transport_module

    current = getattr(transport_module, "selectors", None)
    if current is _SELECTORS:
        return True
    if current is not selectors:
        return False
    transport_module.selectors = _SELECTORS
    return True
