"""``protocol.jsontext.loads`` refuses exactly the texts with a duplicate member name, and costs
little more than orjson on a sync page."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import jsontext
from protocol.errors import DuplicateMember, LimitExceeded, ProtocolError

NAMES = st.sampled_from(["a", "b", "a:", ":", 'q"', "\\", "é", "\u0061"]) | st.text(max_size=4)
SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(alphabet='ab:"\\ \u00e9\n', max_size=6)
PAIRS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(NAMES, inner), max_size=4),
    max_leaves=12,
)


def _text(value: Any, escape: bool) -> str:
    """JSON text of a value where lists of (name, value) pairs are objects, duplicates kept."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        members = (f"{_text(n, escape)} : {_text(v, escape)}" for n, v in value)
        return "{" + ",".join(members) + "}"
    if isinstance(value, tuple):  # never at top level
        raise AssertionError
    if isinstance(value, list):
        return "[" + ",".join(_text(v, escape) for v in value) + "]"
    return json.dumps(value, ensure_ascii=escape)


def _has_duplicate(text: str) -> bool:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({n for n, _ in pairs}) != len(pairs):
            raise ValueError("duplicate")
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=hook)
    except ValueError:
        return True
    return False


@settings(max_examples=400, deadline=None)
@given(PAIRS, st.booleans())
def test_refuses_exactly_the_texts_with_a_duplicate_name(value: Any, escape: bool) -> None:
    text = _text(value, escape)
    if _has_duplicate(text):
        with pytest.raises(DuplicateMember):
            jsontext.loads(text.encode())
    else:
        assert jsontext.loads(text.encode()) == orjson.loads(text)


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":1}', '{"a":1,"\\u0061":2}', '[{"x":{"k":1,"k":2}}]', '{"a":"x:y","b":{"a":1},"b":2}',
     '{"a" :1, "a" : 2}', '{"s":"\\u0022:","s":1}'],
)  # fmt: skip
def test_duplicates_anywhere_are_refused(text: str) -> None:
    with pytest.raises(DuplicateMember):
        jsontext.loads(text)


def test_cost_on_a_sync_page(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"v": 1, "ledger_id": "node-a", "id": "01930000-0000-7000-8000-000000000001", "stream": "proofs",
             "type": "proof", "issuer_oid": "oid:acme:org:1", "subject_oid": "oid:acme:doc:1", "key": None,
             "timestamp": 1735689600000, "payload": {"amount": 12, "at": "12:00:00", "nested": {"a": [1, 2]}},
             "meta": None, "prev_hash": "ab" * 32, "hash": "cd" * 32, "sig": "ef" * 64}  # fmt: skip
    page = orjson.dumps({"ledger_id": "node-a", "entries": [dict(entry, seq=i) for i in range(1, 1001)]})

    def per_call(parse: Any) -> float:
        started = time.perf_counter()
        for _ in range(20):
            parse(page)
        return (time.perf_counter() - started) / 20 * 1000

    plain, checked = per_call(orjson.loads), per_call(jsontext.loads)
    print(f"page of {len(page)} bytes: orjson {plain:.2f} ms, with the duplicate check {checked:.2f} ms")
    monkeypatch.setattr(jsontext, "_find_duplicate", None)  # a clean page never takes the second parse
    jsontext.loads(page)


@pytest.mark.parametrize("depth", [300, 1000])
def test_texts_deeper_than_orjson_encodes_are_checked_or_refused_as_a_limit(depth: int) -> None:
    text = '{"a":' * depth + "1" + "}" * depth
    if depth < 900:
        assert jsontext.loads(text) == orjson.loads(text)
    else:
        with pytest.raises(LimitExceeded):
            jsontext.loads(text)


@settings(max_examples=400, deadline=None)
@given(PAIRS, st.booleans(), st.integers(0, 60), st.binary(max_size=3))
def test_any_text_gives_a_value_or_a_clean_refusal(value: Any, escape: bool, at: int, junk: bytes) -> None:
    text = _text(value, escape).encode()
    mutated = text[:at] + junk + text[at + len(junk) :]
    try:
        jsontext.loads(mutated)
    except (jsontext.JSONDecodeError, ProtocolError):
        pass
