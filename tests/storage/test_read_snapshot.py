"""A read sees every commit that finished before it started, however many other reads run at once on
the reader connection (a cursor held open across an await by one read kept the snapshot of the
connection open for the others: a ledger just pinned was then not found)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.storage.database import Database
from node.storage.sqlite import repositories
from node.storage.sqlite.indexer import Indexer
from protocol.entry import GENESIS_DIGEST


async def test_a_read_sees_what_was_committed_before_it_while_other_reads_run(tmp_path: Path) -> None:
    async with Database(tmp_path / "ledger.db") as db:
        ledgers = repositories(db, Indexer(db)).ledgers
        for i in range(50):  # something for the other readers to read
            await ledgers.add(f"base-{i:02d}", bytes(32), is_local=False, genesis=GENESIS_DIGEST)
        stop = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                await ledgers.all()

        readers = [asyncio.create_task(reader()) for _ in range(8)]
        try:
            missing = []
            for i in range(300):
                ledger_id = f"node-{i:03d}"
                await db.execute(
                    "INSERT INTO ledgers (ledger_id, public_key, is_local, sig_digest, added_at)"
                    " VALUES (?, ?, 0, ?, 0)",
                    (ledger_id, bytes(32), GENESIS_DIGEST),
                )
                if await ledgers.get(ledger_id) is None:
                    missing.append(ledger_id)
            assert missing == []
        finally:
            stop.set()
            await asyncio.gather(*readers)
