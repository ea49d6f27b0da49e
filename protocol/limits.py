"""Protocol limits and the walk that enforces them on JSON values.

Limits are part of protocol v1: a node may be configured stricter, never looser, and a value that
breaks one is refused with an error naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from protocol.errors import LimitExceeded, NotCanonical

MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one entry or one request may carry."""

    max_payload_bytes: int = 64 * 1024  # canonical payload + meta, in bytes
    max_depth: int = 32  # nesting of objects and arrays inside payload or meta
    max_string_chars: int = 16 * 1024  # any string value inside payload or meta
    max_key_chars: int = 256  # any object key inside payload or meta
    max_field_chars: int = 256  # issuer_oid, subject_oid, key
    max_batch: int = 1000  # entries in one append or one sync page
    max_query_limit: int = 1000  # entries in one query answer


DEFAULT_LIMITS = Limits()


def check_json(value: Any, limits: Limits, field: str) -> bool:
    """Check a JSON value against ``limits``; raise naming the first offending path.

    Returns whether the value qualifies for the canonical fast path (no floats, ASCII keys only),
    so callers walk a value once: ``canonical(value, fast=check_json(value, limits, "payload"))``.
    """
    return _walk(value, limits, field, 0)


def _walk(value: Any, limits: Limits, path: str, depth: int) -> bool:
    # exact type checks (bool is not int here) keep this hot loop cheap; paths are built only for
    # containers and errors
    kind = type(value)
    if kind is str:
        if len(value) > limits.max_string_chars:
            raise LimitExceeded(f"{path}: string longer than {limits.max_string_chars} characters")
        return True
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NotCanonical(f"{path}: integer outside ±(2^53-1)")
        return True
    if value is None or kind is bool:
        return True
    if kind is float:
        if not math.isfinite(value):
            raise NotCanonical(f"{path}: NaN and Infinity are not JSON")
        return False
    if kind is not dict and kind is not list:
        raise NotCanonical(f"{path}: {kind.__name__} is not a JSON value")
    if depth >= limits.max_depth:
        raise LimitExceeded(f"{path}: nested deeper than {limits.max_depth}")
    fast = True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise NotCanonical(f"{path}: object keys must be strings")
            if len(key) > limits.max_key_chars:
                raise LimitExceeded(f"{path}: key longer than {limits.max_key_chars} characters")
            if not key.isascii():
                fast = False
            item_kind = type(item)
            if item_kind is str and len(item) <= limits.max_string_chars:
                continue
            if item_kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            if not _walk(item, limits, f"{path}.{key}", depth + 1):
                fast = False
        return fast
    for index, item in enumerate(value):
        if not _walk(item, limits, f"{path}[{index}]", depth + 1):
            fast = False
    return fast
