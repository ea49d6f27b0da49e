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
from node.storage.sqlite.indexer import Indexer
from node.storage.sqlite.peers import SqliteCandidates, SqlitePeers
from node.storage.sqlite.refs import SqliteRefs
from node.storage.sqlite.trust import SqliteTrust


def repositories(db: Database, indexer: Indexer) -> Repositories:
    """The SQLite repositories over an open database and its running indexer."""
    return Repositories(
        entries=SqliteEntries(db, indexer),
        ledgers=SqliteLedgers(db, indexer),
        peers=SqlitePeers(db),
        candidates=SqliteCandidates(db),
        conflicts=SqliteConflicts(db),
        trust=SqliteTrust(db),
        refs=SqliteRefs(db),
        audit=SqliteAudit(db),
        credentials=SqliteCredentials(db),
    )


@asynccontextmanager
async def open_sqlite(
    path: Path, *, durability: str = "full", index_max_lag: int = 50_000, indexing: bool = True
) -> AsyncIterator[Repositories]:
    """Open (and migrate) the database at ``path``; its repositories until the block ends.

    The secondary indexes follow the commits in the background (``indexer.py``); commits wait when
    ``index_max_lag`` entries are not indexed yet. ``indexing=False`` holds the indexer (benches and
    tests of the unindexed tail; ``entries.index_now()`` still indexes)."""
    async with (
        Database(path, durability=durability) as db,
        Indexer(db, max_lag=index_max_lag, running=indexing) as indexer,
    ):
        yield repositories(db, indexer)
