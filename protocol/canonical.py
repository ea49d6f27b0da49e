"""RFC 8785 (JCS) canonical bytes: the single path from a JSON value to the bytes we hash and sign.

``canonical(value)`` is the only public encoder. It walks the value once, refusing what has no
canonical form in protocol v1 (docs/protocol.md section 2) and, when given limits, what breaks them,
each refusal naming the path of the offending member. The one rule for numbers is applied there,
by value: a number, whatever its Python type or JSON text (``5``, ``5.0``, ``5e0``), must be finite
and lie within ±(2^53-1), so ``9007199254740992.0`` is refused exactly like ``9007199254740992``.

The walk also learns whether the value fits orjson's fast path: orjson with sorted keys produces the
RFC 8785 bytes for every value without floats and without non-ASCII object names (JCS formats
numbers the way ECMAScript does, ``56.0`` → ``56``, and sorts names by UTF-16 code units; orjson
differs on both), so only such values take it; every other value goes to the reference encoder
(the ``rfc8785`` library). Nothing outside this module chooses the path, so no caller can pick the
wrong one. ``tests/protocol/test_canonical.py`` proves the result byte-identical to the reference.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import orjson
import rfc8785

from protocol.errors import LimitExceeded, NotCanonical

MAX_SAFE_INTEGER = 2**53 - 1
_SORTED = orjson.OPT_SORT_KEYS


class Bounds(Protocol):
    """The limits the walk enforces (``protocol.limits.Limits`` is one)."""

    @property
    def max_depth(self) -> int: ...
    @property
    def max_string_chars(self) -> int: ...
    @property
    def max_key_chars(self) -> int: ...


class _Unbounded:
    max_depth = 10_000  # deeper values fail on Python's recursion limit first
    max_string_chars = 2**62
    max_key_chars = 2**62


_UNBOUNDED = _Unbounded()


def canonical(value: Any, limits: Bounds | None = None, field: str = "value") -> bytes:
    """Return the RFC 8785 encoding of ``value``.

    Raises NotCanonical where protocol v1 gives the value no canonical form and, with ``limits``,
    LimitExceeded where it breaks one; either message starts with the offending path (``field``,
    then ``.name`` and ``[index]`` steps).
    """
    if _walk(value, limits or _UNBOUNDED, field, 0):
        try:
            return orjson.dumps(value, option=_SORTED)
        except (TypeError, orjson.JSONEncodeError) as exc:  # a lone surrogate in a string
            raise NotCanonical(f"{field}: {exc}") from exc
    return reference(value, field)


def reference(value: Any, field: str = "value") -> bytes:
    """Encode with the reference RFC 8785 implementation alone (no protocol rule applied)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, UnicodeError) as exc:
        raise NotCanonical(f"{field}: {exc}") from exc


def number_refusal(value: int | float) -> str | None:
    """Why protocol v1 refuses this number, or None: the one rule for numbers, applied by value."""
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:  # False for NaN
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and Infinity are not JSON"
    return "number outside ±(2^53-1)"


def _walk(value: Any, limits: Bounds, path: str, depth: int) -> bool:
    """Check ``value``; return whether orjson's sorted output is its RFC 8785 encoding.

    Exact type checks (bool is not int here) keep this hot loop cheap; paths are built only for
    containers and errors.
    """
    kind = type(value)
    if kind is str:
        if len(value) > limits.max_string_chars:
            raise LimitExceeded(f"{path}: string longer than {limits.max_string_chars} characters")
        return True
    if kind is int or kind is float:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NotCanonical(f"{path}: {number_refusal(value)}")
        return kind is int
    if value is None or kind is bool:
        return True
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
