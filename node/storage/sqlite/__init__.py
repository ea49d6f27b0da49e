"""The SQLite backend of the storage contract: one repository module per aggregate over one Database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from node.storage.contract import Repositories
from node.storage.database import Database
from node.storage.sqlite.access import SqliteAudit, SqliteCredentials
from node.storage.sqlite.conflicts import SqliteConflicts
from node.storage.sqlite.entries import SqliteEntries, SqliteLedgers
from node.storage.sqlite.peers import SqlitePeers
from node.storage.sqlite.refs import SqliteRefs
from node.storage.sqlite.trust import SqliteTrust


def repositories(db: Database) -> Repositories:
    """The SQLite repositories over an open database."""
    return Repositories(
        entries=SqliteEntries(db),
        ledgers=SqliteLedgers(db),
        peers=SqlitePeers(db),
        conflicts=SqliteConflicts(db),
        trust=SqliteTrust(db),
        refs=SqliteRefs(db),
        audit=SqliteAudit(db),
        credentials=SqliteCredentials(db),
    )


@asynccontextmanager
async def open_sqlite(path: Path, *, durability: str = "full") -> AsyncIterator[Repositories]:
    """Open (and migrate) the database at ``path``; its repositories until the block ends."""
    async with Database(path, durability=durability) as db:
        yield repositories(db)
