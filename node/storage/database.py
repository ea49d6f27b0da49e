"""The node's SQLite database: its connections, the transaction lock, error translation, migrations.

One ``Database`` owns a writer connection (and a second one for transactions that need not wait
for the disk) and a reader connection (WAL mode, through aiosqlite). Every write runs in
:meth:`Database.transaction`, one at a time under the transaction lock; every read runs on the
reader connection (:meth:`Database.fetchall`), which sees only committed transactions. So no read
ever sees another task's uncommitted (and perhaps rolled back) writes; a read inside a transaction
(``tx.fetchall``) sees that transaction's own writes.

sqlite3 errors are translated to StorageError (StorageFull when the disk is full) here, where they
enter our code. Verification and offline tools stream rows on a plain connection of their own
(:func:`connect_sync`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import aiosqlite

from node.errors import SchemaTooNew, StorageError, StorageFull
from node.storage.migrations import LATEST, MIGRATIONS

Row = tuple[Any, ...]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def connect_sync(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A plain sqlite3 connection (for verification and offline tools)."""
    uri = f"file:{path}?mode={'ro' if read_only else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open database ({exc})") from exc
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Transaction:
    """The writer connection inside one open transaction (only :meth:`Database.transaction` makes one)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; the rows it changed."""
        cursor = await self._conn.execute(sql, args)
        return cursor.rowcount

    async def insert(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one INSERT; the rowid it assigned."""
        cursor = await self._conn.execute(sql, args)
        return int(cursor.lastrowid or 0)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Read inside the transaction: sees its own writes."""
        async with self._conn.execute(sql, args) as cursor:
            return cast(list[Row], await cursor.fetchall())


class Database:
    """The ledger database. Open with ``async with Database(path, durability=...) as db``."""

    def __init__(self, path: Path, *, durability: str = "full") -> None:
        self.path = path
        self._synchronous = "FULL" if durability == "full" else "NORMAL"
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._relaxed: aiosqlite.Connection | None = None  # transactions that need not wait for the disk
        self._tx_lock = asyncio.Lock()

    async def __aenter__(self) -> Database:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            await self._configure(self._writer)
            await self._migrate(self._writer)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._configure(self._reader)
            self._relaxed = await aiosqlite.connect(self.path, isolation_level=None)
            await self._configure(self._relaxed, synchronous="NORMAL")
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
        for conn in (self._reader, self._relaxed, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._relaxed = self._writer = None

    async def _configure(self, conn: aiosqlite.Connection, *, synchronous: str | None = None) -> None:
        for pragma in (
            "PRAGMA journal_mode = WAL",
            f"PRAGMA synchronous = {synchronous or self._synchronous}",
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
                await conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, now_ms()))
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    @property
    def _write_conn(self) -> aiosqlite.Connection:
        assert self._writer is not None, "database is closed"
        return self._writer

    @property
    def _relaxed_conn(self) -> aiosqlite.Connection:
        assert self._relaxed is not None, "database is closed"
        return self._relaxed

    @property
    def _read_conn(self) -> aiosqlite.Connection:
        assert self._reader is not None, "database is closed"
        return self._reader

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Transaction]:
        """One write transaction at a time on the writer connection, committed when the block ends
        and rolled back when it raises; sqlite3 errors become StorageError (StorageFull).

        ``durable=False`` commits on a connection of its own with ``synchronous=NORMAL``, without
        waiting for the disk (for work that is redone after a crash, such as indexing): in WAL mode
        the next durable commit's sync covers it, and a crash before that loses the transaction
        whole, never part of it or anything before it. It takes the same lock."""
        conn = self._write_conn if durable else self._relaxed_conn
        async with self._tx_lock:
            try:
                try:
                    await conn.execute("BEGIN IMMEDIATE")
                    yield Transaction(conn)
                    await conn.execute("COMMIT")
                except BaseException:
                    # always sent, after whatever this task queued on SQLite's thread: a BEGIN or
                    # COMMIT whose await was cancelled still runs there, and no transaction may
                    # stay open on the connection for the next holder of the lock
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

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One statement in a transaction of its own; the rows it changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, args)

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Read committed data on the reader connection.

        The statement runs and is read to its end in one call on SQLite's thread: a cursor left open
        across an await would keep the connection's read transaction, and so its snapshot, open for
        every other read interleaved with it, which would then miss what was committed meanwhile."""
        try:
            return cast(list[Row], list(await self._read_conn.execute_fetchall(sql, args)))
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None
