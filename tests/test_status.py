"""``status``'s pid lookup kept between looks (ops/status.py ``PortPids``): a scan of every
socket only when a port is unknown or its process gone, at most once per look. The whole of
``status`` runs against real nodes in tests/test_node.py."""

from __future__ import annotations

import os

import pytest

from snakepit_actors.ops import status


def test_known_live_pids_are_not_scanned_again_and_misses_scan_once_per_look(
        monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[int] = []
    table = {1111: os.getpid()}

    def scan() -> dict[int, int]:
        scans.append(1)
        return dict(table)

    monkeypatch.setattr(status, "listening_pids", scan)
    pids = status.PortPids()
    assert not pids
    assert pids.new_look().get(1111) == os.getpid() and len(scans) == 1
    assert pids.get(1111) == os.getpid() and len(scans) == 1
    assert pids.new_look().get(1111) == os.getpid() and len(scans) == 1  # cached, alive
    assert pids.get(2222) is None and pids.get(3333) is None and len(scans) == 2  # once
    dead = 2**22 + 12345  # above pid_max: no such process
    table[2222] = dead
    assert pids.new_look().get(2222) == dead and len(scans) == 3  # a new port: scanned
    assert pids.new_look().get(2222) == dead and len(scans) == 4  # its process is gone
    assert pids
