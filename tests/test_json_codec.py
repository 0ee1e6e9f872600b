"""The wire's JSON rule (``json_codec``), both directions, without a pool."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakepit_actors.errors import InvalidArgumentsError, PayloadTooLargeError, SerializationError
from snakepit_actors.json_codec import decode_value, encode_args, encode_value, failure_to_error

_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner), st.dictionaries(st.text(), inner)),
    max_leaves=30)
_anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.floats(), st.binary(),
              st.sets(st.integers(), max_size=2)),
    lambda inner: st.one_of(st.lists(inner), st.tuples(inner), st.dictionaries(
        st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.booleans()), inner)),
    max_leaves=30)


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=200)
@given(_json)
def test_json_values_round_trip_unchanged(value: Any) -> None:
    assert decode_value(encode_value(value, "result"), "result") == value


@settings(max_examples=200)
@given(_anything)
def test_any_value_encodes_or_is_refused_with_a_serialization_error_naming_a_path(
        value: Any) -> None:
    try:
        data = encode_value(value, "args")
    except SerializationError as exc:
        assert exc.reason == "args" and exc.message.startswith("args")
    else:
        json.loads(data)  # plain JSON: no NaN, no converted keys, decodable anywhere


def test_nan_and_infinity_are_refused_with_their_path_in_either_direction() -> None:
    with pytest.raises(SerializationError, match=r"args\.x\[3\] is nan") as args_err:
        encode_args("t", {"x": [0, 1, 2, math.nan]})
    assert args_err.value.reason == "args"
    with pytest.raises(SerializationError, match=r"result\.y is -inf") as result_err:
        encode_value({"y": -math.inf}, "result")
    assert result_err.value.reason == "result"
    with pytest.raises(SerializationError, match="NaN") as decoded:
        decode_value(b'{"x": NaN}', "result")
    assert decoded.value.reason == "result"


def test_non_string_keys_are_refused_at_any_depth_never_converted() -> None:
    for value, path in (({1: 2}, "args has the key 1"), ({"a": [{(1, 2): 0}]}, None),
                        ({"a": {"b c": {None: 1}}}, "args.a['b c'] has the key None")):
        with pytest.raises(SerializationError) as caught:
            encode_value(value, "args")
        assert path is None or path in caught.value.message


def test_deep_nesting_is_a_serialization_error_both_ways_not_a_recursion_error() -> None:
    with pytest.raises(SerializationError, match="nest too deeply"):
        encode_value({"x": nested(10_000)}, "args")
    with pytest.raises(SerializationError, match="nest too deeply") as caught:
        decode_value(b"[" * 100_000 + b"]" * 100_000, "chunk")
    assert caught.value.reason == "result"


def test_args_must_be_a_mapping_and_fit_the_payload_limit() -> None:
    with pytest.raises(InvalidArgumentsError):
        encode_args("t", [1])
    with pytest.raises(PayloadTooLargeError) as caught:
        encode_args("t", {"x": "y" * 2000}, limit_bytes=1024)
    assert caught.value.reason == "args"


def test_a_workers_failure_says_its_direction_by_the_start_of_its_message() -> None:
    class Failure:
        category, type, traceback = "payload_too_large", "ValueError", ""
        message = "result of tool 'big' is 9 bytes, over the limit of 8 bytes"

    assert failure_to_error(Failure(), "w1").reason == "result"
    Failure.message = "args of tool 'big' are 9 bytes, over the limit of 8 bytes"
    assert failure_to_error(Failure(), "w1").reason == "args"


def test_a_string_that_is_not_utf8_is_refused_with_its_path() -> None:
    with pytest.raises(SerializationError, match=r"args\.x\[1\] is '\\ud800', which is not UTF-8"):
        encode_value({"x": ["ok", "\ud800"]}, "args")
