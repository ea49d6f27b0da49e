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
    """A stored checkpoint (store.CheckpointRow) as its wire form."""
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


def page_body(held: Any, rows: list[Row], checkpoints: Sequence[Any]) -> dict[str, Any]:
    """The wire form of a sync page of ledger ``held`` (a store.LedgerRow): pull answers, push bodies."""
    return {
        "ledger_id": held.ledger_id,
        "public_key": held.public_key.hex(),
        "entries": [row_to_wire(row) for row in rows],
        "checkpoints": [checkpoint_to_wire(cp) for cp in checkpoints],
        "head_seq": held.head_seq,
        "has_more": bool(rows) and rows[-1][1] < held.head_seq,
    }
