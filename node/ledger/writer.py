"""The single writer of the node's own ledger: group commit with signing pipelined against SQLite.

Concurrent appends queue here. The writer takes every queued request (up to ``max_group``
entries), assigns seq, timestamp and id, hashes the chain, signs the hashes on a thread pool
(pynacl releases the GIL, so both cores sign) and commits the group, with its checkpoint and stat
counters, in one SQLite transaction. While group N commits on SQLite's thread, group N+1 is hashed
and signed on top of N's tip; if N's commit fails, N+1 is rebuilt on the committed head. A caller's
future resolves only after its entries are committed, so an acknowledged entry is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple

from node.errors import DuplicateEntry, NotReady
from node.ledger.clock import HybridClock
from node.ledger.ids import uuid7s
from node.storage.contract import CheckpointRecord, EntryRepository, StoredEntry
from protocol.entry import entry_hash, next_sig_digest, sign_checkpoint, sign_hash
from protocol.signing import KeyPair

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1000  # = the protocol's largest page
_INLINE_SIGNING = 8  # below this many entries a thread hop costs more than it saves


class Draft(NamedTuple):
    """A validated entry draft with payload and meta already in canonical JSON text."""

    stream: str
    type: str
    payload_json: str
    meta_json: str | None = None
    issuer_oid: str | None = None
    subject_oid: str | None = None
    key: str | None = None
    entry_id: str | None = None


@dataclass(frozen=True, slots=True)
class Tip:
    """The head a group is built on: last seq, its hash, the signature digest and timestamp."""

    seq: int
    hash: bytes | None
    sig_digest: bytes
    timestamp: int


@dataclass(slots=True)
class _Request:
    drafts: Sequence[Draft]
    future: asyncio.Future[list[StoredEntry]]
    actor: str


@dataclass(slots=True)
class _Batch:
    base: Tip
    tip: Tip
    requests: list[_Request]
    rows: list[StoredEntry]
    checkpoints: list[CheckpointRecord]
    counts: dict[tuple[str, str], int] = field(default_factory=dict)


class Writer:
    """Owns the append path of one ledger; use as an async context manager."""

    def __init__(
        self,
        store: EntryRepository,
        ledger_id: str,
        keys: KeyPair,
        committed: Tip,
        *,
        max_group: int,
        clock: HybridClock,
        on_commit: Callable[[list[StoredEntry]], None],
    ) -> None:
        self._store = store
        self._ledger_id = ledger_id
        self._keys = keys
        self._committed = committed
        self._tip = committed
        self._max_group = max_group
        self._clock = clock
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sign")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inflight_ids: set[str] = set()

    @property
    def committed(self) -> Tip:
        return self._committed

    async def __aenter__(self) -> Writer:
        self._task = asyncio.create_task(self._run(), name=f"writer:{self._ledger_id}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing = True
        await self._queue.put(None)
        if self._task is not None:
            await self._task
        self._pool.shutdown(wait=True)

    async def append(self, drafts: Sequence[Draft], actor: str = "node") -> list[StoredEntry]:
        """Append drafts as one atomic batch; returns their committed rows. The audit log records,
        in the same transaction, that ``actor`` (a credential id, or ``node``) appended them."""
        if self._closing or self._task is None or self._task.done():
            raise NotReady("the ledger writer is not running")
        future: asyncio.Future[list[StoredEntry]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(drafts, future, actor))
        return await future

    async def _run(self) -> None:
        inflight: asyncio.Task[None] | None = None
        try:
            while (group := await self._take()) is not None:
                group = await self._refuse_duplicates(group)
                if not group:
                    continue
                batch = await self._prepare(group, self._tip)
                if inflight is not None:
                    await inflight
                if batch.base != self._committed:  # the previous group failed: rebuild on what is committed
                    batch = await self._prepare(group, self._committed)
                inflight = asyncio.create_task(self._commit(batch), name=f"commit:{self._ledger_id}")
            if inflight is not None:
                await inflight
        except BaseException as exc:
            log.exception("writer stopped ledger=%s", self._ledger_id)
            self._fail_queued(NotReady("the ledger writer stopped"))
            if inflight is not None and not inflight.done():
                inflight.cancel()
            if not isinstance(exc, Exception):
                raise

    async def _take(self) -> list[_Request] | None:
        first = await self._queue.get()
        if first is None:
            return None
        group, size = [first], len(first.drafts)
        while size < self._max_group and not self._queue.empty():
            request = self._queue.get_nowait()
            if request is None:  # closing: finish this group, then stop
                self._queue.put_nowait(None)
                break
            group.append(request)
            size += len(request.drafts)
        return group

    async def _refuse_duplicates(self, group: list[_Request]) -> list[_Request]:
        wanted = [d.entry_id for r in group for d in r.drafts if d.entry_id is not None]
        if not wanted:
            return group
        inflight = set(self._inflight_ids)  # before the read: a group committing meanwhile is in one or the other
        taken = await self._store.ids_taken(self._ledger_id, wanted) | inflight
        kept: list[_Request] = []
        for request in group:
            ids = [d.entry_id for d in request.drafts if d.entry_id is not None]
            clash = next((i for i in ids if i in taken), None)
            if clash is not None:
                request.future.set_exception(DuplicateEntry(f"id {clash} is already used in this ledger"))
                continue
            taken.update(ids)
            kept.append(request)
        return kept

    async def _prepare(self, group: list[_Request], base: Tip) -> _Batch:
        ledger_id = self._ledger_id
        seq, prev, timestamp = base.seq, base.hash, max(self._clock.now(), base.timestamp)
        unsigned: list[tuple[int, str, Draft, bytes | None, bytes]] = []  # seq, id, draft, prev_hash, hash
        counts: Counter[tuple[str, str]] = Counter()
        fresh = iter(uuid7s(sum(len(r.drafts) for r in group), timestamp))
        for request in group:
            for d in request.drafts:
                seq += 1
                entry_id = d.entry_id or next(fresh)
                digest = entry_hash(
                    ledger_id, seq, entry_id, d.stream, d.type, d.issuer_oid, d.subject_oid, d.key,
                    timestamp, d.payload_json, d.meta_json, prev,
                )  # fmt: skip
                unsigned.append((seq, entry_id, d, prev, digest))
                counts["stream", d.stream] += 1
                counts["type", d.type] += 1
                prev = digest
        sigs = await self._sign([digest for *_, digest in unsigned])
        sig_digest = base.sig_digest
        checkpoints = []
        entries: list[StoredEntry] = []
        for (entry_seq, entry_id, d, entry_prev, digest), sig in zip(unsigned, sigs, strict=True):
            entries.append(StoredEntry(
                ledger_id, entry_seq, entry_id, d.stream, d.type, d.issuer_oid, d.subject_oid, d.key, timestamp,
                d.payload_json, d.meta_json, entry_prev, digest, sig,
            ))  # fmt: skip
            sig_digest = next_sig_digest(sig_digest, sig)
            # a checkpoint every CHECKPOINT_EVERY seqs and at the group's end: a sync page of up to
            # that many entries always ends at one
            if entry_seq % CHECKPOINT_EVERY == 0 or entry_seq == seq:
                checkpoints.append(self._checkpoint(entry_seq, digest, sig_digest, timestamp))
        assert prev is not None
        tip = Tip(seq, prev, sig_digest, timestamp)
        self._tip = tip
        return _Batch(base, tip, group, entries, checkpoints, dict(counts))

    def _checkpoint(self, seq: int, head: bytes, sig_digest: bytes, timestamp: int) -> CheckpointRecord:
        sig = sign_checkpoint(self._keys, self._ledger_id, seq, head, sig_digest, timestamp)
        return CheckpointRecord(self._ledger_id, seq, head, sig_digest, timestamp, sig)

    async def _sign(self, hashes: list[bytes]) -> list[bytes]:
        keys = self._keys
        if len(hashes) < _INLINE_SIGNING:
            return _sign_all(keys, hashes)
        half = len(hashes) // 2
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(loop.run_in_executor(self._pool, _sign_all, keys, chunk) for chunk in (hashes[:half], hashes[half:]))
        )
        return parts[0] + parts[1]

    async def _commit(self, batch: _Batch) -> None:
        ids = {e.id for e in batch.rows}
        self._inflight_ids |= ids
        try:
            await self._store.commit(
                batch.rows, batch.checkpoints, batch.counts, sig_digest=batch.tip.sig_digest, audit=_audit(batch)
            )
        except Exception as exc:
            log.error("append failed ledger=%s entries=%d error=%s", self._ledger_id, len(batch.rows), exc)
            self._tip = self._committed
            for request in batch.requests:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        finally:
            self._inflight_ids -= ids
        self._committed = batch.tip
        start = 0
        for request in batch.requests:
            end = start + len(request.drafts)
            if not request.future.done():
                request.future.set_result(batch.rows[start:end])
            start = end
        self._on_commit(batch.rows)

    def _fail_queued(self, exc: Exception) -> None:
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if request is not None and not request.future.done():
                request.future.set_exception(exc)


def _audit(batch: _Batch) -> list[tuple[str, str, dict[str, Any]]]:
    """One ``append`` record per run of consecutive requests by the same actor in the group."""
    records: list[tuple[str, str, dict[str, Any]]] = []
    seq = batch.base.seq
    for request in batch.requests:
        first, seq = seq + 1, seq + len(request.drafts)
        if records and records[-1][0] == request.actor:
            records[-1][2].update(last_seq=seq, count=records[-1][2]["count"] + len(request.drafts))
        else:
            records.append((request.actor, "append", {"first_seq": first, "last_seq": seq,
                                                      "count": len(request.drafts)}))  # fmt: skip
    return records


def _sign_all(keys: KeyPair, hashes: list[bytes]) -> list[bytes]:
    return [sign_hash(keys, h) for h in hashes]
