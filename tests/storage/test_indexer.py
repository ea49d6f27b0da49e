"""The SQLite indexer on its own: it catches up, holds commits back at its bound, survives a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from node.storage import database
from node.storage.contract import Filters
from node.storage.database import Database
from node.storage.migrations import MIGRATIONS
from node.storage.sqlite import open_sqlite
from node.storage.sqlite.rows import SELECT_COLUMNS, to_row
from tests.conftest import eventually
from tests.storage.contract import chain, commit, pinned


def watermark(path: Path, ledger_id: str) -> tuple[int, int]:
    """(indexed_seq, entries flagged indexed) as stored."""
    with sqlite3.connect(path) as conn:
        ((seq,),) = conn.execute("SELECT indexed_seq FROM ledgers WHERE ledger_id = ?", (ledger_id,))
        ((flagged,),) = conn.execute("SELECT COUNT(*) FROM entries WHERE ledger_id = ? AND indexed = 1", (ledger_id,))
    return seq, flagged


async def test_the_indexer_catches_up_in_the_background_and_moves_the_watermark(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    async with open_sqlite(path) as storage:
        await pinned(storage)
        entries = chain("node-a", 1, 4500)
        for start in range(0, 4500, 500):
            await commit(storage, entries[start : start + 500])
        await eventually(lambda: storage.entries.index_lag() == 0)
        assert watermark(path, "node-a") == (4500, 4500)
        found = await storage.entries.query(Filters(stream="even"), descending=False, after=None, limit=5000)
        assert [e.seq for e in found] == list(range(2, 4501, 2))


async def test_commits_wait_while_the_lag_is_at_its_bound(tmp_path: Path) -> None:
    async with open_sqlite(tmp_path / "ledger.db", index_max_lag=1000, indexing=False) as storage:
        await pinned(storage)
        entries = chain("node-a", 1, 1500)
        await commit(storage, entries[:1000])
        assert storage.entries.index_lag() == 1000
        held = asyncio.create_task(commit(storage, entries[1000:]))
        done, _ = await asyncio.wait({held}, timeout=0.5)
        assert not done, "a commit went through with the indexes 1000 entries behind"
        await storage.entries.index_now()  # room again: the held commit goes through
        await asyncio.wait_for(held, timeout=5)
        assert storage.entries.index_lag() == 500
        assert (await storage.ledgers.get("node-a")).head_seq == 1500  # type: ignore[union-attr]


async def test_a_restart_finds_the_unindexed_tail_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    entries = chain("node-a", 1, 300)
    async with open_sqlite(path, indexing=False) as storage:
        await pinned(storage)
        await commit(storage, entries[:100])
        await storage.entries.index_now()
        await commit(storage, entries[100:])
    assert watermark(path, "node-a") == (100, 100)
    async with open_sqlite(path, indexing=False) as storage:
        assert storage.entries.index_lag() == 200
        found = await storage.entries.query(Filters(subject_oid="subject-250"), descending=False, after=None, limit=10)
        assert found == [entries[249]]
        assert await storage.entries.by_hash(entries[299].hash) == entries[299]
    async with open_sqlite(path) as storage:
        await eventually(lambda: storage.entries.index_lag() == 0)
    assert watermark(path, "node-a") == (300, 300)


async def test_a_replaced_pin_leaves_nothing_of_the_old_key_to_index(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    async with open_sqlite(path, indexing=False) as storage:
        await pinned(storage)
        await commit(storage, chain("node-a", 1, 50))
        await storage.ledgers.replace_pin("node-a", bytes([9]) * 32, "operator", bytes(32), ("op", "pin", {}))
        assert storage.entries.index_lag() == 0
        assert await storage.entries.query(Filters(), descending=False, after=None, limit=100) == []
        fresh = chain("node-a", 1, 10, ts=5_000)
        await commit(storage, fresh)
        await storage.entries.index_now()
        assert await storage.entries.query(Filters(), descending=False, after=None, limit=100) == fresh
    assert watermark(path, "node-a") == (10, 10)


async def test_indexing_commits_without_a_disk_sync_and_leaves_the_connection_durable(tmp_path: Path) -> None:
    async with Database(tmp_path / "ledger.db", durability="full") as db:
        seen: list[int] = []
        async with db.transaction(durable=False) as tx:
            seen += [row[0] for row in await tx.fetchall("PRAGMA synchronous")]
        async with db.transaction() as tx:
            seen += [row[0] for row in await tx.fetchall("PRAGMA synchronous")]
        assert seen == [1, 2]  # NORMAL for the indexer's transaction, FULL again after it


async def test_a_store_of_the_previous_schema_keeps_every_entry_findable_after_the_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.db"
    entries = chain("node-a", 1, 40)
    with monkeypatch.context() as patch:  # a store written before the indexes left the commit
        patch.setattr(database, "MIGRATIONS", [m for m in MIGRATIONS if m[0] < 9])
        patch.setattr(database, "LATEST", 8)
        async with Database(path):
            pass
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO ledgers (ledger_id, public_key, head_seq, head_hash, sig_digest, added_at)"
                     " VALUES ('node-a', ?, 40, ?, ?, 0)", (bytes(32), entries[-1].hash, bytes(32)))  # fmt: skip
        conn.executemany(f"INSERT INTO entries ({SELECT_COLUMNS}) VALUES ({', '.join('?' * 14)})", map(to_row, entries))
    async with open_sqlite(path, indexing=False) as storage:
        assert storage.entries.index_lag() == 0  # held entries count as indexed
        found = await storage.entries.query(Filters(subject_oid="subject-7"), descending=False, after=None, limit=9)
        assert found == [entries[6]]
        assert await storage.entries.by_hash(entries[30].hash) == entries[30]
        await commit(storage, chain("node-a", 41, 5, prev=entries[-1].hash))
        assert storage.entries.index_lag() == 5
    assert watermark(path, "node-a") == (40, 40)
