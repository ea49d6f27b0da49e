"""Entries, held ledgers, checkpoints and stat counters in SQLite.

Entries of one ledger are clustered by (ledger_id, seq); a commit inserts a chain segment, its
checkpoints and counters, and moves the ledger's head guarded by the previous head, in one
transaction. The secondary indexes follow later (``indexer.py``): reads that use them also read the
unindexed tail and merge. Reads run on the reader connection (committed data only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from node.errors import StorageError
from node.storage.contract import Audit, CheckpointRecord, Filters, LedgerRecord, StoredEntry, SyncSource
from node.storage.database import Database, now_ms
from node.storage.sqlite.indexer import Indexer
from node.storage.sqlite.peers import mark
from node.storage.sqlite.rows import COLUMNS, SELECT_COLUMNS, Row, to_entry, to_row
from node.storage.tail import TailKey

# indexed = 0: the secondary indexes are partial on indexed = 1, so the commit does not touch them
_INSERT_ENTRY = f"INSERT INTO entries ({SELECT_COLUMNS}, indexed) VALUES ({', '.join('?' * len(COLUMNS))}, 0)"
_CHECKPOINT_COLUMNS = "ledger_id, seq, hash, sig_digest, timestamp, sig"
LEDGER_COLUMNS = (
    "ledger_id, public_key, is_local, head_seq, head_hash, sig_digest, first_timestamp, last_timestamp,"
    " verified_seq, quarantined, pin_source"
)


def ledger_record(row: Sequence[Any]) -> LedgerRecord:
    lid, key, local, seq, head, digest, first, last, verified, quarantined, source = row
    return LedgerRecord(lid, key, bool(local), seq, head, digest, first, last, verified, bool(quarantined), source)


class SqliteEntries:
    """The EntryRepository over SQLite."""

    def __init__(self, db: Database, indexer: Indexer) -> None:
        self._db = db
        self._indexer = indexer
        self._tail = indexer.tail

    async def commit(
        self,
        entries: Sequence[StoredEntry],
        checkpoints: Sequence[CheckpointRecord],
        counts: dict[tuple[str, str], int],
        *,
        sig_digest: bytes,
        sync: SyncSource | None = None,
        audit: Sequence[Audit] = (),
    ) -> None:
        first, last = entries[0], entries[-1]
        ledger_id = first.ledger_id
        await self._indexer.room()
        async with self._db.transaction() as tx:
            await tx.executemany(_INSERT_ENTRY, map(to_row, entries))
            moved = await tx.execute(
                "UPDATE ledgers SET head_seq = ?, head_hash = ?, sig_digest = ?,"
                " first_timestamp = COALESCE(first_timestamp, ?), last_timestamp = ?"
                " WHERE ledger_id = ? AND head_seq = ?",
                (last.seq, last.hash, sig_digest, first.timestamp, last.timestamp, ledger_id, first.seq - 1),
            )
            if moved != 1:
                raise StorageError(f"ledger {ledger_id}: head is not at seq {first.seq - 1}")
            await tx.executemany(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                [(cp.ledger_id, cp.seq, cp.hash, cp.sig_digest, cp.timestamp, cp.sig) for cp in checkpoints],
            )
            await tx.executemany(
                "INSERT INTO stats VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count",
                [(ledger_id, dim, name, n) for (dim, name), n in counts.items()],
            )
            if sync is not None:
                await mark(tx, sync.peer, ledger_id, sync.direction, last.seq, last.hash)
            if audit:
                now = now_ms()
                await tx.executemany(
                    "INSERT INTO audit (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
                    [(now, actor, action, orjson.dumps(detail).decode()) for actor, action, detail in audit],
                )
        # no await since the commit: no query runs before the tail holds the segment
        self._indexer.committed([TailKey.of(e) for e in entries])

    def index_lag(self) -> int:
        return self._tail.size

    async def index_now(self) -> None:
        await self._indexer.flush()

    async def ids_taken(self, ledger_id: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` already name a committed entry of ``ledger_id``."""
        return {row[0] for row in await self._in(ledger_id, "id", "id", ids)}

    async def after(self, ledger_id: str, seq: int, limit: int) -> list[StoredEntry]:
        """Up to ``limit`` entries of a ledger after ``seq``, in seq order."""
        rows = await self._db.fetchall(
            f"SELECT {SELECT_COLUMNS} FROM entries WHERE ledger_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (ledger_id, seq, limit),
        )
        return [to_entry(row) for row in rows]

    async def by_id(self, entry_id: str) -> StoredEntry | None:
        row = await self._db.fetchone(f"SELECT {SELECT_COLUMNS} FROM entries WHERE id = ? LIMIT 1", (entry_id,))
        return None if row is None else to_entry(row)

    async def by_hash(self, digest: bytes) -> StoredEntry | None:
        unindexed = self._tail.by_hash(digest)
        if unindexed is not None:
            return await self.by_seq(unindexed.ledger_id, unindexed.seq)
        row = await self._db.fetchone(
            f"SELECT {SELECT_COLUMNS} FROM entries WHERE indexed = 1 AND substr(hash, 1, 8) = ? AND hash = ? LIMIT 1",
            (digest[:8], digest),
        )
        return None if row is None else to_entry(row)

    async def by_seq(self, ledger_id: str, seq: int) -> StoredEntry | None:
        row = await self._db.fetchone(
            f"SELECT {SELECT_COLUMNS} FROM entries WHERE ledger_id = ? AND seq = ?", (ledger_id, seq)
        )
        return None if row is None else to_entry(row)

    async def query(
        self, filters: Filters, *, descending: bool, after: tuple[int, str, int] | None, limit: int
    ) -> list[StoredEntry]:
        """Entries matching ``filters`` in (timestamp, ledger_id, seq) order, after a cursor position: the
        unindexed tail's matches (read first) merged with the indexes'."""
        unindexed = self._tail.match(filters, descending=descending, after=after, limit=limit)
        where: list[str] = ["indexed = 1"]
        args: list[Any] = []
        for column in ("ledger_id", "stream", "type", "issuer_oid", "subject_oid", "key"):
            value = getattr(filters, column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if filters.ledgers is not None:
            where.append(f"ledger_id IN ({', '.join('?' * len(filters.ledgers))})")
            args.extend(filters.ledgers)
        if filters.since is not None:
            where.append("timestamp >= ?")
            args.append(filters.since)
        if filters.until is not None:
            where.append("timestamp < ?")
            args.append(filters.until)
        if after is not None:
            where.append(f"(timestamp, ledger_id, seq) {'<' if descending else '>'} (?, ?, ?)")
            args.extend(after)
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT {SELECT_COLUMNS} FROM entries WHERE {' AND '.join(where)}"
            f" ORDER BY timestamp {direction}, ledger_id {direction}, seq {direction} LIMIT ?"
        )
        args.append(limit)
        rows = [to_entry(row) for row in await self._db.fetchall(sql, args)]
        if not unindexed:
            return rows
        merged = _distinct([*rows, *await self._at(unindexed)])
        merged.sort(key=lambda e: (e.timestamp, e.ledger_id, e.seq), reverse=descending)
        return merged[:limit]

    async def keyed(self, key: str) -> list[StoredEntry]:
        """Every held entry carrying ``key``, of any ledger."""
        unindexed = await self._at(self._tail.keyed(key))
        rows = await self._db.fetchall(f"SELECT {SELECT_COLUMNS} FROM entries WHERE indexed = 1 AND key = ?", (key,))
        return _distinct([*unindexed, *map(to_entry, rows)])

    async def keys(self, after: str | None, limit: int) -> list[str]:
        """Distinct keys in order, after ``after`` (from the key index and the tail)."""
        unindexed = self._tail.keys(after)
        rows = await self._db.fetchall(
            "SELECT DISTINCT key FROM entries WHERE indexed = 1 AND key IS NOT NULL AND key > ? ORDER BY key LIMIT ?",
            (after or "", limit),
        )
        return sorted({*unindexed, *(row[0] for row in rows)})[:limit]

    async def _at(self, keys: Sequence[TailKey]) -> list[StoredEntry]:
        """The stored entries at the tail keys' positions (by primary key)."""
        seqs: dict[str, list[int]] = {}
        for k in keys:
            seqs.setdefault(k.ledger_id, []).append(k.seq)
        found: list[StoredEntry] = []
        for ledger_id, wanted in seqs.items():
            found.extend(map(to_entry, await self._in(ledger_id, SELECT_COLUMNS, "seq", wanted)))
        return found

    async def _in(self, ledger_id: str, columns: str, column: str, values: Sequence[Any]) -> list[Row]:
        """``columns`` of the entries of ``ledger_id`` whose ``column`` is one of ``values`` (500 a query)."""
        rows: list[Row] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            rows += await self._db.fetchall(
                f"SELECT {columns} FROM entries WHERE ledger_id = ? AND {column} IN ({', '.join('?' * len(chunk))})",
                (ledger_id, *chunk),
            )
        return rows

    async def stats(self, ledger_id: str) -> dict[str, dict[str, int]]:
        """Counts per stream and per type, kept as counters by the commits."""
        rows = await self._db.fetchall(
            "SELECT dimension, name, count FROM stats WHERE ledger_id = ? ORDER BY name", (ledger_id,)
        )
        result: dict[str, dict[str, int]] = {"stream": {}, "type": {}}
        for dimension, name, count in rows:
            result.setdefault(dimension, {})[name] = count
        return result

    async def latest_checkpoint(self, ledger_id: str) -> CheckpointRecord | None:
        row = await self._db.fetchone(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE ledger_id = ? ORDER BY seq DESC LIMIT 1",
            (ledger_id,),
        )
        return None if row is None else CheckpointRecord(*row)

    async def checkpoints_between(self, ledger_id: str, after: int, through: int) -> list[CheckpointRecord]:
        """Checkpoints with after < seq <= through, in order."""
        rows = await self._db.fetchall(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE ledger_id = ? AND seq > ? AND seq <= ? ORDER BY seq",
            (ledger_id, after, through),
        )
        return [CheckpointRecord(*row) for row in rows]


