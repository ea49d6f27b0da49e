"""Opaque pagination cursors: a position (timestamp, ledger_id, seq) bound to the query it came from.

A cursor carries a short fingerprint of its filters and order, so a cursor from one query is refused
by another instead of silently paging the wrong result.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

from node.errors import InvalidRequest

Position = tuple[int, str, int]


def _fingerprint(query: Any) -> str:
    return hashlib.sha256(orjson.dumps(query, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def encode_cursor(position: Position, query: Any) -> str:
    """A cursor for the rows after ``position`` in the query described by ``query`` (JSON-able)."""
    raw = orjson.dumps([*position, _fingerprint(query)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, query: Any) -> Position:
    """The position in ``cursor``; InvalidRequest if it is malformed or from another query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        timestamp, ledger_id, seq, fingerprint = orjson.loads(raw)
        valid = isinstance(timestamp, int) and isinstance(ledger_id, str) and isinstance(seq, int)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        valid = False
    if len(cursor) > 512 or not valid:
        raise InvalidRequest("cursor: malformed")
    if fingerprint != _fingerprint(query):
        raise InvalidRequest("cursor: belongs to a different query")
    return timestamp, ledger_id, seq
