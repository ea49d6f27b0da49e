"""``canonical`` gives the reference RFC 8785 bytes for every value protocol v1 accepts, whichever path it takes."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical import canonical, reference
from protocol.errors import NotCanonical
from protocol.limits import DEFAULT_LIMITS, check_json
from protocol.vectors import DIRECTORY
from tests.protocol.numbers import within_rule

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
def test_canonical_matches_reference_without_floats(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value, DEFAULT_LIMITS, "payload") == rfc8785.dumps(value)


@given(json_values(floats=True))
@settings(max_examples=800, deadline=None)
def test_canonical_matches_reference_or_refuses_by_the_number_rule(value: Any) -> None:
    if within_rule(value):
        assert canonical(value) == rfc8785.dumps(value)
    else:
        with pytest.raises(NotCanonical, match="number outside"):
            canonical(value)


@pytest.mark.parametrize(
    "value",
    [56.0, {"x": 56.0}, [1, 2.0, -0.0], {"\U0001f600": 1, "\ufb33": 2, "a": 3}, {"k": {"\U0001d11e": [0.5]}}],
    ids=["integral-float", "integral-float-member", "floats-in-list", "astral-names", "nested-astral-name"],
)
def test_inputs_the_fast_path_cannot_encode_get_the_reference_bytes(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value, DEFAULT_LIMITS, "payload") == rfc8785.dumps(value)
    check_json(value, DEFAULT_LIMITS, "payload")  # a check only: nothing a caller could misuse as a path choice


def test_there_is_no_switch_to_force_the_fast_path() -> None:
    with pytest.raises(TypeError):
        canonical(56.0, fast=True)  # type: ignore[call-arg]


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


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 2**53, -(2**53), 2.0**53, -(2.0**53), 1e21, 1e300, 10**30, "\ud800"]
)
def test_values_without_canonical_form_are_refused(value: Any) -> None:
    with pytest.raises(NotCanonical):
        canonical({"x": value})
