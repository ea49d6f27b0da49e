"""All SQL of the node's ledger database (SQLite in WAL mode through aiosqlite).

One connection writes (used only by the writer task), one reads; verification streams rows on a
connection of its own in a worker thread (:func:`iter_entries`, :func:`iter_checkpoints`).
sqlite3 errors are translated to StorageError here, where they enter our code.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import aiosqlite
import orjson

from node.errors import SchemaTooNew, StorageError, StorageFull
from node.ledger.rows import COLUMNS, SELECT_COLUMNS, Row
from node.ledger.schema import LATEST, MIGRATIONS

_INSERT_ENTRY = f"INSERT INTO entries ({SELECT_COLUMNS}) VALUES ({', '.join('?' * len(COLUMNS))})"


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A ledger this node holds (its own or a replica), with its head and pinned key."""

    ledger_id: str
    public_key: bytes
    is_local: bool
    head_seq: int
    head_hash: bytes | None
    sig_digest: bytes
    first_timestamp: int | None
    last_timestamp: int | None
    verified_seq: int
    quarantined: bool = False


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """A signed head as stored."""

    ledger_id: str
    seq: int
    hash: bytes
    sig_digest: bytes
    timestamp: int
    sig: bytes


@dataclass(frozen=True, slots=True)
class SyncMark:
    """Which peer's copy a committed segment came from (``pull``) or was acknowledged by (``push``)."""

    peer: str
    direction: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recorded change: who (a credential id, ``config`` or ``node``), what, and its details."""

    id: int
    at_ms: int
    actor: str
    action: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """An issued API token as stored: its secret only as SHA-256, scopes comma-separated."""

    id: str
    name: str
    scopes: str
    secret_hash: bytes
    created_ms: int
    last_used_ms: int | None
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class Filters:
    """Query filters; every one is served by an index (see schema.py)."""

    ledger_id: str | None = None
    ledgers: tuple[str, ...] | None = None  # ledger_id is one of these (served by the primary key)
    stream: str | None = None
    type: str | None = None
    issuer_oid: str | None = None
    subject_oid: str | None = None
    key: str | None = None
    since: int | None = None  # timestamp >= since
    until: int | None = None  # timestamp < until


def connect_sync(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A plain sqlite3 connection (for verification and offline tools)."""
    uri = f"file:{path}?mode={'ro' if read_only else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open database ({exc})") from exc
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def iter_entries(conn: sqlite3.Connection, ledger_id: str, after_seq: int) -> Iterator[Row]:
    """Stream a ledger's rows in seq order after ``after_seq`` without loading them all."""
    cursor = conn.execute(
        f"SELECT {SELECT_COLUMNS} FROM entries WHERE ledger_id = ? AND seq > ? ORDER BY seq",
        (ledger_id, after_seq),
    )
    while rows := cursor.fetchmany(4096):
        yield from rows


def iter_checkpoints(conn: sqlite3.Connection, ledger_id: str, after_seq: int) -> Iterator[CheckpointRow]:
    """Stream a ledger's checkpoints in seq order after ``after_seq``."""
    cursor = conn.execute(
        "SELECT ledger_id, seq, hash, sig_digest, timestamp, sig FROM checkpoints"
        " WHERE ledger_id = ? AND seq > ? ORDER BY seq",
        (ledger_id, after_seq),
    )
    while rows := cursor.fetchmany(4096):
        for row in rows:
            yield CheckpointRow(*row)


def checkpoint_at_or_before(conn: sqlite3.Connection, ledger_id: str, seq: int) -> CheckpointRow | None:
    """The newest checkpoint at or before ``seq``."""
    row = conn.execute(
        "SELECT ledger_id, seq, hash, sig_digest, timestamp, sig FROM checkpoints"
        " WHERE ledger_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
        (ledger_id, seq),
    ).fetchone()
    return None if row is None else CheckpointRow(*row)


def read_ledgers(conn: sqlite3.Connection) -> list[LedgerRow]:
    """Every ledger held, own first."""
    rows = conn.execute(f"SELECT {_LEDGER_COLUMNS} FROM ledgers ORDER BY is_local DESC, ledger_id").fetchall()
    return [_ledger_row(row) for row in rows]


