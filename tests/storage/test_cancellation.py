"""A write cancelled as its COMMIT goes through must end with the cancellation, not an error of ours
(a background loop that catches our errors would otherwise never stop, and hold a node's shutdown)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from node.storage.database import Database
from node.storage.sqlite import repositories
from node.storage.sqlite.indexer import Indexer


async def test_a_cancellation_delivered_at_commit_stays_a_cancellation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Database(tmp_path / "ledger.db") as db:
        audit = repositories(db, Indexer(db)).audit
        conn = db._write_conn
        execute = conn.execute

        async def cancelled_during_commit(sql: str, *args: Any) -> Any:
            if sql == "COMMIT":  # SQLite's thread runs the COMMIT while the task is being cancelled
                await execute(sql, *args)
                raise asyncio.CancelledError
            if sql == "ROLLBACK":  # sent after it: nothing left to roll back
                raise sqlite3.OperationalError("cannot rollback - no transaction is active")
            return await execute(sql, *args)

        with monkeypatch.context() as patch:
            patch.setattr(conn, "execute", cancelled_during_commit)
            with pytest.raises(asyncio.CancelledError):
                await audit.record("admin", "peer.add", {"ledger_id": "node-b"})
        assert [r.action for r in await audit.log(10)] == ["peer.add"]  # committed, as sent
        await audit.record("admin", "peer.remove", {"ledger_id": "node-b"})  # and the database goes on
        assert len(await audit.log(10)) == 2


async def test_a_transaction_cancelled_while_its_begin_is_queued_leaves_no_transaction_open(tmp_path: Path) -> None:
    """The BEGIN still runs on SQLite's thread after its await was cancelled: it must be rolled back,
    or every later transaction on the connection fails ("cannot start a transaction within a transaction")."""
    async with Database(tmp_path / "ledger.db") as db:
        audit = repositories(db, Indexer(db)).audit
        for durable in (True, False):
            begun = asyncio.Event()

            async def cancelled_at_begin(durable: bool, begun: asyncio.Event) -> None:
                async with db.transaction(durable=durable) as tx:
                    begun.set()
                    await tx.execute("SELECT 1")

            task = asyncio.create_task(cancelled_at_begin(durable, begun))
            await asyncio.sleep(0)  # the task holds the lock and has queued its BEGIN
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not begun.is_set()
            await audit.record("admin", "peer.add", {"durable": durable})  # the next transaction works
        assert len(await audit.log(10)) == 2
