"""The secondary indexes, maintained off the acknowledging transaction.

A commit inserts entries with ``indexed = 0``; the secondary indexes are partial (``WHERE indexed =
1``), so the commit pays for the primary key and the id alone. The indexer then sets ``indexed = 1``
on a ledger's next range in one statement and moves the ledger's watermark (``indexed_seq``) in the
same transaction: SQLite adds the range to the seven indexes in one batch, which costs less per
entry than the same inserts spread over small commits. Until then the entries are in the in-memory
:class:`~node.storage.tail.Tail`, which queries read beside the indexes.

Indexing waits for a batch to gather (``min_batch`` entries or ``delay_s``), so a quiet node does not
add one small transaction per append, and stops each transaction at ``max_batch`` entries, so a
commit waiting for the lock waits a few milliseconds. When the tail reaches ``max_lag`` entries,
commits wait for room (backpressure) instead of the lag growing without limit.
"""

from __future__ import annotations

import asyncio
import logging

from node.storage.database import Database
from node.storage.sqlite.rows import KEY_COLUMNS
from node.storage.tail import Pending, Tail, TailKey

log = logging.getLogger(__name__)


class Indexer:
    """Moves committed entries from the tail into the secondary indexes. Run with ``async with``."""

    def __init__(
        self,
        db: Database,
        *,
        max_lag: int = 50_000,
        min_batch: int = 1000,
        max_batch: int = 2000,
        delay_s: float = 0.5,
        running: bool = True,
    ) -> None:
        self.tail = Tail()
        self._db = db
        self._max_lag = max_lag
        self._min_batch = min_batch
        self._max_batch = max_batch
        self._delay_s = delay_s
        self._running = running
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._turn = asyncio.Lock()

    async def __aenter__(self) -> Indexer:
        await self._load()
        if self._running:
            self._task = asyncio.create_task(self._run(), name="storage-indexer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _load(self) -> None:
        """Rebuild the tail from the store: every ledger's entries after its watermark."""
        rows = await self._db.fetchall("SELECT ledger_id, indexed_seq FROM ledgers WHERE head_seq > indexed_seq")
        for ledger_id, watermark in rows:
            self.tail.add([
                TailKey(*row)
                for row in await self._db.fetchall(
                    f"SELECT {KEY_COLUMNS} FROM entries WHERE ledger_id = ? AND seq > ? ORDER BY seq",
                    (ledger_id, watermark),
                )
            ])  # fmt: skip
        self._signal()

    def committed(self, keys: list[TailKey]) -> None:
        """Keys of a segment just committed (called right after the commit, before any await)."""
        self.tail.add(keys)
        self._signal()

    def forget(self, ledger_id: str) -> None:
        """A ledger's entries were dropped (its pin replaced): nothing of it is left to index."""
        self.tail.drop(ledger_id)
        self._signal()

    async def room(self) -> None:
        """Wait until the tail is below ``max_lag`` (a commit's backpressure)."""
        await self._room.wait()

    async def flush(self) -> None:
        """Index everything committed so far (tools, benches and tests)."""
        while self.tail.size:
            await self._next()

    def _signal(self) -> None:
        if self.tail.size:
            self._wake.set()
        if self.tail.size < self._max_lag:
            self._room.set()
        else:
            self._room.clear()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self.tail.size < self._min_batch and self._room.is_set():
                await asyncio.sleep(self._delay_s)  # let a batch gather: one transaction, not one per append
            try:
                while self.tail.size:
                    await self._next()
            except Exception:  # the disk full, say: queries stay complete from the tail; try again later
                log.exception("indexing failed; retrying in 1 s lag=%d", self.tail.size)
                await asyncio.sleep(1.0)
                continue
            self._wake.clear()

    async def _next(self) -> None:
        """Index the next batch of the ledger with the most entries waiting."""
        async with self._turn:  # the background loop and a flush take turns
            if self.tail.size:
                await self._index(self.tail.pending()[0])

    async def _index(self, pending: Pending) -> None:
        through = min(pending.through, pending.after + self._max_batch)
        async with self._db.transaction(durable=False) as tx:  # lost in a crash, it is done again
            await tx.execute(
                "UPDATE entries SET indexed = 1 WHERE ledger_id = ? AND seq > ? AND seq <= ?",
                (pending.ledger_id, pending.after, through),
            )
            await tx.execute(  # guarded: a pin replaced meanwhile restarted the ledger at seq 0
                "UPDATE ledgers SET indexed_seq = ? WHERE ledger_id = ? AND indexed_seq = ? AND head_seq >= ?",
                (through, pending.ledger_id, pending.after, through),
            )
        # no await between the commit and this: a query sees these entries in the tail or the indexes
        self.tail.drop(pending.ledger_id, through)
        self._signal()