def held_ledgers(db_path: Path) -> list[LedgerRow]:
    """The ledgers in the database at ``db_path`` (read-only), own first."""
    conn = connect_sync(db_path, read_only=True)
    try:
        return read_ledgers(conn)
    finally:
        conn.close()


_LEDGER_COLUMNS = (
    "ledger_id, public_key, is_local, head_seq, head_hash, sig_digest, first_timestamp, last_timestamp,"
    " verified_seq, quarantined"
)


def _ledger_row(row: Sequence[Any]) -> LedgerRow:
    lid, key, local, seq, head, digest, first, last, verified, quarantined = row
    return LedgerRow(lid, key, bool(local), seq, head, digest, first, last, verified, bool(quarantined))


class Store:
    """The ledger database. Open with ``async with Store(path, durability) as store``."""

    def __init__(self, path: Path, *, durability: str = "full") -> None:
        self.path = path
        self._synchronous = "FULL" if durability == "full" else "NORMAL"
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._tx_lock = asyncio.Lock()

    async def __aenter__(self) -> Store:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            await self._configure(self._writer)
            await self._migrate(self._writer)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._configure(self._reader)
        except sqlite3.Error as exc:
            await self.__aexit__(None, None, None)
            raise StorageError(f"{self.path}: {exc}") from exc
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        for pragma in (
            "PRAGMA journal_mode = WAL",
            f"PRAGMA synchronous = {self._synchronous}",
            "PRAGMA busy_timeout = 5000",
            "PRAGMA cache_size = -262144",  # 256 MiB: the indexes of a few million entries stay cached
            "PRAGMA temp_store = MEMORY",
            # group commits touch many index pages; checkpoint the WAL less often than every 1000 pages
            "PRAGMA wal_autocheckpoint = 20000",
        ):
            await conn.execute(pragma)

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        async with conn.execute("SELECT version FROM schema_migrations") as cursor:
            applied = {int(row[0]) for row in await cursor.fetchall()}
        current = max(applied, default=0)
        if current > LATEST:
            raise SchemaTooNew(
                f"{self.path}: schema version {current} is newer than this node supports ({LATEST});"
                " upgrade ledger-node"
            )
        for version, description, script in MIGRATIONS:
            if version in applied:  # not "<= current": a number assigned earlier may land after a later one
                continue
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        await conn.execute(statement)
                await conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, _now_ms()))
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    @property
    def writer(self) -> aiosqlite.Connection:
        assert self._writer is not None, "store is closed"
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        assert self._reader is not None, "store is closed"
        return self._reader

    # --- ledgers -------------------------------------------------------------------------------

    async def ledgers(self) -> list[LedgerRow]:
        """Every ledger held, own first."""
        rows = await self._fetchall(
            self.writer, f"SELECT {_LEDGER_COLUMNS} FROM ledgers ORDER BY is_local DESC, ledger_id", ()
        )
        return [_ledger_row(row) for row in rows]

    async def ledger(self, ledger_id: str) -> LedgerRow | None:
        """One held ledger, or None."""
        rows = await self._fetchall(
            self.writer, f"SELECT {_LEDGER_COLUMNS} FROM ledgers WHERE ledger_id = ?", (ledger_id,)
        )
        return _ledger_row(rows[0]) if rows else None

    async def add_ledger(
        self, ledger_id: str, public_key: bytes, *, is_local: bool, genesis: bytes, pin_source: str = "first-sight"
    ) -> LedgerRow:
        """Pin ``ledger_id`` to ``public_key`` with an empty head, unless it is pinned already; the row held."""
        await self._write(
            "INSERT INTO ledgers (ledger_id, public_key, is_local, sig_digest, added_at, pin_source)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ledger_id) DO NOTHING",
            (ledger_id, public_key, int(is_local), genesis, _now_ms(), pin_source),
        )
        added = await self.ledger(ledger_id)
        assert added is not None
        return added

    # --- pins ----------------------------------------------------------------------------------

    async def pins(self) -> list[tuple[str, bytes, str, int, bool]]:
        """Every pin: (ledger_id, public_key, pin_source, head_seq, is_local), own first."""
        return await self._fetchall(
            self.writer,
            "SELECT ledger_id, public_key, pin_source, head_seq, is_local FROM ledgers"
            " ORDER BY is_local DESC, ledger_id",
            (),
        )

    async def pin_source(self, ledger_id: str) -> str | None:
        rows = await self._fetchall(self.writer, "SELECT pin_source FROM ledgers WHERE ledger_id = ?", (ledger_id,))
        return str(rows[0][0]) if rows else None

    async def vouched_by(self, peer: str) -> list[str]:
        """Ledgers pinned on the word of ``peer`` (provenance peer) that it sent entries of."""
        rows = await self._fetchall(
            self.writer,
            "SELECT DISTINCT s.ledger_id FROM sync_state s JOIN ledgers l ON l.ledger_id = s.ledger_id"
            " WHERE s.peer = ? AND s.direction = 'pull' AND l.pin_source = 'peer'",
            (peer,),
        )
        return [str(row[0]) for row in rows]

    async def upgrade_pin(self, ledger_id: str, public_key: bytes, source: str) -> None:
        """Record a stronger provenance for the pin ``ledger_id -> public_key`` (same key)."""
        await self._write(
            "UPDATE ledgers SET pin_source = ? WHERE ledger_id = ? AND public_key = ?", (source, ledger_id, public_key)
        )

    async def replace_pin(
        self,
        ledger_id: str,
        public_key: bytes | None,
        source: str,
        genesis: bytes,
        audit: tuple[str, str, dict[str, Any]],
    ) -> int:
        """In one transaction: drop everything held of ``ledger_id`` (entries, checkpoints, stats, sync
        marks of it and by it as a peer, refs, its attestations), then pin it to ``public_key`` from
        ``source`` (or, with None, remove the pin and the peer), and write the audit record. Returns
        the entries dropped."""
        async with self._transaction() as conn:
            async with conn.execute("SELECT COUNT(*) FROM entries WHERE ledger_id = ?", (ledger_id,)) as cursor:
                (dropped,) = await cursor.fetchone() or (0,)
            for table, column in (("entries", "ledger_id"), ("checkpoints", "ledger_id"), ("stats", "ledger_id"),
                                  ("sync_state", "ledger_id"), ("refs", "ledger_id"), ("trust", "source")):  # fmt: skip
                await conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (ledger_id,))
            await conn.execute("DELETE FROM sync_state WHERE peer = ?", (ledger_id,))  # what it vouched for
            if public_key is None:
                await conn.execute("DELETE FROM ledgers WHERE ledger_id = ? AND is_local = 0", (ledger_id,))
                await conn.execute("DELETE FROM peers WHERE ledger_id = ?", (ledger_id,))
            else:
                await conn.execute(
                    "INSERT INTO ledgers (ledger_id, public_key, is_local, sig_digest, added_at, pin_source)"
                    " VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT (ledger_id) DO UPDATE SET public_key = excluded.public_key,"
                    " head_seq = 0, head_hash = NULL, sig_digest = excluded.sig_digest, first_timestamp = NULL,"
                    " last_timestamp = NULL, verified_seq = 0, quarantined = 0, pin_source = excluded.pin_source"
                    " WHERE is_local = 0",
                    (ledger_id, public_key, genesis, _now_ms(), source),
                )
            actor, action, detail = audit
            await conn.execute(
                "INSERT INTO audit (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
                (_now_ms(), actor, action, orjson.dumps({**detail, "entries_dropped": dropped}).decode()),
            )
            return int(dropped)

    async def mark_local(self, ledger_id: str) -> None:
        """Make a held ledger the node's own (after restoring it from an export)."""
        await self._write("UPDATE ledgers SET is_local = 1 WHERE ledger_id = ?", (ledger_id,))

    async def set_verified(self, ledger_id: str, seq: int) -> None:
        """Record that verification passed through checkpoint ``seq``."""
        await self._write("UPDATE ledgers SET verified_seq = ? WHERE ledger_id = ?", (seq, ledger_id))

    # --- writes --------------------------------------------------------------------------------

    async def ids_taken(self, ledger_id: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` already name an entry of ``ledger_id`` (read on the writer connection)."""
        taken: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self._fetchall(
                self.writer,
                f"SELECT id FROM entries WHERE ledger_id = ? AND id IN ({', '.join('?' * len(chunk))})",
                (ledger_id, *chunk),
            )
            taken.update(row[0] for row in rows)
        return taken

    async def commit_entries(
        self,
        rows: Sequence[Row],
        checkpoints: Sequence[CheckpointRow],
        counts: dict[tuple[str, str], int],
        *,
        sig_digest: bytes,
        sync: SyncMark | None = None,
        audit: Sequence[tuple[str, str, dict[str, Any]]] = (),
    ) -> None:
        """Insert a chain segment of one ledger with its checkpoints and move its head, atomically.

        The segment must start right after the stored head; the head update is guarded by the old
        head, so a segment built on a stale head commits nothing. ``sig_digest`` is the running
        signature digest at the segment's last entry. ``sync`` records, in the same transaction,
        that a peer's copy is held up to the segment's end; ``audit`` (actor, action, detail) records
        who appended, in the same transaction, so no entry is ever committed without its record.
        """
        first, last = rows[0], rows[-1]
        ledger_id = first[0]
        async with self._transaction() as conn:
            await conn.executemany(_INSERT_ENTRY, rows)
            moved = await conn.execute(
                "UPDATE ledgers SET head_seq = ?, head_hash = ?, sig_digest = ?,"
                " first_timestamp = COALESCE(first_timestamp, ?), last_timestamp = ?"
                " WHERE ledger_id = ? AND head_seq = ?",
                (last[1], last[12], sig_digest, first[8], last[8], ledger_id, first[1] - 1),
            )
            if moved.rowcount != 1:
                raise StorageError(f"ledger {ledger_id}: head is not at seq {first[1] - 1}")
            await conn.executemany(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                [(cp.ledger_id, cp.seq, cp.hash, cp.sig_digest, cp.timestamp, cp.sig) for cp in checkpoints],
            )
            await conn.executemany(
                "INSERT INTO stats VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count",
                [(ledger_id, dim, name, n) for (dim, name), n in counts.items()],
            )
            if sync is not None:
                await self._mark(conn, sync.peer, ledger_id, sync.direction, last[1], last[12])
            if audit:
                now = _now_ms()
                await conn.executemany(
                    "INSERT INTO audit (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
                    [(now, actor, action, orjson.dumps(detail).decode()) for actor, action, detail in audit],
                )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time on the writer connection; sqlite3 errors become StorageError."""
        conn = self.writer
        async with self._tx_lock:
            try:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        try:
                            await conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            # nothing left to roll back (a COMMIT sent before a cancellation went
                            # through): the original exception is what the caller must see, above
                            # all a CancelledError, which an error of ours here would swallow
                            pass
                    raise
            except sqlite3.Error as exc:
                if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
                    raise StorageFull(f"the disk is full; nothing written ({exc})") from exc
                raise StorageError(f"write failed, nothing written: {exc}") from exc

    async def _mark(
        self, conn: aiosqlite.Connection, peer: str, ledger_id: str, direction: str, seq: int, digest: bytes | None
    ) -> None:
        await conn.execute(
            "INSERT INTO sync_state VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
            " SET seq = excluded.seq, hash = excluded.hash, updated_at = excluded.updated_at",
            (peer, ledger_id, direction, seq, digest, _now_ms()),
        )

    # --- replication bookkeeping ---------------------------------------------------------------

    async def mark_synced(self, peer: str, ledger_id: str, direction: str, seq: int, digest: bytes | None) -> None:
        """Record how far a peer's copy of a ledger is known to reach."""
        async with self._transaction() as conn:
            await self._mark(conn, peer, ledger_id, direction, seq, digest)

    async def sync_marks(self) -> list[tuple[str, str, str, int, bytes | None, int]]:
        """Every (peer, ledger_id, direction, seq, hash, updated_at)."""
        return await self._fetchall(self.writer, "SELECT * FROM sync_state ORDER BY peer, ledger_id, direction", ())

    async def save_peer(self, ledger_id: str, url: str, mode: str, source: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO peers VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
                " SET url = excluded.url, mode = excluded.mode, source = excluded.source",
                (ledger_id, url, mode, source, _now_ms()),
            )

    async def delete_peer(self, ledger_id: str) -> bool:
        async with self._transaction() as conn:
            cursor = await conn.execute("DELETE FROM peers WHERE ledger_id = ?", (ledger_id,))
            return bool(cursor.rowcount)

    async def peers(self) -> list[tuple[str, str, str, str, int]]:
        """Every saved peer: (ledger_id, url, mode, source, added_at)."""
        return await self._fetchall(self.writer, "SELECT * FROM peers ORDER BY ledger_id", ())

    async def record_conflict(
        self, kind: str, ledger_id: str | None, seq: int | None, key: str | None, evidence: str, *, quarantine: bool
    ) -> int:
        """Store conflict evidence (and quarantine the ledger) in one transaction; returns its id."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO conflicts (kind, ledger_id, seq, key, evidence, detected_at) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, ledger_id, seq, key, evidence, _now_ms()),
            )
            if quarantine:
                await conn.execute("UPDATE ledgers SET quarantined = 1 WHERE ledger_id = ?", (ledger_id,))
            return int(cursor.lastrowid or 0)

    async def conflicts(self, status: str | None = None) -> list[Row]:
        """Conflicts, newest first: (id, kind, ledger_id, seq, key, evidence, status, detected_at, resolved_at,
        resolution). A key conflict's evidence is the JSON list of its heads' hashes, sorted."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        return await self._fetchall(
            self.writer,
            "SELECT id, kind, ledger_id, seq, key, CASE WHEN kind = 'key' AND evidence = '' THEN"
            " (SELECT json_group_array(h) FROM (SELECT lower(hex(hash)) AS h FROM conflict_heads"
            " WHERE conflict_id = conflicts.id ORDER BY h)) ELSE evidence END,"
            f" status, detected_at, resolved_at, resolution FROM conflicts {where} ORDER BY id DESC",
            args,
        )

    async def key_conflict(self, key: str) -> tuple[int, str, str | None] | None:
        """The newest conflict recorded for ``key``: (id, status, resolution)."""
        row = await self._fetchone(
            "SELECT id, status, resolution FROM conflicts WHERE kind = 'key' AND key = ? ORDER BY id DESC LIMIT 1",
            (key,),
        )
        return None if row is None else (int(row[0]), str(row[1]), row[2])

    async def conflict_heads(self, conflict_id: int) -> set[bytes]:
        rows = await self._fetchall(
            self.writer, "SELECT hash FROM conflict_heads WHERE conflict_id = ?", (conflict_id,)
        )
        return {bytes(row[0]) for row in rows}

    async def record_key_conflict(self, key: str, heads: Sequence[bytes], resolution: str | None) -> int:
        """A new conflict of ``key`` with its heads (resolved at once when ``resolution`` is given)."""
        async with self._transaction() as conn:
            now = _now_ms()
            cursor = await conn.execute(
                "INSERT INTO conflicts (kind, key, evidence, status, detected_at, resolved_at, resolution)"
                " VALUES ('key', ?, '', ?, ?, ?, ?)",
                (key, "open" if resolution is None else "resolved", now, None if resolution is None else now,
                 resolution),
            )  # fmt: skip
            conflict_id = int(cursor.lastrowid or 0)
            await conn.executemany(
                "INSERT OR IGNORE INTO conflict_heads VALUES (?, ?)", [(conflict_id, h) for h in heads]
            )
            return conflict_id

    async def add_conflict_heads(self, conflict_id: int, heads: Sequence[bytes]) -> None:
        """Heads that joined a recorded conflict; those held already are not stored again."""
        async with self._transaction() as conn:
            await conn.executemany(
                "INSERT OR IGNORE INTO conflict_heads VALUES (?, ?)", [(conflict_id, h) for h in heads]
            )

    async def resolve_conflict(self, conflict_id: int, resolution: str, *, status: str = "resolved") -> bool:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE conflicts SET status = ?, resolved_at = ?, resolution = ? WHERE id = ? AND status = 'open'",
                (status, _now_ms(), resolution, conflict_id),
            )
            return bool(cursor.rowcount)

    async def keyed(self, key: str) -> list[Row]:
        """Every held entry carrying ``key``, of any ledger."""
        return await self._fetchall(self.reader, f"SELECT {SELECT_COLUMNS} FROM entries WHERE key = ?", (key,))

    async def keys(self, after: str | None, limit: int) -> list[str]:
        """Distinct keys in order, after ``after`` (read from the key index)."""
        rows = await self._fetchall(
            self.reader,
            "SELECT DISTINCT key FROM entries WHERE key IS NOT NULL AND key > ? ORDER BY key LIMIT ?",
            (after or "", limit),
        )
        return [row[0] for row in rows]

    async def save_attestations(self, rows: Sequence[tuple[str, str, str, int]]) -> None:
        """Keep attestations (source, target, attestation, issued_at) in one transaction; for each
        (source, target) the one with the latest issued_at stays."""
        async with self._transaction() as conn:
            await conn.executemany(
                "INSERT INTO trust VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET attestation = excluded.attestation,"
                " issued_at = excluded.issued_at WHERE excluded.issued_at > trust.issued_at",
                rows,
            )

    async def attestations(self) -> list[str]:
        return [row[0] for row in await self._fetchall(self.writer, "SELECT attestation FROM trust", ())]

    async def add_refs(self, refs: Sequence[tuple[Any, ...]]) -> None:
        """Record references (ledger_id, seq, position, target, target_seq, target_hash, target_id, type,
        status, detail, attempts, checked_at); existing ones are kept."""
        async with self._transaction() as conn:
            await conn.executemany(
                "INSERT INTO refs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", refs
            )

    async def set_ref_status(self, ledger_id: str, seq: int, position: int, status: str, detail: str | None) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE refs SET status = ?, detail = ?, attempts = attempts + 1, checked_at = ?"
                " WHERE ledger_id = ? AND seq = ? AND position = ?",
                (status, detail, _now_ms(), ledger_id, seq, position),
            )

    async def refs_of(self, ledger_id: str, seq: int) -> list[Row]:
        return await self._fetchall(
            self.reader, "SELECT * FROM refs WHERE ledger_id = ? AND seq = ? ORDER BY position", (ledger_id, seq)
        )

    async def pending_refs(self, checked_before: int, limit: int) -> list[Row]:
        return await self._fetchall(
            self.reader,
            "SELECT * FROM refs WHERE status = 'pending' AND checked_at < ? ORDER BY checked_at LIMIT ?",
            (checked_before, limit),
        )

    async def checkpoints_between(self, ledger_id: str, after: int, through: int) -> list[CheckpointRow]:
        """Checkpoints with after < seq <= through, in order."""
        rows = await self._fetchall(
            self.reader,
            "SELECT ledger_id, seq, hash, sig_digest, timestamp, sig FROM checkpoints"
            " WHERE ledger_id = ? AND seq > ? AND seq <= ? ORDER BY seq",
            (ledger_id, after, through),
        )
        return [CheckpointRow(*row) for row in rows]

    async def entries_after(self, ledger_id: str, after: int, limit: int) -> list[Row]:
        """Up to ``limit`` entries of a ledger after ``after``, in seq order (paged by the origin's seq)."""
        return await self._fetchall(
            self.reader,
            f"SELECT {SELECT_COLUMNS} FROM entries WHERE ledger_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (ledger_id, after, limit),
        )

    # --- reads ---------------------------------------------------------------------------------

    async def get_by_id(self, entry_id: str) -> Row | None:
        return await self._fetchone(f"SELECT {SELECT_COLUMNS} FROM entries WHERE id = ? LIMIT 1", (entry_id,))

    async def get_by_hash(self, digest: bytes) -> Row | None:
        return await self._fetchone(
            f"SELECT {SELECT_COLUMNS} FROM entries WHERE substr(hash, 1, 8) = ? AND hash = ? LIMIT 1",
            (digest[:8], digest),
        )

    async def get_by_seq(self, ledger_id: str, seq: int) -> Row | None:
        return await self._fetchone(
            f"SELECT {SELECT_COLUMNS} FROM entries WHERE ledger_id = ? AND seq = ?", (ledger_id, seq)
        )

    async def query(
        self, filters: Filters, *, descending: bool, after: tuple[int, str, int] | None, limit: int
    ) -> list[Row]:
        """Entries matching ``filters`` in (timestamp, ledger_id, seq) order, after a cursor position."""
        where: list[str] = []
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
            f"SELECT {SELECT_COLUMNS} FROM entries"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}"
            f" ORDER BY timestamp {direction}, ledger_id {direction}, seq {direction} LIMIT ?"
        )
        args.append(limit)
        return await self._fetchall(self.reader, sql, args)

    async def stats(self, ledger_id: str) -> dict[str, dict[str, int]]:
        """Counts per stream and per type, kept as counters by the writer."""
        rows = await self._fetchall(
            self.reader, "SELECT dimension, name, count FROM stats WHERE ledger_id = ? ORDER BY name", (ledger_id,)
        )
        result: dict[str, dict[str, int]] = {"stream": {}, "type": {}}
        for dimension, name, count in rows:
            result.setdefault(dimension, {})[name] = count
        return result

    async def latest_checkpoint(self, ledger_id: str) -> CheckpointRow | None:
        row = await self._fetchone(
            "SELECT ledger_id, seq, hash, sig_digest, timestamp, sig FROM checkpoints"
            " WHERE ledger_id = ? ORDER BY seq DESC LIMIT 1",
            (ledger_id,),
        )
        return None if row is None else CheckpointRow(*row)

    # --- audit ---------------------------------------------------------------------------------

    async def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Record that ``actor`` (a credential id, ``config`` or ``node``) did ``action``."""
        await self._write(
            "INSERT INTO audit (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
            (_now_ms(), actor, action, orjson.dumps(detail).decode()),
        )

    async def audit_log(self, limit: int, before_id: int | None = None) -> list[AuditRecord]:
        """The newest audit records first, ``limit`` at most, older than ``before_id`` when given."""
        rows = await self._fetchall(
            self.reader,
            "SELECT id, at_ms, actor, action, detail FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**63 - 1, limit),
        )
        return [AuditRecord(i, at, actor, action, orjson.loads(detail)) for i, at, actor, action, detail in rows]

    # --- credentials ---------------------------------------------------------------------------

    async def add_credential(self, row: CredentialRow) -> None:
        """Store a newly issued credential."""
        await self._write(
            "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.id, row.name, row.scopes, row.secret_hash, row.created_ms, row.last_used_ms, row.revoked_ms),
        )

    async def credentials(self) -> list[CredentialRow]:
        """Every credential ever issued here (revoked ones too), oldest first."""
        rows = await self._fetchall(self.writer, "SELECT * FROM credentials ORDER BY created_ms, id", ())
        return [CredentialRow(*row) for row in rows]

    async def revoke_credential(self, credential_id: str, at_ms: int) -> bool:
        """Mark a credential revoked (kept for the audit trail); False if there is no such live one."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE credentials SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", (at_ms, credential_id)
            )
            return cursor.rowcount == 1

    async def credential_used(self, credential_id: str, at_ms: int) -> None:
        await self._write("UPDATE credentials SET last_used_ms = ? WHERE id = ?", (at_ms, credential_id))

    # --- plumbing ------------------------------------------------------------------------------

    async def _write(self, sql: str, args: Sequence[Any]) -> None:
        async with self._transaction() as conn:
            await conn.execute(sql, args)

    async def _fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        rows = await self._fetchall(self.reader, sql, args)
        return rows[0] if rows else None

    async def _fetchall(self, conn: aiosqlite.Connection, sql: str, args: Sequence[Any]) -> list[Row]:
        try:
            async with conn.execute(sql, args) as cursor:
                return cast(list[Row], await cursor.fetchall())
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
