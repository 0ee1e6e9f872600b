"""SessionBook: TTL from last access, quota, data and global programs (injected clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakepit_actors.core.sessions import SessionBook
from snakepit_actors.errors import SessionNotFoundError, SessionQuotaError


def test_a_session_expires_its_ttl_after_its_last_access_not_its_creation() -> None:
    book = SessionBook(ttl_s=10.0, max_sessions=10)
    book.create("s1", 0.0)
    book.touch("s1", "w1", 8.0)
    assert book.expire(12.0) == []
    assert [s.session_id for s in book.expire(18.0)] == ["s1"]
    with pytest.raises(SessionNotFoundError, match="'s1'"):
        book.get("s1")


def test_a_sweep_ends_at_most_one_batch_the_rest_wait_for_the_next() -> None:
    book = SessionBook(ttl_s=1.0, max_sessions=100, batch=3)
    for i in range(7):
        book.create(f"s{i}", 0.0)
    assert [len(book.expire(5.0)) for _ in range(4)] == [3, 3, 1, 0]


def test_the_quota_refuses_new_sessions_with_a_clear_error_but_not_existing_ones() -> None:
    book = SessionBook(ttl_s=1.0, max_sessions=2)
    book.create("a", 0.0)
    book.create("b", 0.0)
    with pytest.raises(SessionQuotaError, match="max_sessions=2"):
        book.create("c", 0.0)
    assert book.create("a", 0.5, data={"k": 1}).data == {"k": 1}
    assert book.touch("c", "w1", 0.5) is False
    book.delete("a")
    assert book.touch("c", "w1", 0.5) is True and book.get("c").worker_id == "w1"


def test_session_data_and_metadata_merge_and_a_per_session_ttl_applies() -> None:
    book = SessionBook(ttl_s=100.0, max_sessions=10)
    info = book.create("s", 0.0, ttl_s=1.0, metadata={"user": "u"}, data={"a": 1})
    assert (info.ttl_s, info.metadata, info.data) == (1.0, {"user": "u"}, {"a": 1})
    assert book.update_data("s", {"b": 2}, 0.5).data == {"a": 1, "b": 2}
    assert [s.session_id for s in book.expire(2.0)] == ["s"]


def test_global_programs_are_shared_values_kept_apart_from_sessions() -> None:
    book = SessionBook(ttl_s=1.0, max_sessions=1)
    book.programs["p"] = {"v": 1}
    book.create("s", 0.0)
    book.expire(10.0)
    assert book.programs == {"p": {"v": 1}} and len(book) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["create", "touch", "delete", "expire"]),
                          st.sampled_from("abcd"), st.floats(0, 5)), max_size=50))
def test_expire_returns_exactly_the_sessions_idle_for_their_ttl(
        ops: list[tuple[str, str, float]]) -> None:
    book = SessionBook(ttl_s=2.0, max_sessions=3)
    last: dict[str, float] = {}
    now = 0.0
    for op, sid, step in ops:
        now += step
        if op == "create" and (sid in last or len(last) < 3):
            book.create(sid, now)
            last[sid] = now
        elif op == "touch" and book.touch(sid, "w", now):
            last[sid] = now
        elif op == "delete":
            book.delete(sid)
            last.pop(sid, None)
        elif op == "expire":
            ended = {s.session_id for s in book.expire(now)}
            assert ended == {s for s, t in last.items() if t + 2.0 <= now}
            for s in ended:
                del last[s]
        assert len(book) == len(last)
