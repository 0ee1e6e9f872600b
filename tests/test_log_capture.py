"""Worker output copied into the host log: per worker id, line by line, bounded."""

from __future__ import annotations

from pathlib import Path

from snakepit_actors.telemetry import subscribe
from snakepit_actors.tree.log_capture import WorkerLogTailer


def capture(tailer: WorkerLogTailer) -> list[dict[str, object]]:
    seen: list[dict[str, object]] = []
    unsubscribe = subscribe(lambda e, f: seen.append(f),
                            {"worker.output", "worker.output_dropped"})
    try:
        tailer.poll()
    finally:
        unsubscribe()
    return seen


def test_new_lines_are_emitted_once_with_the_worker_id(tmp_path: Path) -> None:
    log = tmp_path / "p_worker_1.log"
    log.write_text("one\ntwo\npart")
    (tmp_path / "thespian.log").write_text("not a worker\n")
    tailer = WorkerLogTailer([("p", str(tmp_path))])
    first = capture(tailer)
    assert [(e["worker_id"], e["line"], e["pool"]) for e in first] == [
        ("p_worker_1", "one", "p"), ("p_worker_1", "two", "p")]
    with log.open("a") as f:
        f.write("ial\nthree\n")
    assert [e["line"] for e in capture(tailer)] == ["partial", "three"]
    assert capture(tailer) == []


def test_long_lines_are_cut_and_a_flood_is_skipped_with_a_count(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("x" * 50 + "\n")
    tailer = WorkerLogTailer([("p", str(tmp_path))], max_line_chars=10, max_bytes_per_tick=100,
                             max_backlog_bytes=1000)
    (cut,) = capture(tailer)
    assert cut["line"] == "x" * 10 and cut["truncated"] is True
    with log.open("a") as f:
        f.write("y\n" * 5000)
    events = capture(tailer)
    assert "bytes" in events[0] and int(events[0]["bytes"]) > 9000  # type: ignore[call-overload]
    assert all(e.get("line") == "y" for e in events[1:]) and len(events) <= 51


def test_a_missing_run_directory_is_not_an_error(tmp_path: Path) -> None:
    assert WorkerLogTailer([("p", str(tmp_path / "gone"))]).poll() == 0


def test_a_pool_handle_copies_worker_output_when_someone_listens() -> None:
    import time

    from snakepit_actors import Pool, PoolConfig

    seen: list[dict[str, object]] = []
    unsubscribe = subscribe(lambda e, f: seen.append(f), {"worker.output"})
    try:
        with Pool.start(PoolConfig(name="out", pool_size=1)):
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        unsubscribe()
    assert seen and seen[0]["worker_id"] == "out_worker_1" and seen[0]["pool"] == "out"
    assert seen[0]["worker_event"] == "bridge.ready" and "line" not in seen[0]
    assert str(seen[0]["address"]).startswith("unix:")


def test_a_json_line_becomes_the_events_fields_and_other_lines_stay_text(
        tmp_path: Path) -> None:
    (tmp_path / "w1.log").write_text(
        '{"event": "bridge.ready", "pid": 7, "address": "unix:/x", "worker_id": "w1"}\n'
        '{"event": "loading", "level": "info", "pool": "mine", "progress": 0.5}\n'
        '{"not closed"\n[1, 2]\nplain text\n')
    events = capture(WorkerLogTailer([("p", str(tmp_path))]))
    assert events[0] == {"event": "worker.output", "component": "worker_output", "pool": "p",
                         "worker_id": "w1", "worker_event": "bridge.ready", "pid": 7,
                         "address": "unix:/x"}
    assert (events[1]["worker_event"], events[1]["worker_level"], events[1]["worker_pool"],
            events[1]["pool"], events[1]["progress"]) == ("loading", "info", "mine", "p", 0.5)
    assert [e["line"] for e in events[2:]] == ['{"not closed"', "[1, 2]", "plain text"]


def test_a_parsed_line_keeps_every_value_and_never_overwrites_the_events_own_fields() -> None:
    import json

    from hypothesis import given
    from hypothesis import strategies as st

    from snakepit_actors.tree.log_capture import _OURS, parse_json_line

    values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
    names = st.one_of(st.sampled_from(sorted(_OURS)), st.text(min_size=1, max_size=8))

    @given(st.dictionaries(names, values, max_size=8))
    def check(fields: dict[str, object]) -> None:
        known = {"pool": "p", "worker_id": "w1"}
        parsed = parse_json_line(json.dumps(fields), known)
        assert parsed is not None and not set(parsed) & _OURS
        for key, value in fields.items():
            if key in known and known[key] == value:
                assert f"worker_{key}" not in parsed  # the same worker id is not repeated
            else:
                assert parsed[f"worker_{key}" if key in _OURS else key] == value

    check()
