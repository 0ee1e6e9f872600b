"""Telemetry: a closed catalogue of event names, silent unless the application opts in."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from snakepit_actors.telemetry import EVENTS, LatencyWindow, enable_logging, get_logger

PACKAGE = Path(__file__).resolve().parent.parent / "snakepit_actors"


def test_every_event_the_library_logs_is_in_the_catalogue() -> None:
    used = set()
    for path in PACKAGE.rglob("*.py"):
        used |= set(re.findall(r"log\.(?:debug|info|warning|error)\(\s*\"([a-z_.]+)\"",
                               path.read_text()))
    assert used, "the scan found no log calls"
    assert used <= EVENTS, f"events missing from telemetry.EVENTS: {sorted(used - EVENTS)}"


def test_the_library_is_silent_until_logging_is_enabled() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root, keep = logging.getLogger(), Keep()
    root.addHandler(keep)
    try:
        get_logger("test").warning("pool.degraded", reason="x")
    finally:
        root.removeHandler(keep)
    assert logging.getLogger("snakepit_actors").propagate is False
    assert not [r for r in seen if r.name.startswith("snakepit_actors")]


def test_enabled_events_are_key_value_lines_with_the_event_first() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    enable_logging(handler, "info")
    try:
        get_logger("pool").info("pool.init_complete", workers=4)
    finally:
        logging.getLogger("snakepit_actors").removeHandler(handler)
        logging.getLogger("snakepit_actors").setLevel(logging.NOTSET)
    assert records[0].getMessage() == "event='pool.init_complete' component='pool' workers=4"


def test_latency_percentiles_use_nearest_rank_over_the_window() -> None:
    window = LatencyWindow(size=100)
    assert window.percentile(0.5) == 0.0
    for value in range(1, 201):
        window.add(float(value))
    assert window.percentile(0.0) == 101.0
    assert window.percentile(0.5) == 150.0 or window.percentile(0.5) == 151.0
    assert window.percentile(1.0) == 200.0
