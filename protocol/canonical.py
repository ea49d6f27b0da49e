"""RFC 8785 (JCS) canonical bytes: the single path from a JSON value to the bytes we hash and sign.

The reference encoder is the ``rfc8785`` library. orjson with sorted keys produces the same bytes
for every value without floats and without non-ASCII object keys (JCS formats numbers the way
ECMAScript does and sorts keys by UTF-16 code units; orjson differs on both), so those values take
the fast path and every other value the reference one. ``tests/protocol/test_canonical.py`` proves
the two byte-identical on the published vectors and on generated values.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

from protocol.errors import NotCanonical

_SORTED = orjson.OPT_SORT_KEYS
_SAFE = 2**53 - 1


def canonical(value: Any, *, fast: bool | None = None) -> bytes:
    """Return the RFC 8785 encoding of ``value``; raise NotCanonical where there is none.

    ``fast`` tells whether the value qualifies for the fast path, where a caller already knows
    (``protocol.limits.check_json`` finds out while it walks the value); None = find out here.
    """
    if fast is None:
        fast = _fast_path_safe(value)
    if fast:
        try:
            return orjson.dumps(value, option=_SORTED)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise NotCanonical(str(exc)) from exc
    return reference(value)


def reference(value: Any) -> bytes:
    """Encode with the reference RFC 8785 implementation."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, UnicodeError) as exc:
        raise NotCanonical(str(exc)) from exc


def _fast_path_safe(value: Any) -> bool:
    """True when orjson's sorted output is the RFC 8785 encoding: no floats, no integers beyond
    ±(2^53-1) (the reference refuses them), and ASCII object keys only."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and k.isascii() and _fast_path_safe(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_fast_path_safe(item) for item in value)
    if isinstance(value, float):
        return False
    if isinstance(value, int):
        return -_SAFE <= value <= _SAFE
    return True
