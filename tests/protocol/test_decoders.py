"""The protocol's decoders take any JSON: a valid value or a clean refusal (ValidationError or a
ProtocolError), never another exception. Values are drawn at random, and mutated from valid ones."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from protocol.canonical import canonical
from protocol.errors import ProtocolError
from protocol.limits import DEFAULT_LIMITS, check_json
from protocol.models import Checkpoint, Entry, EntryDraft, Heads, Page
from protocol.records import KeyRotation, NodeRecord
from protocol.trust import TrustAttestation

MODELS: list[type[BaseModel]] = [EntryDraft, Entry, Checkpoint, Heads, Page, NodeRecord, KeyRotation, TrustAttestation]
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
FIELDS = ["ledger_id", "seq", "id", "stream", "type", "payload", "meta", "timestamp", "prev_hash", "hash", "sig",
          "entries", "checkpoints", "public_key", "issued_at", "endpoints", "level", "from", "to", "key"]  # fmt: skip
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(model: type[BaseModel], value: Any) -> None:
    try:
        model.model_validate(value)
    except (ValidationError, ProtocolError):
        pass
    try:
        model.model_validate_json(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except (ValidationError, ProtocolError, orjson.JSONEncodeError):
        pass


@SETTINGS
@given(value=JSON)
def test_any_json_is_decoded_or_refused_cleanly(value: Any) -> None:
    for model in MODELS:
        decode(model, value)


@SETTINGS
@given(fields=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=len(FIELDS)))
def test_objects_with_the_right_field_names_and_wrong_values_are_refused_cleanly(fields: dict[str, Any]) -> None:
    for model in MODELS:
        decode(model, fields)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_raw_bytes_are_refused_cleanly(raw: bytes) -> None:
    for model in MODELS:
        try:
            model.model_validate_json(raw)
        except (ValidationError, ProtocolError):
            pass


@SETTINGS
@given(value=JSON)
def test_limits_and_canonical_encoding_refuse_cleanly(value: Any) -> None:
    try:
        encoded = canonical(value, DEFAULT_LIMITS, "payload")
    except ProtocolError:
        return
    # the same value back (numbers compared as doubles: RFC 8785 writes 4.4e16 as 44000000000000000)
    assert json.loads(encoded, parse_int=float) == json.loads(json.dumps(value), parse_int=float)


def test_nesting_a_thousand_deep_is_refused_by_limits_not_by_recursion() -> None:
    deep: Any = 1
    for _ in range(1000):
        deep = {"a": deep}
    for model in MODELS:
        decode(model, deep)
    try:
        check_json(deep, DEFAULT_LIMITS, "payload")
    except ProtocolError as exc:
        assert "nested deeper than 32" in str(exc)
    else:
        raise AssertionError("depth 1000 passed the limits")
