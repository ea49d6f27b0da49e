from __future__ import annotations

from typing import Any

import pytest

from protocol.errors import LimitExceeded, NotCanonical
from protocol.limits import Limits, check_json, encode_content

LIMITS = Limits(max_depth=4, max_string_chars=10, max_key_chars=5)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_depth_limit_is_exact() -> None:
    check_json(nested(4), LIMITS, "payload")
    with pytest.raises(LimitExceeded, match=r"payload\.a\.a\.a\.a: nested deeper than 4"):
        check_json(nested(5), LIMITS, "payload")


def test_deep_lists_count_too() -> None:
    with pytest.raises(LimitExceeded, match="nested deeper"):
        check_json([[[[[1]]]]], LIMITS, "payload")


@pytest.mark.parametrize(
    ("value", "error", "where"),
    [
        ({"k": "x" * 11}, LimitExceeded, r"payload\.k: string longer"),
        ({"list": ["ok", "x" * 11]}, LimitExceeded, r"payload\.list\[1\]: string longer"),
        ({"toolong": 1}, LimitExceeded, "payload: key longer"),
        ({"n": 2**53}, NotCanonical, r"payload\.n: number outside"),
        ({"n": 2.0**53}, NotCanonical, r"payload\.n: number outside"),
        ({"n": -1e300}, NotCanonical, r"payload\.n: number outside"),
        ({"f": float("nan")}, NotCanonical, r"payload\.f: NaN"),
        ({"s": {1, 2}}, NotCanonical, r"payload\.s: set is not a JSON value"),
    ],
)
def test_offending_path_is_named(value: Any, error: type[Exception], where: str) -> None:
    with pytest.raises(error, match=where):
        check_json(value, LIMITS, "payload")


def test_payload_and_meta_are_sized_together() -> None:
    limits = Limits(max_payload_bytes=20)
    assert encode_content({"a": 1}, {"b": 2}, limits) == (b'{"a":1}', b'{"b":2}')
    with pytest.raises(LimitExceeded, match=r"entries\[3\]\.payload: payload and meta are 25 bytes, over 20"):
        encode_content({"a": "x" * 10}, {"b": 2}, limits, "entries[3].")
