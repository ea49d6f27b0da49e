"""Verified copies of other nodes' ledgers: key pinning, page ingestion, fork detection.

Entries of other ledgers are stored verbatim (never re-signed) beside the node's own. A page is
committed only when every entry of it verifies against the ledger's pinned key by the rules of
``protocol.chain`` (checkpoint mode: hash links plus the checkpoint signature; entries after the
page's last checkpoint by their own signatures; full mode: every signature; ids unique in the
ledger; timestamps never decreasing), so nothing partial or unverified is ever stored. One
ingestion per ledger at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from node.errors import EntryNotFound, ForkDetected, IdentityConflict, InvalidRequest, LedgerQuarantined
from node.ledger.chain import ChainVerifier, verify_entry
from node.ledger.clock import HybridClock, wall_ms
from node.ledger.pins import PinSource, stronger
from node.storage.contract import (
    CheckpointRecord,
    ConflictRepository,
    EntryRepository,
    LedgerRecord,
    LedgerRepository,
    StoredEntry,
    SyncSource,
)
from protocol.chain import check_checkpoint_seqs, check_entry_signature, check_unique_ids
from protocol.entry import GENESIS_DIGEST
from protocol.errors import BadSignature, VerificationFailed
from protocol.models import Checkpoint, Entry

log = logging.getLogger(__name__)

FUTURE_SKEW_MS = 5 * 60 * 1000  # timestamps further ahead do not move our clock


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one page did: entries newly stored, entries already held, the ledger's head after it."""

    ledger_id: str
    accepted: int
    already_held: int
    head_seq: int


