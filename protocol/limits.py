"""Protocol limits (the walk that enforces them on JSON values is ``protocol.canonical``'s).

Limits are part of protocol v1: a node may be configured stricter, never looser, and a value that
breaks one is refused with an error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.canonical import MAX_SAFE_INTEGER, canonical

__all__ = ["DEFAULT_LIMITS", "MAX_SAFE_INTEGER", "Limits", "check_json"]


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
