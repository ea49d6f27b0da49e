"""The Ledger service: the node's own ledger as the rest of the node sees it.

Opens the storage (migrations) unless given it, pins the node's key, verifies the store, runs the
writer, validates drafts against the protocol limits and the node's configuration, answers reads
with the head kept in memory (moved only by the writer's commits), and holds the verified replicas
of other ledgers (pins and page ingestion) behind the same object, so no caller touches storage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from node.activity import Activities
from node.errors import (
    AppendRejected,
    BatchTooLarge,
    DuplicateEntry,
    EntryNotFound,
    InvalidRequest,
    KeyFileError,
    NodeError,
    NotReady,
    StoreCorrupted,
)
from node.ledger.clock import HybridClock, wall_ms
from node.ledger.cursor import Position, decode_cursor, encode_cursor
from node.ledger.hooks import AfterAppend, Hooks
from node.ledger.pins import PinSource
from node.ledger.replicas import Ingested, Replicas
from node.ledger.verify import Mode, Progress, VerifyReport, verify_store
from node.ledger.wire import within_budget
from node.ledger.writer import Draft, Tip, Writer
from node.settings import NodeSettings
from node.storage.contract import CheckpointRecord, Filters, LedgerRecord, Repositories, StoredEntry
from node.storage.sqlite import open_sqlite
from protocol.entry import GENESIS_DIGEST
from protocol.limits import encode_content
from protocol.models import ANSWER_BUDGET_BRACKETS, ANSWER_BUDGET_BYTES, Checkpoint, Entry, EntryDraft
from protocol.signing import KeyPair

log = logging.getLogger(__name__)

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Verification:
    """The last verification of the store this process ran (at start or asked for): its mode, when,
    how far it reached in the own ledger and, when it failed, why. Entries written after it were
    checked as they were written (own appends are built by this node, replicated pages verified)."""

    mode: Mode
    at_ms: int
    own_through_seq: int
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query: rows in order and the cursor for the next page (None at the end)."""

    rows: list[StoredEntry]
    next_cursor: str | None


