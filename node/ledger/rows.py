"""The stored form of an entry (one SQLite row) and its conversions.

A row keeps payload and meta as their canonical JSON text and hashes and signatures as raw bytes,
so re-hashing a stored entry never re-encodes its payload, and serving it never parses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from protocol.entry import entry_hash

COLUMNS = (
    "ledger_id", "seq", "id", "stream", "type", "issuer_oid", "subject_oid", "key",
    "timestamp", "payload", "meta", "prev_hash", "hash", "sig",
)  # fmt: skip
SELECT_COLUMNS = ", ".join(COLUMNS)
PAYLOAD, META, HASH, SIG = 9, 10, 12, 13

Row = tuple[Any, ...]


def content_hash(row: Row) -> bytes:
    """Recompute a row's entry hash from its content columns."""
    return entry_hash(*row[:HASH])


def row_to_wire(row: Row) -> dict[str, Any]:
    """The entry as a JSON-ready dict (payload and meta embedded verbatim as orjson fragments)."""
    ledger_id, seq, entry_id, stream, type_, issuer, subject, key, ts, payload, meta, prev, digest, sig = row
    return {
        "v": 1,
        "ledger_id": ledger_id,
        "seq": seq,
        "id": entry_id,
        "stream": stream,
        "type": type_,
        "issuer_oid": issuer,
        "subject_oid": subject,
        "key": key,
        "timestamp": ts,
        "payload": orjson.Fragment(payload),
        "meta": None if meta is None else orjson.Fragment(meta),
        "prev_hash": None if prev is None else prev.hex(),
        "hash": digest.hex(),
        "sig": sig.hex(),
    }


def row_to_dict(row: Row) -> dict[str, Any]:
    """The entry as plain Python values (payload and meta parsed), for code that inspects them."""
    return {
        **row_to_wire(row),
        "payload": orjson.loads(row[9]),
        "meta": None if row[10] is None else orjson.loads(row[10]),
    }


def checkpoint_to_wire(cp: Any) -> dict[str, Any]:
    """A stored checkpoint (store.CheckpointRecord) as its wire form."""
    return {
        "ledger_id": cp.ledger_id,
        "seq": cp.seq,
        "hash": cp.hash.hex(),
        "sig_digest": cp.sig_digest.hex(),
        "timestamp": cp.timestamp,
        "sig": cp.sig.hex(),
    }


def receipt(row: Row) -> dict[str, Any]:
    """The short acknowledgement of an appended entry."""
    return {"id": row[2], "seq": row[1], "hash": row[HASH].hex()}


def wire_size(row: Row) -> int:
    """An upper bound of the bytes ``row_to_wire(row)`` takes as JSON (free-text labels counted as if
    every character were escaped), so a page cut by it never exceeds its budget."""
    payload, meta = row[9], row[10]
    size = 560 + len(row[0]) + len(row[2]) + len(row[3]) + len(row[4])  # keys, numbers, hashes, signature
    size += _text_bytes(payload) + (4 if meta is None else _text_bytes(meta))
    for label in (row[5], row[6], row[7]):  # issuer_oid, subject_oid, key
        if label is not None:
            size += 6 * len(label)
    return size


def brackets(row: Row) -> int:
    """An upper bound of the ``[`` and ``{`` bytes in ``row_to_wire(row)`` as JSON (strings included):
    what parsing it costs a reader."""
    count = 1
    for text in (row[9], row[10], row[5], row[6], row[7]):  # payload, meta, issuer_oid, subject_oid, key
        if text is not None:
            count += _brackets(text)
    return count


def within_budget(rows: list[Row], budget: int, brackets_budget: int, per_row: int = 0) -> list[Row]:
    """The longest prefix of ``rows`` whose wire size (plus ``per_row`` bytes and one bracket each)
    fits ``budget`` bytes and ``brackets_budget`` brackets; at least one row, so a page always moves
    forward."""
    used = opened = 0
    for i, row in enumerate(rows):
        used += wire_size(row) + per_row
        opened += brackets(row) + 1
        if (used > budget or opened > brackets_budget) and i > 0:
            return rows[:i]
    return rows


def _text_bytes(text: str | bytes) -> int:
    return len(text) if isinstance(text, bytes) else len(text.encode())


def _brackets(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def page_body(held: Any, rows: list[Row], checkpoints: Sequence[Any]) -> dict[str, Any]:
    """The wire form of a sync page of ledger ``held`` (a store.LedgerRecord): pull answers, push bodies."""
    return {
        "ledger_id": held.ledger_id,
        "public_key": held.public_key.hex(),
        "entries": [row_to_wire(row) for row in rows],
        "checkpoints": [checkpoint_to_wire(cp) for cp in checkpoints],
        "head_seq": held.head_seq,
        "has_more": bool(rows) and rows[-1][1] < held.head_seq,
    }