def _distinct(rows: list[StoredEntry]) -> list[StoredEntry]:
    """Each (ledger_id, seq) once: an entry indexed between the tail read and the index read is in both."""
    return list({(e.ledger_id, e.seq): e for e in rows}.values())


class SqliteLedgers:
    """The LedgerRepository over SQLite."""

    def __init__(self, db: Database, indexer: Indexer) -> None:
        self._db = db
        self._indexer = indexer

    async def all(self) -> list[LedgerRecord]:
        rows = await self._db.fetchall(f"SELECT {LEDGER_COLUMNS} FROM ledgers ORDER BY is_local DESC, ledger_id")
        return [ledger_record(row) for row in rows]

    async def get(self, ledger_id: str) -> LedgerRecord | None:
        row = await self._db.fetchone(f"SELECT {LEDGER_COLUMNS} FROM ledgers WHERE ledger_id = ?", (ledger_id,))
        return None if row is None else ledger_record(row)

    async def add(
        self, ledger_id: str, public_key: bytes, *, is_local: bool, genesis: bytes, pin_source: str = "first-sight"
    ) -> LedgerRecord:
        await self._db.execute(
            "INSERT INTO ledgers (ledger_id, public_key, is_local, sig_digest, added_at, pin_source)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ledger_id) DO NOTHING",
            (ledger_id, public_key, int(is_local), genesis, now_ms(), pin_source),
        )
        added = await self.get(ledger_id)
        assert added is not None
        return added

    async def upgrade_pin(self, ledger_id: str, public_key: bytes, source: str) -> None:
        """Record a stronger provenance for the pin ``ledger_id -> public_key`` (same key)."""
        await self._db.execute(
            "UPDATE ledgers SET pin_source = ? WHERE ledger_id = ? AND public_key = ?", (source, ledger_id, public_key)
        )

    async def replace_pin(
        self, ledger_id: str, public_key: bytes | None, source: str, genesis: bytes, audit: Audit
    ) -> int:
        async with self._db.transaction() as tx:
            ((dropped,),) = await tx.fetchall("SELECT COUNT(*) FROM entries WHERE ledger_id = ?", (ledger_id,))
            for table, column in (("entries", "ledger_id"), ("checkpoints", "ledger_id"), ("stats", "ledger_id"),
                                  ("sync_state", "ledger_id"), ("refs", "ledger_id"), ("trust", "source")):  # fmt: skip
                await tx.execute(f"DELETE FROM {table} WHERE {column} = ?", (ledger_id,))
            await tx.execute("DELETE FROM sync_state WHERE peer = ?", (ledger_id,))  # what it vouched for
            if public_key is None:
                await tx.execute("DELETE FROM ledgers WHERE ledger_id = ? AND is_local = 0", (ledger_id,))
                await tx.execute("DELETE FROM peers WHERE ledger_id = ?", (ledger_id,))
            else:
                await tx.execute(
                    "INSERT INTO ledgers (ledger_id, public_key, is_local, sig_digest, added_at, pin_source)"
                    " VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT (ledger_id) DO UPDATE SET public_key = excluded.public_key,"
                    " head_seq = 0, head_hash = NULL, sig_digest = excluded.sig_digest, first_timestamp = NULL,"
                    " last_timestamp = NULL, verified_seq = 0, indexed_seq = 0, quarantined = 0,"
                    " pin_source = excluded.pin_source"
                    " WHERE is_local = 0",
                    (ledger_id, public_key, genesis, now_ms(), source),
                )
            actor, action, detail = audit
            await tx.execute(
                "INSERT INTO audit (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
                (now_ms(), actor, action, orjson.dumps({**detail, "entries_dropped": dropped}).decode()),
            )
        self._indexer.forget(ledger_id)  # no await since the commit (see SqliteEntries.commit)
        return int(dropped)

    async def mark_local(self, ledger_id: str) -> None:
        """Make a held ledger the node's own (after restoring it from an export)."""
        await self._db.execute("UPDATE ledgers SET is_local = 1 WHERE ledger_id = ?", (ledger_id,))

    async def set_verified(self, ledger_id: str, seq: int) -> None:
        """Record that verification passed through checkpoint ``seq``."""
        await self._db.execute("UPDATE ledgers SET verified_seq = ? WHERE ledger_id = ?", (seq, ledger_id))
