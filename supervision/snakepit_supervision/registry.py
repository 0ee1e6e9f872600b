"""Registry: unique keys -> (actor address, value), with subscriptions and removal on exit.

    parent supervisor (usually permanent, started before the actors that register)
     └─ Registry   key -> (address, value);  subscribers <- RegistrySnapshot, RegistryChanged

* **A registered actor exits.** Thespian tells only an actor's *parent* that it exited, so the
  registry learns it in one of two documented ways:

  1. *Exit facts* (fast, exact): give the registry as ``exit_watchers`` in the
     ``InitSupervisor`` of the registered actors' supervisor (or send ``UnregisterAddress``
     yourself). The supervisor forwards ``ChildExited``; the registry forgets every key of that
     address. Measured on multiprocTCPBase: kill -9 of a registered child -> subscriber sees
     ``RegistryChanged(removed=True)`` after a median 6 ms (4-18 ms). Stop such a supervisor
     before its registry, not together with it (docs/supervision.md, "Stopping").
  2. *Liveness probe* (generic, slow, opt-in): with ``InitKeyRegistry(probe_interval_s=T,
     probe_misses=N)`` the registry sends Thespian's own ``Thespian_StatusReq`` to every
     registered address and subscriber each T seconds (the framework answers it, the actor's
     code is not involved); an address that leaves N probes in a row unanswered is forgotten,
     after about T*(N+0.5) s (measured 0.24 s for 0.1 x 2, 1.74 s for 0.5 x 3). An actor
     blocked in one handler that long looks dead.

  Dead-letter handling is not used: Thespian has one dead-letter handler per actor system.
* **The registry crashes**: its entries are gone; its supervisor restarts it empty, and
  registrants must register again (e.g. by being restarted with it, rest_for_one).
* **The registry is stopped**: nothing to clean up.

Duplicate keys: the same address may re-register a key (the value is replaced). A key held by
another address is rejected with ``RegistrationRejected`` unless ``Register.replace`` is true.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from thespian.actors import Thespian_StatusReq

from .lifetime import SupervisedActor
from .messages import (
    ActorAddress,
    ChildExited,
    InitKeyRegistry,
    ListEntries,
    Lookup,
    LookupResult,
    Register,
    Registered,
    RegistrationRejected,
    RegistryChanged,
    RegistryEntry,
    RegistrySnapshot,
    SubscribeRegistry,
    Unregister,
    UnregisterAddress,
    Unregistered,
    UnsubscribeRegistry,
)

log = logging.getLogger("snakepit_supervision")


@dataclass(frozen=True, slots=True)
class _ProbeDue:
    """Wakeup payload: time to probe the registered addresses (every probe interval)."""


class Registry(SupervisedActor):
    """The registry actor. ``InitKeyRegistry`` is optional; every other message of the
    registry protocol (``snakepit_supervision.messages``) is accepted from its first message on."""

    def __init__(self) -> None:
        super().__init__()
        self._name = ""
        self._entries: dict[str, RegistryEntry] = {}
        self._subscribers: list[ActorAddress] = []
        self._probe_interval_s = 0.0
        self._probe_misses = 3
        self._unanswered: list[tuple[ActorAddress, int]] = []  # (address, probes in a row)

    # --- handlers ------------------------------------------------------------------------------

    def receiveMsg_InitKeyRegistry(self, msg: InitKeyRegistry, sender: ActorAddress) -> None:
        """Name the registry and start probing if asked to."""
        self._name = msg.name
        self._probe_misses = max(1, msg.probe_misses)
        start = self._probe_interval_s <= 0 < msg.probe_interval_s
        self._probe_interval_s = max(0.0, msg.probe_interval_s)
        if start:
            self.wakeupAfter(timedelta(seconds=self._probe_interval_s), _ProbeDue())

    def receiveMsg_Register(self, msg: Register, sender: ActorAddress) -> None:
        """Store the entry, or reject a key held by another address."""
        old = self._entries.get(msg.key)
        if old is not None and old.address != msg.address and not msg.replace:
            reason = (
                f"key {msg.key!r} is held by another address; pass replace=True if that"
                " holder is gone"
            )
            self.send(sender, RegistrationRejected(msg.key, old.address, reason))
            return
        self._entries[msg.key] = RegistryEntry(msg.key, msg.address, msg.value)
        self.send(sender, Registered(msg.key, msg.address, replaced=old is not None))
        self._publish(msg.key, msg.address, msg.value, removed=False)

    def receiveMsg_Unregister(self, msg: Unregister, sender: ActorAddress) -> None:
        """Forget one key."""
        removed = self._remove(msg.key)
        self.send(sender, Unregistered(msg.key, removed))

    def receiveMsg_UnregisterAddress(self, msg: UnregisterAddress, sender: ActorAddress) -> None:
        """An address is gone: forget its keys and its subscription."""
        self._forget_address(msg.address)

    def receiveMsg_ChildExited(self, msg: ChildExited, sender: ActorAddress) -> None:
        """A supervisor's exit fact (we are one of its ``exit_watchers``)."""
        self._forget_address(msg.address)

    def receiveMsg_Lookup(self, msg: Lookup, sender: ActorAddress) -> None:
        """Reply with the entry, or an empty result."""
        entry = self._entries.get(msg.key)
        if entry is None:
            self.send(sender, LookupResult(msg.key, None, None))
        else:
            self.send(sender, LookupResult(msg.key, entry.address, entry.value))

    def receiveMsg_ListEntries(self, msg: ListEntries, sender: ActorAddress) -> None:
        """Reply with every entry."""
        self.send(sender, self._snapshot())

    def receiveMsg_SubscribeRegistry(self, msg: SubscribeRegistry, sender: ActorAddress) -> None:
        """Send the current entries to the subscriber, then keep it informed."""
        if not any(s == msg.subscriber for s in self._subscribers):
            self._subscribers.append(msg.subscriber)
        self.send(msg.subscriber, self._snapshot())

    def receiveMsg_UnsubscribeRegistry(
        self, msg: UnsubscribeRegistry, sender: ActorAddress
    ) -> None:
        """Stop informing a subscriber."""
        self._subscribers = [s for s in self._subscribers if s != msg.subscriber]

    def receiveMsg_WakeupMessage(self, msg: Any, sender: ActorAddress) -> None:
        """Probe tick: forget addresses that missed too many probes, then probe again."""
        if not isinstance(msg.payload, _ProbeDue):
            log.error("supervision.unknown_timer registry=%s payload=%r", self._name, msg.payload)
            return
        if self._probe_interval_s <= 0:
            return
        self._evict_silent()
        for address in self._watched():
            self._count_probe(address)
            self.send(address, Thespian_StatusReq())
        self.wakeupAfter(timedelta(seconds=self._probe_interval_s), _ProbeDue())

    def receiveMsg_Thespian_ActorStatus(self, msg: Any, sender: ActorAddress) -> None:
        """A probe answer: ``sender`` is alive."""
        self._unanswered = [(a, n) for a, n in self._unanswered if a != sender]

    # --- steps ---------------------------------------------------------------------------------

    def _watched(self) -> list[ActorAddress]:
        """Every distinct registered address and subscriber."""
        found: list[ActorAddress] = []
        for address in [e.address for e in self._entries.values()] + self._subscribers:
            if not any(a == address for a in found):
                found.append(address)
        return found

    def _count_probe(self, address: ActorAddress) -> None:
        for i, (known, count) in enumerate(self._unanswered):
            if known == address:
                self._unanswered[i] = (known, count + 1)
                return
        self._unanswered.append((address, 1))

    def _evict_silent(self) -> None:
        silent = [a for a, n in self._unanswered if n >= self._probe_misses]
        for address in silent:
            log.info("supervision.registry_evicted registry=%s address=%s", self._name, address)
            self._forget_address(address)

    def _forget_address(self, address: ActorAddress) -> None:
        for key in [k for k, e in self._entries.items() if e.address == address]:
            self._remove(key)
        self._subscribers = [s for s in self._subscribers if s != address]
        self._unanswered = [(a, n) for a, n in self._unanswered if a != address]

    def _remove(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._publish(key, entry.address, entry.value, removed=True)
        return True

    def _publish(self, key: str, address: ActorAddress, value: Any, removed: bool) -> None:
        change = RegistryChanged(self._name, key, address, value, removed)
        for subscriber in self._subscribers:
            self.send(subscriber, change)

    def _snapshot(self) -> RegistrySnapshot:
        entries = tuple(self._entries[k] for k in sorted(self._entries))
        return RegistrySnapshot(self._name, entries)
