"""Protocol limits, and the one check of an entry's payload and meta that every path applies.

Limits are part of protocol v1: a node may be configured stricter, never looser, and a value that
breaks one is refused with an error naming the field. ``encode_content`` is what the append path,
the sync receiver, import and ``verify`` all call on an entry's payload and meta, so a node never
signs what a peer would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.canonical import MAX_SAFE_INTEGER, canonical
from protocol.errors import LimitExceeded

__all__ = ["DEFAULT_LIMITS", "MAX_SAFE_INTEGER", "Limits", "check_json", "encode_content"]


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


def check_json(value: Any, limits: Limits, field: str) -> None:
    """Check a JSON value against ``limits`` and the canonical rules; raise naming the first offending path."""
    canonical(value, limits, field)


def encode_content(
    payload: Any, meta: Any, limits: Limits = DEFAULT_LIMITS, where: str = ""
) -> tuple[bytes, bytes | None]:
    """The canonical bytes of an entry's payload and meta, checked against ``limits``.

    Raises NotCanonical or LimitExceeded naming the field (``{where}payload.x``): a value without a
    canonical form, a string, name or nesting over its limit, or payload and meta together over
    ``max_payload_bytes`` of canonical encoding.
    """
    payload_bytes = canonical(payload, limits, f"{where}payload")
    meta_bytes = None if meta is None else canonical(meta, limits, f"{where}meta")
    size = len(payload_bytes) + (0 if meta_bytes is None else len(meta_bytes))
    if size > limits.max_payload_bytes:
        raise LimitExceeded(f"{where}payload: payload and meta are {size} bytes, over {limits.max_payload_bytes}")
    return payload_bytes, meta_bytes
