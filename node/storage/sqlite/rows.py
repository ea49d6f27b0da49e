"""The SQLite row of an entry: its column order and the mapping to and from StoredEntry.

Positional rows exist only here and in the SQL of this package; everything above storage sees
StoredEntry records.
"""

from __future__ import annotations

from typing import Any

from node.storage.contract import StoredEntry

COLUMNS = (
    "ledger_id", "seq", "id", "stream", "type", "issuer_oid", "subject_oid", "key",
    "timestamp", "payload", "meta", "prev_hash", "hash", "sig",
)  # fmt: skip
SELECT_COLUMNS = ", ".join(COLUMNS)
KEY_COLUMNS = "ledger_id, seq, timestamp, stream, type, issuer_oid, subject_oid, key, hash"
"""The columns of a TailKey, in its field order."""

Row = tuple[Any, ...]


def to_entry(row: Row) -> StoredEntry:
    return StoredEntry(*row)


def to_row(e: StoredEntry) -> Row:
    return (e.ledger_id, e.seq, e.id, e.stream, e.type, e.issuer_oid, e.subject_oid, e.key, e.timestamp, e.payload,
            e.meta, e.prev_hash, e.hash, e.sig)  # fmt: skip
