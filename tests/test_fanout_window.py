"""The bounded window of ``Pool.map`` (``core.fanout_window.MapWindow``): chunks come out in
input order (or each exactly once as they finish), and never more than ``window`` chunks are
outstanding. No threads, no processes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.core.fanout_window import MapWindow


def drive(window: MapWindow[int], chunks: int, seed: int) -> list[int]:
    """Cut ``chunks`` chunks, finish them in a random order, take whatever is ready at random
    moments; returns the seqs the consumer got, checking the bound all along."""
    rng = random.Random(seed)
    running: list[int] = []
    got: list[int] = []
    cut = 0
    while len(got) < chunks:
        moves = []
        if cut < chunks and window.may_cut():
            moves.append("cut")
        if running:
            moves.append("finish")
        if window.ready():
            moves.append("take")
        assert moves, "stuck: nothing can move"
        move = rng.choice(moves)
        if move == "cut":
            running.append(window.cut())
            cut += 1
            if cut == chunks:
                window.exhausted = True
        elif move == "finish":
            seq = running.pop(rng.randrange(len(running)))
            window.finish(seq, seq * 10)
        else:
            taken = window.take()
            assert taken is not None and taken[1] == taken[0] * 10
            got.append(taken[0])
        assert window.outstanding <= 3
    assert window.ended() and window.take() is None
    return got


@given(st.integers(1, 40), st.integers(0, 10_000))
def test_an_ordered_map_yields_its_chunks_in_input_order_whatever_order_they_finish(
        chunks: int, seed: int) -> None:
    assert drive(MapWindow(3, ordered=True), chunks, seed) == list(range(chunks))


@given(st.integers(1, 40), st.integers(0, 10_000))
def test_an_unordered_map_yields_every_chunk_exactly_once(chunks: int, seed: int) -> None:
    assert sorted(drive(MapWindow(3, ordered=False), chunks, seed)) == list(range(chunks))


def test_no_chunk_is_cut_while_the_window_is_full_until_the_consumer_takes_one() -> None:
    window: MapWindow[str] = MapWindow(2, ordered=True)
    first, second = window.cut(), window.cut()
    assert not window.may_cut()
    window.finish(second, "b")
    assert window.take() is None and not window.may_cut()  # the first is not finished yet
    window.finish(first, "a")
    assert window.take() == (0, "a") and window.may_cut()
    assert window.take() == (1, "b")


def test_a_window_must_hold_at_least_one_chunk() -> None:
    with pytest.raises(ValueError, match="window must be >= 1"):
        MapWindow(0, ordered=True)
