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
            # the cancelled task looked before the COMMIT landed: a transaction was still open
            patch.setattr(type(conn), "in_transaction", property(lambda _: True))
            with pytest.raises(asyncio.CancelledError):
                await audit.record("admin", "peer.add", {"ledger_id": "node-b"})
        assert [r.action for r in await audit.log(10)] == ["peer.add"]  # committed, as sent
        await audit.record("admin", "peer.remove", {"ledger_id": "node-b"})  # and the database goes on
        assert len(await audit.log(10)) == 2
