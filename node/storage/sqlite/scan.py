"""Streaming reads on a plain sqlite3 connection, for verification, export and offline tools.

These run in a worker thread on a connection of their own (``connect_sync``), inside one read
transaction when the caller opens one, so a whole ledger is read from one snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node.storage.contract import CheckpointRecord, LedgerRecord, StoredEntry
from node.storage.database import connect_sync
from node.storage.sqlite.entries import LEDGER_COLUMNS, ledger_record
from node.storage.sqlite.rows import SELECT_COLUMNS

_CHECKPOINT_COLUMNS = "ledger_id, seq, hash, sig_digest, timestamp, sig"


def iter_entries(conn: sqlite3.Connection, ledger_id: str, after_seq: int) -> Iterator[StoredEntry]:
    """Stream a ledger's entries in seq order after ``after_seq`` without loading them all."""
    sql = f"SELECT {SELECT_COLUMNS} FROM entries WHERE ledger_id = ? AND seq > ? ORDER BY seq"
    for row in _stream(conn, sql, (ledger_id, after_seq)):
        yield StoredEntry(*row)


def iter_checkpoints(conn: sqlite3.Connection, ledger_id: str, after_seq: int) -> Iterator[CheckpointRecord]:
    """Stream a ledger's checkpoints in seq order after ``after_seq``."""
    sql = f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE ledger_id = ? AND seq > ? ORDER BY seq"
    for row in _stream(conn, sql, (ledger_id, after_seq)):
        yield CheckpointRecord(*row)


def _stream(conn: sqlite3.Connection, sql: str, args: tuple[str, int]) -> Iterator[tuple[Any, ...]]:
    cursor = conn.execute(sql, args)
    while rows := cursor.fetchmany(4096):
        yield from rows


def checkpoint_at_or_before(conn: sqlite3.Connection, ledger_id: str, seq: int) -> CheckpointRecord | None:
    """The newest checkpoint at or before ``seq``."""
    row = conn.execute(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE ledger_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
        (ledger_id, seq),
    ).fetchone()
    return None if row is None else CheckpointRecord(*row)


def read_ledgers(conn: sqlite3.Connection) -> list[LedgerRecord]:
    """Every ledger held, own first."""
    rows = conn.execute(f"SELECT {LEDGER_COLUMNS} FROM ledgers ORDER BY is_local DESC, ledger_id").fetchall()
    return [ledger_record(row) for row in rows]


def held_ledgers(db_path: Path) -> list[LedgerRecord]:
    """The ledgers in the database at ``db_path`` (read-only), own first."""
    conn = connect_sync(db_path, read_only=True)
    try:
        return read_ledgers(conn)
    finally:
        conn.close()
