"""The storage contract on SQLite: every contract case against a real database file under tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from node.storage.contract import Repositories
from node.storage.sqlite import open_sqlite
from tests.storage.contract import (
    AuditContract,
    ConflictContract,
    CredentialContract,
    EntryContract,
    LedgerContract,
    PeerContract,
    RefContract,
    TrustContract,
)


class SQLite:
    async def open_storage(self, path: Path) -> AsyncIterator[Repositories]:
        # the indexer held: every read below runs against the unindexed tail unless a case indexes
        # (entries.index_now); test_indexer.py covers the indexer running on its own
        async with open_sqlite(path / "ledger.db", indexing=False) as repos:
            yield repos


class TestSQLiteEntries(SQLite, EntryContract):
    pass


class TestSQLiteLedgers(SQLite, LedgerContract):
    pass


class TestSQLitePeers(SQLite, PeerContract):
    pass


class TestSQLiteConflicts(SQLite, ConflictContract):
    pass


class TestSQLiteTrust(SQLite, TrustContract):
    pass


class TestSQLiteRefs(SQLite, RefContract):
    pass


class TestSQLiteAudit(SQLite, AuditContract):
    pass


class TestSQLiteCredentials(SQLite, CredentialContract):
    pass
