"""Read isolation: no read sees another task's uncommitted transaction (here, a head that is then
rolled back), whichever repository it goes through."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.errors import StorageError
from node.storage.contract import CheckpointRecord, StoredEntry
from node.storage.database import Database
from node.storage.sqlite import repositories
from node.storage.sqlite.indexer import Indexer
from protocol.entry import GENESIS_DIGEST


class GroupFailed(Exception):
    pass


async def test_a_read_racing_a_failing_commit_never_sees_its_head(tmp_path: Path) -> None:
    async with Database(tmp_path / "ledger.db") as db:
        repos = repositories(db, Indexer(db))
        await repos.ledgers.add("node-x", bytes(32), is_local=False, genesis=GENESIS_DIGEST, pin_source="operator")
        head_written, read_done = asyncio.Event(), asyncio.Event()

        async def failing_group() -> None:
            async with db.transaction() as tx:
                await tx.execute("UPDATE ledgers SET head_seq = 5, head_hash = ? WHERE ledger_id = 'node-x'",
                                 (b"\x01" * 32,))  # fmt: skip
                head_written.set()
                await read_done.wait()
                raise GroupFailed("the group fails after writing its head")

        async def reader() -> list[int]:
            await head_written.wait()
            try:
                held = await repos.ledgers.get("node-x")
                listed = await repos.ledgers.all()
                return [held.head_seq if held else -1, *(r.head_seq for r in listed)]
            finally:
                read_done.set()

        failed, seen = await asyncio.gather(failing_group(), reader(), return_exceptions=True)
        assert isinstance(failed, GroupFailed)
        assert seen == [0, 0]  # not the uncommitted head 5
        assert (await repos.ledgers.get("node-x")).head_seq == 0  # type: ignore[union-attr]


async def test_a_commit_failing_after_its_head_moved_leaves_every_read_at_the_old_head(tmp_path: Path) -> None:
    """The real commit path: the checkpoints insert fails after the head was moved in the transaction."""
    async with Database(tmp_path / "ledger.db") as db:
        repos = repositories(db, Indexer(db))
        await repos.ledgers.add("node-x", bytes(32), is_local=False, genesis=GENESIS_DIGEST, pin_source="operator")
        rows = [StoredEntry("node-x", seq, f"id-{seq}", "s", "t", None, None, None, seq, "{}", None, None,
                            seq.to_bytes(32, "big"), bytes(64)) for seq in range(1, 3001)]  # fmt: skip
        twice = [CheckpointRecord("node-x", 3000, rows[-1].hash, bytes(32), 3000, bytes(64))] * 2  # the same key twice
        seen: list[int] = []
        commit = asyncio.create_task(repos.entries.commit(rows, twice, {}, sig_digest=bytes(32)))
        while not commit.done():
            held = await repos.ledgers.get("node-x")
            seen.append(held.head_seq if held else -1)
        with pytest.raises(StorageError):
            await commit
        assert set(seen) == {0}
        assert (await repos.ledgers.get("node-x")).head_seq == 0  # type: ignore[union-attr]
        assert await repos.entries.after("node-x", 0, 10) == []
