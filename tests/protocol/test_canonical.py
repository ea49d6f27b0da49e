"""The canonical fast path is byte-identical to the reference RFC 8785 encoder where it is used."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical import _fast_path_safe, canonical, reference
from protocol.errors import NotCanonical
from protocol.limits import DEFAULT_LIMITS, check_json
from protocol.vectors import DIRECTORY

safe_ints = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(st.characters(codec="utf-8"), max_size=20)  # any scalar value, no lone surrogates


def json_values(floats: bool) -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | safe_ints | text | (finite_floats if floats else st.nothing())
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
        max_leaves=30,
    )


@given(json_values(floats=False))
@settings(max_examples=800, deadline=None)
def test_fast_path_matches_reference_without_floats(value: Any) -> None:
    if _fast_path_safe(value):
        assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == rfc8785.dumps(value)
    assert canonical(value) == rfc8785.dumps(value)


@given(json_values(floats=True))
@settings(max_examples=800, deadline=None)
def test_canonical_matches_reference_on_any_json(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@given(json_values(floats=True))
@settings(max_examples=300, deadline=None)
def test_limits_walk_agrees_with_fast_path_check(value: Any) -> None:
    try:
        fast = check_json({"v": value}, DEFAULT_LIMITS, "payload")
    except Exception:
        return  # too deep or too long for the limits: not a question for the fast path
    assert fast == _fast_path_safe({"v": value})
    assert canonical({"v": value}, fast=fast) == rfc8785.dumps({"v": value})


def test_sorting_follows_utf16_code_units_not_code_points() -> None:
    # U+FB33 sorts after U+1F600 in UTF-16 (0xFB33 > 0xD83D) but before it by code point
    value = {"\ufb33": 1, "\U0001f600": 2}
    assert canonical(value) == reference(value)
    assert canonical(value).index("😀".encode()) < canonical(value).index("\ufb33".encode())


def test_vectors_canonical_bytes() -> None:
    cases = orjson.loads((DIRECTORY / "canonical.json").read_bytes())
    assert len(cases) >= 10
    for case in cases:
        assert canonical(case["input"]).decode() == case["canonical"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**53, -(2**53), "\ud800"])
def test_values_without_canonical_form_are_refused(value: Any) -> None:
    with pytest.raises(NotCanonical):
        canonical({"x": value})
