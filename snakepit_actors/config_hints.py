"""Messages for unknown configuration keys (one per key, with the likeliest intended key), and
what keeps a value from the wire's JSON.

    >>> unknown_key("pools.default.pool_sise", ["pool_size", "adapter"], "a PoolConfig field")
    "pools.default.pool_sise is not a PoolConfig field; did you mean 'pool_size'?"

Listing every valid key after every typo buried the one that mattered; the full list lives in
``docs/configuration.md``, which the message names when nothing is close.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

#: How alike a key must be to be suggested (difflib's ratio): catches typos, swapped or missing
#: letters and plural/singular slips; leaves unrelated words alone.
CLOSE_ENOUGH = 0.6


def unknown_key(path: str, known: Iterable[str], what: str) -> str:
    """``"<path> is not <what>; did you mean '<closest>'?"``, or a pointer to the reference.

    Args:
        path: the key as the user wrote it, with its table (``pools.default.pool_sise``).
        known: the valid keys at that place.
        what: what a valid key is, after "is not" ("a PoolConfig field", "a node setting").
    """
    key = path.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=CLOSE_ENOUGH)
    hint = (f"did you mean {close[0]!r}?" if close
            else "every valid key is listed in docs/configuration.md")
    return f"{path} is not {what}; {hint}"


def json_problem(value: Any) -> str | None:
    """What keeps a mapping from the wire's JSON (``json_codec``'s rule); None: nothing."""
    from snakepit_actors.errors import SerializationError
    from snakepit_actors.json_codec import encode_value

    try:
        encode_value(dict(value) if isinstance(value, Mapping) else {}, "adapter_config")
    except SerializationError as exc:
        return exc.message
    return None
