"""The Ledger service: the node's own ledger as the rest of the node sees it.

Opens the store (migrations), pins the node's key, verifies the store, runs the writer, validates
drafts against the protocol limits and the node's configuration, and answers reads from the store
with the head kept in memory (moved only by the writer's commits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from node.errors import (
    AppendRejected,
    BatchTooLarge,
    DuplicateEntry,
    EntryNotFound,
    InvalidRequest,
    KeyFileError,
    NodeError,
    NotReady,
)
from node.ledger.clock import HybridClock
from node.ledger.cursor import Position, decode_cursor, encode_cursor
from node.ledger.hooks import AfterAppend, Hooks
from node.ledger.replicas import Replicas
from node.ledger.rows import HASH, Row
from node.ledger.store import CheckpointRow, Filters, LedgerRow, Store
from node.ledger.verify import Mode, Progress, VerifyReport, verify_store
from node.ledger.writer import Draft, Tip, Writer
from node.settings import NodeSettings
from protocol.entry import GENESIS_DIGEST
from protocol.limits import encode_content
from protocol.models import EntryDraft
from protocol.signing import KeyPair

log = logging.getLogger(__name__)

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query: rows in order and the cursor for the next page (None at the end)."""

    rows: list[Row]
    next_cursor: str | None


class Ledger:
    """The node's own ledger. Build with ``async with Ledger.open(settings, keys) as ledger``."""

    def __init__(self, settings: NodeSettings, keys: KeyPair, store: Store) -> None:
        self.settings = settings
        self.ledger_id = settings.ledger_id
        self.keys = keys
        self.hooks = Hooks()
        self._limits = settings.limits.protocol()
        self._streams = frozenset(settings.streams) if settings.streams is not None else None
        self._store = store
        self._head: LedgerRow | None = None
        self._writer: Writer | None = None
        self.replicas: Replicas
        # one queue and task per after_append hook: a slow hook (reference lookups) never delays
        # another (live announcements, the state view); each hook still sees commits in order
        self._hook_workers: dict[AfterAppend, tuple[asyncio.Queue[Sequence[Row]], asyncio.Task[None]]] = {}

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: NodeSettings, keys: KeyPair, *, verify: Mode | None = None) -> AsyncIterator[Ledger]:
        """Open, verify (``verify`` or the configured mode) and start writing; stop in reverse."""
        async with Store(settings.db_path, durability=settings.durability) as store:
            ledger = cls(settings, keys, store)
            await ledger._pin_own_key()
            await ledger.verify(verify or settings.verify_on_start)
            head = ledger.head
            clock = HybridClock(max((row.last_timestamp or 0) for row in await store.ledgers()))
            ledger.replicas = Replicas(store, ledger.ledger_id, clock, ledger._committed)
            tip = Tip(head.head_seq, head.head_hash, head.sig_digest, head.last_timestamp or 0)
            try:
                async with Writer(
                    store, ledger.ledger_id, keys, tip,
                    max_group=settings.max_group_entries, clock=clock, on_commit=ledger._committed,
                ) as writer:  # fmt: skip
                    ledger._writer = writer
                    yield ledger
            finally:
                ledger._writer = None
                await ledger._stop_hooks()

    async def _pin_own_key(self) -> None:
        own = await self._store.ledger(self.ledger_id)
        if own is None:
            if any(row.is_local for row in await self._store.ledgers()):
                raise KeyFileError(f"{self.settings.db_path}: holds another node's own ledger")
            own = await self._store.add_ledger(self.ledger_id, self.keys.public_key, is_local=True, pin_source="config",
                                               genesis=GENESIS_DIGEST)  # fmt: skip
        elif own.public_key != self.keys.public_key:
            raise KeyFileError(f"{self.settings.key_path}: key does not match the key pinned for {self.ledger_id}")
        elif not own.is_local:  # restored from an export of this node's own ledger
            await self._store.mark_local(self.ledger_id)
            own = dataclasses.replace(own, is_local=True)
        self._head = own

    @property
    def head(self) -> LedgerRow:
        assert self._head is not None, "ledger is not open"
        return self._head

    # --- writes --------------------------------------------------------------------------------

    async def append(self, drafts: Sequence[EntryDraft], *, batch: bool = True, actor: str = "node") -> list[Row]:
        """Validate and append ``drafts`` as one atomic batch; returns the committed rows. ``actor`` (the
        credential id that asked, or ``node``) is recorded in the audit log with the batch.

        Error messages name fields as ``entries[i].payload`` for a batch, ``payload`` otherwise.
        """
        self.check_batch(len(drafts))
        prepared = [self._prepare(d, f"entries[{i}]." if batch else "") for i, d in enumerate(drafts)]
        ids = [d.entry_id for d in prepared if d.entry_id is not None]
        if len(ids) != len(set(ids)):
            raise DuplicateEntry("entries: the same id appears twice in the batch")
        for hook in self.hooks.before_append:
            reason = await hook(drafts)
            if reason is not None:
                raise AppendRejected(reason)
        if self._writer is None:
            raise NotReady("the ledger is closed")
        return await self._writer.append(prepared, actor)

    def check_batch(self, count: int) -> None:
        """The one append batch limit: InvalidRequest for an empty batch, BatchTooLarge over max_batch.
        Handlers call it on the parsed list before validating any item; ``append`` relies on it too."""
        if count == 0:
            raise InvalidRequest("entries: empty batch")
        if count > self._limits.max_batch:
            raise BatchTooLarge(f"entries: batch of {count} exceeds {self._limits.max_batch} entries")

    def _prepare(self, draft: EntryDraft, where: str) -> Draft:
        if self._streams is not None and draft.stream not in self._streams:
            raise InvalidRequest(f"{where}stream: unknown stream {draft.stream!r}")
        payload, meta = encode_content(draft.payload, draft.meta, self._limits, where)
        return Draft(
            draft.stream, draft.type, payload.decode(), None if meta is None else meta.decode(),
            draft.issuer_oid, draft.subject_oid, draft.key, draft.id,
        )  # fmt: skip

    def _committed(self, rows: list[Row]) -> None:
        """Told of every commit, own or replica; moves the cached own head."""
        first, last = rows[0], rows[-1]
        if first[0] == self.ledger_id:
            head = self.head
            self._head = dataclasses.replace(
                head,
                head_seq=last[1],
                head_hash=last[HASH],
                first_timestamp=head.first_timestamp if head.first_timestamp is not None else first[8],
                last_timestamp=last[8],
            )
        for hook in self.hooks.after_append:
            worker = self._hook_workers.get(hook)
            if worker is None:
                queue: asyncio.Queue[Sequence[Row]] = asyncio.Queue()
                name = getattr(hook, "__qualname__", "hook")
                task = asyncio.create_task(self._run_hook(hook, queue), name=f"after-append:{self.ledger_id}:{name}")
                worker = self._hook_workers[hook] = (queue, task)
            worker[0].put_nowait(rows)

    async def _run_hook(self, hook: AfterAppend, queue: asyncio.Queue[Sequence[Row]]) -> None:
        while True:
            rows = await queue.get()
            try:
                await hook(rows)
            except Exception:
                log.exception("after_append hook failed ledger=%s", self.ledger_id)
            finally:
                queue.task_done()

    async def _stop_hooks(self) -> None:
        """Let every hook see the commits already made, then stop the hook tasks."""
        for queue, _ in list(self._hook_workers.values()):
            await queue.join()
        for _, task in self._hook_workers.values():
            task.cancel()
        await asyncio.gather(*(task for _, task in self._hook_workers.values()), return_exceptions=True)
        self._hook_workers.clear()

    # --- reads ---------------------------------------------------------------------------------

    async def get(self, entry_id: str) -> Row:
        return _found(await self._store.get_by_id(entry_id), f"no entry with id {entry_id}")

    async def get_by_hash(self, digest: bytes) -> Row:
        return _found(await self._store.get_by_hash(digest), f"no entry with hash {digest.hex()}")

    async def get_by_seq(self, ledger_id: str, seq: int) -> Row:
        return _found(await self._store.get_by_seq(ledger_id, seq), f"no entry {ledger_id}/{seq}")

    async def query(
        self,
        filters: Filters,
        *,
        order: Order = "asc",
        limit: int = 100,
        cursor: str | None = None,
        after: Position | None = None,
    ) -> Page:
        """One page of entries matching ``filters`` in time order (ties by ledger_id, seq), after an
        opaque ``cursor`` or an explicit ``after`` position (timestamp, ledger_id, seq)."""
        if cursor is not None and after is not None:
            raise InvalidRequest("cursor: give a cursor or an after position, not both")
        if not 1 <= limit <= self._limits.max_query_limit:
            raise InvalidRequest(f"limit: must be between 1 and {self._limits.max_query_limit}")
        for before in self.hooks.before_query:
            await before(filters)
        described: dict[str, Any] = {**dataclasses.asdict(filters), "order": order}
        if cursor is not None:
            after = decode_cursor(cursor, described)
        rows = await self._store.query(filters, descending=order == "desc", after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor((rows[-1][8], rows[-1][0], rows[-1][1]), described) if more else None
        for after_hook in self.hooks.after_query:
            await after_hook(filters, rows)
        return Page(rows, next_cursor)

    async def stats(self) -> dict[str, Any]:
        """Head, counts per stream and type, first and last timestamps: all from counters."""
        head = self.head
        counts = await self._store.stats(self.ledger_id)
        return {
            "ledger_id": self.ledger_id,
            "entries": head.head_seq,
            "head": {"seq": head.head_seq, "hash": head.head_hash.hex() if head.head_hash else None},
            "first_timestamp": head.first_timestamp,
            "last_timestamp": head.last_timestamp,
            "streams": counts["stream"],
            "types": counts["type"],
        }

    async def checkpoint(self, ledger_id: str | None = None) -> CheckpointRow | None:
        """The latest signed checkpoint of a held ledger (default: the node's own)."""
        return await self._store.latest_checkpoint(ledger_id or self.ledger_id)

    async def ledgers(self) -> list[LedgerRow]:
        """Every ledger held (own first), with heads and pinned keys."""
        return await self._store.ledgers()

    async def page(self, ledger_id: str, after: int, limit: int) -> tuple[list[Row], list[CheckpointRow], LedgerRow]:
        """Entries of a held ledger after ``after`` for a peer: (entries, their checkpoints, the ledger).

        The page is cut back to its last checkpoint when it has one, so the receiver verifies it
        with one signature; otherwise the receiver checks each entry's signature.
        """
        held = await self._store.ledger(ledger_id)
        if held is None:
            raise EntryNotFound(f"ledger {ledger_id} is not held here")
        rows = await self._store.entries_after(ledger_id, after, limit)
        if not rows:
            return [], [], held
        checkpoints = await self._store.checkpoints_between(ledger_id, after, rows[-1][1])
        if checkpoints and checkpoints[-1].seq < rows[-1][1]:
            rows = rows[: checkpoints[-1].seq - after]
        return rows, checkpoints, held

    async def sync_marks(self) -> list[tuple[str, str, str, int, bytes | None, int]]:
        return await self._store.sync_marks()

    @property
    def store(self) -> Store:
        return self._store

    # --- verification --------------------------------------------------------------------------

    async def verify(self, mode: Mode, progress: Progress | None = None) -> list[VerifyReport]:
        """Verify the store on a connection of its own in a worker thread; raise StoreCorrupted."""
        reports = await asyncio.to_thread(verify_store, self.settings.db_path, mode, progress=progress)
        for report in reports:
            if report.through_seq > 0:
                await self._store.set_verified(report.ledger_id, report.through_seq)
            log.info(
                "verified ledger=%s mode=%s entries=%d through=%d seconds=%.2f",
                report.ledger_id, report.mode, report.entries, report.through_seq, report.seconds,
            )  # fmt: skip
            for reason in report.refused_by_peers:
                log.warning("entry every peer refuses ledger=%s %s", report.ledger_id, reason)
        return reports


def _found(row: Row | None, message: str) -> Row:
    if row is None:
        raise EntryNotFound(message)
    return row


__all__ = ["Filters", "Ledger", "NodeError", "Page"]
