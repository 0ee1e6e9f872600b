"""The pure parts of a chunk's call (``client.batch_call``): its arguments, one JSON array or
each item's JSON on demand. (The call itself runs against real workers in test_fanout.py.)"""

from __future__ import annotations

import json

from snakepit_actors.client.batch_call import Cancel, ChunkArgs
from snakepit_actors.errors import RequestCancelledError


def test_chunk_args_made_from_values_encode_an_item_only_when_asked() -> None:
    values = [{"i": 0}, {"i": 1}, {"i": 2}]
    chunk = ChunkArgs(json.dumps(values).encode(), values)
    assert len(chunk) == 3 and json.loads(chunk[1]) == {"i": 1}
    assert json.loads(chunk.subset([2, 0]).array) == [{"i": 2}, {"i": 0}]
    assert chunk.subset([0, 1, 2]) is chunk  # every item: the array as it is


def test_chunk_args_made_from_each_items_json_join_them_into_one_array() -> None:
    chunk = ChunkArgs.of([b'{"a":1}', b"{}"])
    assert chunk.array == b'[{"a":1},{}]' and chunk[0] == b'{"a":1}'


def test_a_cancel_cancels_the_calls_it_tracks_and_every_later_one() -> None:
    class Call:
        cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    cancel, running, later = Cancel(), Call(), Call()
    assert cancel.track(running)
    cancel.cancel(RequestCancelledError("stop"))
    assert running.cancelled and cancel.error is not None
    assert not cancel.track(later) and later.cancelled