class Ledger:
    """The node's own ledger. Build with ``async with Ledger.open(settings, keys) as ledger``."""

    def __init__(self, settings: NodeSettings, keys: KeyPair, storage: Repositories) -> None:
        self.settings = settings
        self.ledger_id = settings.ledger_id
        self.keys = keys
        self.hooks = Hooks()
        self.activities = Activities()  # syncs and verifications running now, with progress
        self.verification: Verification | None = None
        self._limits = settings.limits.protocol()
        self._streams = frozenset(settings.streams) if settings.streams is not None else None
        self._entries = storage.entries
        self._ledgers = storage.ledgers
        self._head: LedgerRecord | None = None
        self._writer: Writer | None = None
        self._replicas: Replicas
        # one queue and task per after_append hook: a slow hook (reference lookups) never delays
        # another (live announcements, the state view); each hook still sees commits in order
        self._hook_workers: dict[AfterAppend, tuple[asyncio.Queue[Sequence[StoredEntry]], asyncio.Task[None]]] = {}

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: NodeSettings, keys: KeyPair, *, verify: Mode | None = None, storage: Repositories | None = None
    ) -> AsyncIterator[Ledger]:
        """Open, verify (``verify`` or the configured mode) and start writing; stop in reverse. Without
        ``storage`` the ledger opens (and closes) the SQLite database at ``settings.db_path`` itself."""
        if storage is None:
            async with open_sqlite(
                settings.db_path, durability=settings.durability, index_max_lag=settings.index_max_lag
            ) as opened:
                async with cls.open(settings, keys, verify=verify, storage=opened) as ledger:
                    yield ledger
            return
        ledger = cls(settings, keys, storage)
        await ledger._pin_own_key()
        await ledger.verify(verify or settings.verify_on_start)
        head = ledger.head
        clock = HybridClock(max((row.last_timestamp or 0) for row in await storage.ledgers.all()))
        ledger._replicas = Replicas(
            storage.entries, storage.ledgers, storage.conflicts, ledger.ledger_id, clock, ledger._committed
        )
        tip = Tip(head.head_seq, head.head_hash, head.sig_digest, head.last_timestamp or 0)
        try:
            async with Writer(
                storage.entries, ledger.ledger_id, keys, tip,
                max_group=settings.max_group_entries, clock=clock, on_commit=ledger._committed,
            ) as writer:  # fmt: skip
                ledger._writer = writer
                yield ledger
        finally:
            ledger._writer = None
            await ledger._stop_hooks()

    async def _pin_own_key(self) -> None:
        own = await self._ledgers.get(self.ledger_id)
        if own is None:
            if any(row.is_local for row in await self._ledgers.all()):
                raise KeyFileError(f"{self.settings.db_path}: holds another node's own ledger")
            own = await self._ledgers.add(self.ledger_id, self.keys.public_key, is_local=True, pin_source="config",
                                               genesis=GENESIS_DIGEST)  # fmt: skip
        elif own.public_key != self.keys.public_key:
            raise KeyFileError(f"{self.settings.key_path}: key does not match the key pinned for {self.ledger_id}")
        elif not own.is_local:  # restored from an export of this node's own ledger
            await self._ledgers.mark_local(self.ledger_id)
            own = dataclasses.replace(own, is_local=True)
        self._head = own

    @property
    def head(self) -> LedgerRecord:
        assert self._head is not None, "ledger is not open"
        return self._head

    # --- writes --------------------------------------------------------------------------------

    async def append(
        self, drafts: Sequence[EntryDraft], *, batch: bool = True, actor: str = "node"
    ) -> list[StoredEntry]:
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

    def _committed(self, rows: list[StoredEntry]) -> None:
        """Told of every commit, own or replica; moves the cached own head."""
        first, last = rows[0], rows[-1]
        if first.ledger_id == self.ledger_id:
            head = self.head
            self._head = dataclasses.replace(
                head,
                head_seq=last.seq,
                head_hash=last.hash,
                first_timestamp=head.first_timestamp if head.first_timestamp is not None else first.timestamp,
                last_timestamp=last.timestamp,
            )
        for hook in self.hooks.after_append:
            worker = self._hook_workers.get(hook)
            if worker is None:
                queue: asyncio.Queue[Sequence[StoredEntry]] = asyncio.Queue()
                name = getattr(hook, "__qualname__", "hook")
                task = asyncio.create_task(self._run_hook(hook, queue), name=f"after-append:{self.ledger_id}:{name}")
                worker = self._hook_workers[hook] = (queue, task)
            worker[0].put_nowait(rows)

    async def _run_hook(self, hook: AfterAppend, queue: asyncio.Queue[Sequence[StoredEntry]]) -> None:
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

    async def get(self, entry_id: str) -> StoredEntry:
        return _found(await self._entries.by_id(entry_id), f"no entry with id {entry_id}")

    async def get_by_hash(self, digest: bytes) -> StoredEntry:
        return _found(await self._entries.by_hash(digest), f"no entry with hash {digest.hex()}")

    async def get_by_seq(self, ledger_id: str, seq: int) -> StoredEntry:
        return _found(await self._entries.by_seq(ledger_id, seq), f"no entry {ledger_id}/{seq}")

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
        rows = await self._entries.query(filters, descending=order == "desc", after=after, limit=limit + 1)
        fitting = within_budget(rows[:limit], ANSWER_BUDGET_BYTES, ANSWER_BUDGET_BRACKETS)  # the answer budget
        more = len(rows) > len(fitting)
        rows = fitting
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = encode_cursor((last.timestamp, last.ledger_id, last.seq), described)
        for after_hook in self.hooks.after_query:
            await after_hook(filters, rows)
        return Page(rows, next_cursor)

    def index_lag(self) -> int:
        """Committed entries not yet in the secondary indexes (queries see them all the same)."""
        return self._entries.index_lag()

    async def index_now(self) -> None:
        """Bring the secondary indexes up to every commit so far (benches, tools)."""
        await self._entries.index_now()

    async def keyed(self, key: str) -> list[StoredEntry]:
        """Every held entry carrying ``key``, of any ledger."""
        return await self._entries.keyed(key)

    async def entry_keys(self, after: str | None, limit: int) -> list[str]:
        """Distinct entry keys (the ``key`` field) in order, after ``after``."""
        return await self._entries.keys(after, limit)

    async def stats(self) -> dict[str, Any]:
        """Head, counts per stream and type, first and last timestamps: all from counters."""
        head = self.head
        counts = await self._entries.stats(self.ledger_id)
        return {
            "ledger_id": self.ledger_id,
            "entries": head.head_seq,
            "head": {"seq": head.head_seq, "hash": head.head_hash.hex() if head.head_hash else None},
            "first_timestamp": head.first_timestamp,
            "last_timestamp": head.last_timestamp,
            "streams": counts["stream"],
            "types": counts["type"],
        }

    async def checkpoint(self, ledger_id: str | None = None) -> CheckpointRecord | None:
        """The latest signed checkpoint of a held ledger (default: the node's own)."""
        return await self._entries.latest_checkpoint(ledger_id or self.ledger_id)

    async def ledgers(self) -> list[LedgerRecord]:
        """Every ledger held (own first), with heads and pinned keys."""
        return await self._ledgers.all()

    async def page(
        self, ledger_id: str, after: int, limit: int
    ) -> tuple[list[StoredEntry], list[CheckpointRecord], LedgerRecord]:
        """Entries of a held ledger after ``after`` for a peer: (entries, their checkpoints, the ledger).

        The page stops at the answer budget (at least one entry; a checkpoint counted for every
        entry), then is cut back to its last checkpoint when it has one, so the receiver
        verifies it with one signature; otherwise the receiver checks each entry's signature.
        """
        held = await self._ledgers.get(ledger_id)
        if held is None:
            raise EntryNotFound(f"ledger {ledger_id} is not held here")
        rows = await self._entries.after(ledger_id, after, limit)
        rows = within_budget(rows, ANSWER_BUDGET_BYTES, ANSWER_BUDGET_BRACKETS, per_entry=400)
        if not rows:
            return [], [], held
        checkpoints = await self._entries.checkpoints_between(ledger_id, after, rows[-1].seq)
        if checkpoints and checkpoints[-1].seq < rows[-1].seq:
            rows = rows[: checkpoints[-1].seq - after]
        return rows, checkpoints, held

    # --- replicas of other ledgers --------------------------------------------------------------

    async def held(self, ledger_id: str) -> LedgerRecord | None:
        """A held ledger (own or replica) with its head, pinned key and pin source; None if not held."""
        return await self._ledgers.get(ledger_id)

    async def pin(
        self, ledger_id: str, public_key: bytes, source: PinSource, *, actor: str = "node", replace: bool = False
    ) -> LedgerRecord:
        """Pin another ledger to ``public_key`` (see ``Replicas.pin`` for when a pin is replaced)."""
        return await self._replicas.pin(ledger_id, public_key, source, actor=actor, replace=replace)

    async def unpin(self, ledger_id: str, actor: str) -> int:
        """Remove another ledger's pin with everything held under it (audited); entries dropped."""
        return await self._replicas.unpin(ledger_id, actor)

    def on_unpin(self, forget: Callable[[str], None]) -> None:
        """Tell ``forget`` of each ledger id whose pin is replaced or removed."""
        self._replicas.unpinned.append(forget)

    async def ingest(
        self, ledger_id: str, entries: Sequence[Entry], checkpoints: Sequence[Checkpoint], *, peer: str, full: bool
    ) -> Ingested:
        """Verify a page of another ledger (from ``peer``) and commit it whole; see ``Replicas.ingest``."""
        return await self._replicas.ingest(ledger_id, entries, checkpoints, peer=peer, full=full)

    # --- verification --------------------------------------------------------------------------

    async def verify(self, mode: Mode, progress: Progress | None = None) -> list[VerifyReport]:
        """Verify the store on a connection of its own in a worker thread; raise StoreCorrupted."""
        total = sum(row.head_seq for row in await self._ledgers.all())
        with self.activities.run("verify", f"{mode}: every ledger held", total) as activity:

            def advance(entries: int) -> None:
                activity.advance(entries)
                if progress is not None:
                    progress(entries)

            try:
                reports = await asyncio.to_thread(verify_store, self.settings.db_path, mode, progress=advance)
            except StoreCorrupted as exc:
                self.verification = Verification(mode, wall_ms(), 0, str(exc))
                raise
        own = next((r.through_seq for r in reports if r.ledger_id == self.ledger_id), 0)
        self.verification = Verification(mode, wall_ms(), own)
        for report in reports:
            if report.through_seq > 0:
                await self._ledgers.set_verified(report.ledger_id, report.through_seq)
            log.info(
                "verified ledger=%s mode=%s entries=%d through=%d seconds=%.2f",
                report.ledger_id, report.mode, report.entries, report.through_seq, report.seconds,
            )  # fmt: skip
            for reason in report.refused_by_peers:
                log.warning("entry every peer refuses ledger=%s %s", report.ledger_id, reason)
        return reports


def _found(row: StoredEntry | None, message: str) -> StoredEntry:
    if row is None:
        raise EntryNotFound(message)
    return row


__all__ = ["Filters", "Ledger", "NodeError", "Page"]