class Replicas:
    """Ingests pages of other ledgers into the store."""

    def __init__(
        self,
        entries: EntryRepository,
        ledgers: LedgerRepository,
        conflicts: ConflictRepository,
        own_ledger_id: str,
        clock: HybridClock,
        on_commit: Callable[[list[StoredEntry]], None],
    ) -> None:
        self._entries = entries
        self._ledgers = ledgers
        self._conflicts = conflicts
        self._own = own_ledger_id
        self._clock = clock
        self._on_commit = on_commit
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pin_lock = asyncio.Lock()  # pins are rare: one at a time, so two first sights never race
        self.unpinned: list[Callable[[str], None]] = []  # told of each ledger id whose pin was replaced or removed

    async def held(self, ledger_id: str) -> LedgerRecord | None:
        return await self._ledgers.get(ledger_id)

    async def pin(
        self, ledger_id: str, public_key: bytes, source: PinSource, *, actor: str = "node", replace: bool = False
    ) -> LedgerRecord:
        """Pin ``ledger_id`` to ``public_key``, recording where the pin came from.

        The same key again keeps the pin (its source upgraded when ``source`` is stronger); another
        key replaces the pin only when ``source`` is strictly stronger than the held pin's, dropping
        every entry held under the old key in the same transaction (audited); otherwise
        IdentityConflict. ``replace`` also lets an equally strong source replace (the operator
        correcting an operator pin). Safe to call concurrently for one id.
        """
        async with self._pin_lock:
            held = await self.held(ledger_id)
            if held is None:
                held = await self._ledgers.add(
                    ledger_id, public_key, is_local=False, genesis=GENESIS_DIGEST, pin_source=source
                )
                if held.public_key == public_key:
                    log.info("pinned ledger=%s key=%s source=%s", ledger_id, public_key.hex()[:16], source)
                    return held
            held_source = held.pin_source
            if held.public_key == public_key:
                if stronger(source, held_source):
                    await self._ledgers.upgrade_pin(ledger_id, public_key, source)
                return held
            if not (stronger(source, held_source) or (replace and not stronger(held_source, source))):
                raise IdentityConflict(
                    f"ledger {ledger_id} is pinned to another key (from {held_source}); the record was not used"
                )
            return await self._replace(ledger_id, public_key, source, held, held_source, actor)

    async def _replace(
        self, ledger_id: str, public_key: bytes, source: str, held: LedgerRecord, held_source: str, actor: str
    ) -> LedgerRecord:
        async with self._locks[ledger_id]:
            detail = {"ledger_id": ledger_id, "old_key": held.public_key.hex(), "old_source": held_source,
                      "new_key": public_key.hex(), "new_source": source}  # fmt: skip
            dropped = await self._ledgers.replace_pin(ledger_id, public_key, source, GENESIS_DIGEST,
                                                    (actor, "pin.replace", detail))  # fmt: skip
        log.warning("replaced pin ledger=%s old_source=%s new_source=%s entries_dropped=%d", ledger_id, held_source,
                    source, dropped)  # fmt: skip
        for forget in self.unpinned:
            forget(ledger_id)
        replaced = await self.held(ledger_id)
        assert replaced is not None
        return replaced

    async def unpin(self, ledger_id: str, actor: str) -> int:
        """Remove the pin of ``ledger_id`` with everything held under it (audited); entries dropped."""
        if ledger_id == self._own:
            raise InvalidRequest(f"ledger {ledger_id} is this node's own; its pin is not removed")
        async with self._pin_lock, self._locks[ledger_id]:
            held = await self.held(ledger_id)
            if held is None:
                raise EntryNotFound(f"no pin for ledger {ledger_id}")
            detail = {"ledger_id": ledger_id, "old_key": held.public_key.hex(),
                      "old_source": held.pin_source}  # fmt: skip
            dropped = await self._ledgers.replace_pin(ledger_id, None, "operator", GENESIS_DIGEST,
                                                    (actor, "pin.remove", detail))  # fmt: skip
        for forget in self.unpinned:
            forget(ledger_id)
        return dropped

    async def ingest(
        self, ledger_id: str, entries: Sequence[Entry], checkpoints: Sequence[Checkpoint], *, peer: str, full: bool
    ) -> Ingested:
        """Verify a page of one ledger's entries (seq order) with its checkpoints and commit it whole."""
        if ledger_id == self._own:
            raise InvalidRequest(f"ledger {ledger_id} is this node's own; it is not taken from peers")
        if any(e.ledger_id != ledger_id for e in entries) or any(c.ledger_id != ledger_id for c in checkpoints):
            raise InvalidRequest(f"entries: every entry and checkpoint must belong to ledger {ledger_id}")
        async with self._locks[ledger_id]:
            held = await self.held(ledger_id)
            if held is None:
                raise IdentityConflict(f"ledger {ledger_id} has no pinned key here")
            if held.quarantined:
                raise LedgerQuarantined(f"ledger {ledger_id} is quarantined after a fork")
            check_checkpoint_seqs([e.seq for e in entries], [c.seq for c in checkpoints])
            fresh = [e for e in entries if e.seq > held.head_seq]
            known = [e for e in entries if e.seq <= held.head_seq]
            if known:  # what we hold at those seqs, read at once
                first, last = min(e.seq for e in known), max(e.seq for e in known)
                ours = {row.seq: row for row in await self._entries.after(ledger_id, first - 1, last - first + 1)}
                for e in known:
                    await self._check_held(held, e, ours.get(e.seq))
            if not fresh:
                return Ingested(ledger_id, 0, len(entries), held.head_seq)
            ids = [e.id for e in fresh]
            check_unique_ids(((e.seq, e.id) for e in fresh), await self._entries.ids_taken(ledger_id, ids))
            chain = ChainVerifier(held.public_key, held.head_seq, held.head_hash, held.sig_digest, full=False,
                                  timestamp=held.last_timestamp or 0)  # fmt: skip
            by_seq = {c.seq: c for c in checkpoints}
            rows: list[StoredEntry] = []
            covered: list[CheckpointRecord] = []
            for e in fresh:
                rows.append(chain.extend_entry(e))
                if e.seq in by_seq:
                    covered.append(chain.checkpoint_record(by_seq[e.seq]))
            # full mode checks every signature, checkpoint mode those no checkpoint covers; off the
            # event loop, on two threads (pynacl releases the GIL)
            signed = [(row.seq, row.hash, row.sig) for row in rows] if full else chain.uncovered
            await check_signatures(held.public_key, signed)
            chain.uncovered.clear()
            counts: Counter[tuple[str, str]] = Counter()
            for row in rows:
                counts["stream", row.stream] += 1
                counts["type", row.type] += 1
            await self._entries.commit(
                rows, covered, dict(counts), sig_digest=chain.digest, sync=SyncSource(peer, "pull")
            )
            horizon = wall_ms() + FUTURE_SKEW_MS
            self._clock.observe(min(rows[-1].timestamp, horizon))
            ahead = [row for row in rows if row.timestamp > horizon]
            if ahead:  # stored (the origin signed it) but flagged: its clock is not trusted
                evidence = orjson.dumps({"seqs": [r.seq for r in ahead], "timestamps": [r.timestamp for r in ahead],
                                         "received_at": horizon - FUTURE_SKEW_MS}).decode()  # fmt: skip
                await self._conflicts.record("future-timestamp", ledger_id, ahead[0].seq, None, evidence,
                                                  quarantine=False)  # fmt: skip
                log.warning("entries dated in the future ledger=%s first_seq=%d", ledger_id, ahead[0].seq)
            self._on_commit(rows)
            return Ingested(ledger_id, len(rows), len(entries) - len(rows), chain.seq)

    async def _check_held(self, held: LedgerRecord, e: Entry, ours: StoredEntry | None) -> None:
        """An entry at a seq we hold (``ours``) must be the one we hold, or it is evidence of a fork."""
        if ours is None or ours.hash.hex() == e.hash:
            return
        try:
            verify_entry(held.public_key, e)  # its hash is right and the origin signed it
        except (VerificationFailed, BadSignature) as exc:
            raise VerificationFailed(f"seq {e.seq}: differs from the entry held here and does not verify") from exc
        evidence = orjson.dumps({"held": ours.to_wire(), "received": e.model_dump()}).decode()
        conflict = await self._conflicts.record("fork", held.ledger_id, e.seq, None, evidence, quarantine=True)
        log.warning("fork ledger=%s seq=%d conflict=%d: ledger quarantined", held.ledger_id, e.seq, conflict)
        raise ForkDetected(f"ledger {held.ledger_id} seq {e.seq}: two validly signed entries (conflict {conflict})")


async def check_signatures(public_key: bytes, items: list[tuple[int, bytes, bytes]]) -> None:
    """Raise BadSignature naming the seq unless every (seq, hash, sig) verifies; two threads for many."""
    if not items:
        return
    if len(items) < 64:
        return _first_bad(public_key, items)
    half = len(items) // 2
    await asyncio.gather(
        asyncio.to_thread(_first_bad, public_key, items[:half]), asyncio.to_thread(_first_bad, public_key, items[half:])
    )


def _first_bad(public_key: bytes, items: list[tuple[int, bytes, bytes]]) -> None:
    for seq, digest, sig in items:
        check_entry_signature(public_key, seq, digest, sig)
