"""All SQL of the registry (SQLite in WAL mode through aiosqlite)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from registry.errors import StorageError

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS nodes (
        ledger_id      TEXT PRIMARY KEY,
        public_key     TEXT NOT NULL,
        record         TEXT NOT NULL,
        issued_at      INTEGER NOT NULL,
        region         TEXT NOT NULL,
        status         TEXT NOT NULL,
        last_heartbeat INTEGER NOT NULL,
        registered_at  INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS nodes_status ON nodes (status, ledger_id)",
    # ledger id -> key, made on an enrolled first registration; outlives the record (deregistration)
    """CREATE TABLE IF NOT EXISTS bindings (
        ledger_id  TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        bound_at   INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO bindings SELECT ledger_id, public_key, registered_at FROM nodes",
    # enrolment tokens issued by the operator, as SHA-256 hex
    """CREATE TABLE IF NOT EXISTS enrolments (
        ledger_id  TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        issued_at  INTEGER NOT NULL
    )""",
]


@dataclass(frozen=True, slots=True)
class StoredNode:
    """A registered node as stored: its signed record (JSON text), the key it is bound under, liveness."""

    ledger_id: str
    public_key: str
    record: str
    issued_at: int
    region: str
    status: str
    last_heartbeat: int
    registered_at: int


@dataclass(frozen=True, slots=True)
class Binding:
    """A ledger id bound to the key that first registered it (until the operator releases it)."""

    ledger_id: str
    public_key: str
    bound_at: int


@dataclass(frozen=True, slots=True)
class Enrolment:
    """An enrolment token issued for a ledger id, kept as its SHA-256 hex."""

    ledger_id: str
    token_hash: str
    issued_at: int


class RegistryStore:
    """``async with RegistryStore(path) as store``; one connection, statements serialised by aiosqlite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> RegistryStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            for pragma in ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 5000"):
                await self._conn.execute(pragma)
            for statement in SCHEMA:
                await self._conn.execute(statement)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        async with self._lock:  # after a write still under way
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def upsert(self, ledger_id: str, public_key: str, record: str, issued_at: int, region: str, now: int) -> None:
        await self._write(
            "INSERT INTO nodes VALUES (?, ?, ?, ?, ?, 'online', ?, ?) ON CONFLICT (ledger_id) DO UPDATE SET"
            " public_key = excluded.public_key, record = excluded.record, issued_at = excluded.issued_at,"
            " region = excluded.region, status = 'online', last_heartbeat = excluded.last_heartbeat",
            (ledger_id, public_key, record, issued_at, region, now, now),
        )

    async def all(self) -> list[StoredNode]:
        rows = await self._fetch(
            "SELECT ledger_id, public_key, record, issued_at, region, status, last_heartbeat, registered_at"
            " FROM nodes ORDER BY ledger_id",
            (),
        )
        return [StoredNode(*row) for row in rows]

    async def save_liveness(self, changes: Sequence[tuple[str, int, str]]) -> None:
        """Write (ledger_id, last_heartbeat, status) for many nodes in one transaction. Shielded: a
        caller cancelled mid-way (the sweeper at shutdown) never leaves the transaction open."""
        await asyncio.shield(self._save_liveness(changes))

    async def _save_liveness(self, changes: Sequence[tuple[str, int, str]]) -> None:
        assert self._conn is not None, "store is closed"
        async with self._lock:
            try:
                await self._conn.execute("BEGIN")
                await self._conn.executemany(
                    "UPDATE nodes SET last_heartbeat = ?, status = ? WHERE ledger_id = ?",
                    [(beat, status, lid) for lid, beat, status in changes],
                )
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise StorageError(str(exc)) from exc

    async def delete(self, ledger_id: str) -> None:
        await self._write("DELETE FROM nodes WHERE ledger_id = ?", (ledger_id,))

    async def bind(self, ledger_id: str, public_key: str, now: int) -> None:
        await self._write(
            "INSERT INTO bindings VALUES (?, ?, ?)"
            " ON CONFLICT (ledger_id) DO UPDATE SET public_key = excluded.public_key, bound_at = excluded.bound_at",
            (ledger_id, public_key, now),
        )

    async def bindings(self) -> list[Binding]:
        rows = await self._fetch("SELECT ledger_id, public_key, bound_at FROM bindings ORDER BY ledger_id", ())
        return [Binding(*row) for row in rows]

    async def save_enrolment(self, ledger_id: str, token_hash: str, now: int) -> None:
        await self._write(
            "INSERT INTO enrolments VALUES (?, ?, ?) ON CONFLICT (ledger_id) DO UPDATE"
            " SET token_hash = excluded.token_hash, issued_at = excluded.issued_at",
            (ledger_id, token_hash, now),
        )

    async def enrolments(self) -> list[Enrolment]:
        rows = await self._fetch("SELECT ledger_id, token_hash, issued_at FROM enrolments ORDER BY ledger_id", ())
        return [Enrolment(*row) for row in rows]

    async def release(self, ledger_id: str) -> None:
        """Forget the binding, the record and the enrolment of ``ledger_id``, in one transaction."""
        assert self._conn is not None, "store is closed"
        async with self._lock:
            try:
                await self._conn.execute("BEGIN")
                for table in ("bindings", "nodes", "enrolments"):
                    await self._conn.execute(f"DELETE FROM {table} WHERE ledger_id = ?", (ledger_id,))
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise StorageError(str(exc)) from exc

    async def _write(self, sql: str, args: Sequence[Any]) -> int:
        assert self._conn is not None, "store is closed"
        async with self._lock:
            try:
                cursor = await self._conn.execute(sql, args)
                return int(cursor.rowcount)
            except sqlite3.Error as exc:
                raise StorageError(str(exc)) from exc

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        assert self._conn is not None, "store is closed"
        try:
            async with self._conn.execute(sql, args) as cursor:
                return [tuple(row) for row in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc
