"""Verification of stored ledgers: hash reconstruction, links, signature digests, checkpoints.

Modes:
- ``fast``: from the last checkpoint a verification passed (``ledgers.verified_seq``) to the head;
- ``chain``: every entry from seq 1: its hash re-computed from its columns, its link, the running
  signature digest against every checkpoint, every checkpoint signature and the head's signature;
- ``full``: ``chain`` plus every entry signature, checked on a thread pool so both cores work.

The first bad position is raised as StoreCorrupted(ledger_id, seq, reason). Rows are streamed in
seq order; memory stays flat whatever the ledger's size. Runs in a worker thread on a connection of
its own (sqlite3, read-only), inside one read transaction, so it sees one consistent snapshot.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from node.errors import StoreCorrupted
from node.ledger.rows import HASH, SIG, Row, content_hash
from node.ledger.store import (
    CheckpointRow,
    LedgerRow,
    checkpoint_at_or_before,
    iter_checkpoints,
    iter_entries,
    read_ledgers,
)
from protocol.entry import GENESIS_DIGEST, next_sig_digest, verify_checkpoint, verify_hash_signature
from protocol.errors import BadSignature

Mode = Literal["fast", "chain", "full"]
Progress = Callable[[int], None]

_SIG_CHUNK = 2048
_PROGRESS_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a verification covered."""

    ledger_id: str
    mode: Mode
    from_seq: int
    through_seq: int
    entries: int
    checkpoints: int
    signatures: int
    seconds: float

    @property
    def last_checkpoint(self) -> int:
        return self.through_seq


def verify_store(
    conn: sqlite3.Connection,
    mode: Mode,
    *,
    progress: Progress | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> list[VerifyReport]:
    """Verify every ledger held; raise StoreCorrupted at the first bad position."""
    conn.execute("BEGIN")  # one snapshot for the whole walk
    try:
        return [_verify(conn, ledger, mode, progress, pool, time.perf_counter()) for ledger in read_ledgers(conn)]
    finally:
        conn.execute("ROLLBACK")


def _verify(
    conn: sqlite3.Connection,
    ledger: LedgerRow,
    mode: Mode,
    progress: Progress | None,
    pool: ThreadPoolExecutor | None,
    started: float,
) -> VerifyReport:
    lid, key = ledger.ledger_id, ledger.public_key
    start, prev, digest = _starting_point(conn, ledger, mode)
    expected = start + 1
    checkpoints = iter_checkpoints(conn, lid, start)
    next_cp = next(checkpoints, None)
    last_cp, n_cp = start, 0
    sig_jobs: deque[Future[int | None]] = deque()
    batch: list[tuple[int, bytes, bytes]] = []
    full = mode == "full"
    own_pool = pool is None and full
    if own_pool:
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
    try:
        for row in iter_entries(conn, lid, start):
            seq = row[1]
            if seq != expected:
                raise StoreCorrupted(lid, expected, "entry missing")
            if row[11] != prev:
                raise StoreCorrupted(lid, seq, f"prev_hash does not match the hash of seq {seq - 1}")
            digest_now = content_hash(row)
            if digest_now != row[HASH]:
                raise StoreCorrupted(lid, seq, "hash does not match the entry's content")
            digest = next_sig_digest(digest, row[SIG])
            if full:
                assert pool is not None
                batch.append((seq, row[HASH], row[SIG]))
                if len(batch) >= _SIG_CHUNK:
                    sig_jobs.append(pool.submit(_first_bad_signature, key, batch))
                    batch = []
                    while len(sig_jobs) > 4:
                        _raise_bad(lid, sig_jobs.popleft().result())
            if next_cp is not None and next_cp.seq == seq:
                _check_checkpoint(conn, ledger, next_cp, digest_now, digest, last_cp)
                last_cp, n_cp = seq, n_cp + 1
                next_cp = next(checkpoints, None)
            prev = digest_now
            expected += 1
            if progress is not None and expected % _PROGRESS_EVERY == 0:
                progress(_PROGRESS_EVERY)
        if full:
            assert pool is not None
            if batch:
                sig_jobs.append(pool.submit(_first_bad_signature, key, batch))
            for job in sig_jobs:
                _raise_bad(lid, job.result())
    finally:
        if own_pool and pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    head = expected - 1
    if head < ledger.head_seq:
        raise StoreCorrupted(lid, expected, "entry missing")
    if head > ledger.head_seq or prev != ledger.head_hash:
        raise StoreCorrupted(lid, head, "entries do not end at the recorded head")
    if next_cp is not None:
        raise StoreCorrupted(lid, next_cp.seq, "checkpoint beyond the head")
    if head > 0:
        if last_cp != head:
            raise StoreCorrupted(lid, head, "no checkpoint covers the head")
        _check_head_signature(conn, ledger, head)
    if progress is not None:
        progress((head - start) % _PROGRESS_EVERY)
    return VerifyReport(
        lid, mode, start, head, head - start, n_cp, head - start if full else 1 if head else 0,
        time.perf_counter() - started,
    )  # fmt: skip


def _starting_point(conn: sqlite3.Connection, ledger: LedgerRow, mode: Mode) -> tuple[int, bytes | None, bytes]:
    """(seq, hash, signature digest) to start from: genesis, or the last verified checkpoint."""
    if mode != "fast" or ledger.verified_seq == 0:
        return 0, None, GENESIS_DIGEST
    cp = checkpoint_at_or_before(conn, ledger.ledger_id, ledger.verified_seq)
    if cp is None or cp.seq != ledger.verified_seq:
        raise StoreCorrupted(ledger.ledger_id, ledger.verified_seq, "verified checkpoint is missing")
    _check_checkpoint_signature(ledger, cp)
    row = next(iter_entries(conn, ledger.ledger_id, cp.seq - 1), None)
    if row is None or row[1] != cp.seq or content_hash(row) != cp.hash or row[HASH] != cp.hash:
        raise StoreCorrupted(ledger.ledger_id, cp.seq, "entry does not match its verified checkpoint")
    return cp.seq, cp.hash, cp.sig_digest


def _check_checkpoint(
    conn: sqlite3.Connection, ledger: LedgerRow, cp: CheckpointRow, digest: bytes, sig_digest: bytes, last_cp: int
) -> None:
    _check_checkpoint_signature(ledger, cp)
    if cp.hash != digest:
        raise StoreCorrupted(ledger.ledger_id, cp.seq, "checkpoint hash differs from the entry's")
    if cp.sig_digest != sig_digest:
        # some signature after the previous checkpoint was altered: find which one
        rows = _range(conn, ledger.ledger_id, last_cp, cp.seq)
        bad = _first_bad_signature(ledger.public_key, [(r[1], r[HASH], r[SIG]) for r in rows])
        raise StoreCorrupted(ledger.ledger_id, bad or cp.seq, "signature does not verify")


def _check_checkpoint_signature(ledger: LedgerRow, cp: CheckpointRow) -> None:
    try:
        verify_checkpoint(ledger.public_key, cp.ledger_id, cp.seq, cp.hash, cp.sig_digest, cp.timestamp, cp.sig)
    except BadSignature:
        raise StoreCorrupted(ledger.ledger_id, cp.seq, "checkpoint signature does not verify") from None


def _check_head_signature(conn: sqlite3.Connection, ledger: LedgerRow, head: int) -> None:
    (row,) = _range(conn, ledger.ledger_id, head - 1, head)
    if _first_bad_signature(ledger.public_key, [(row[1], row[HASH], row[SIG])]) is not None:
        raise StoreCorrupted(ledger.ledger_id, head, "signature does not verify")


def _range(conn: sqlite3.Connection, ledger_id: str, after: int, through: int) -> list[Row]:
    rows: Iterator[Row] = iter_entries(conn, ledger_id, after)
    return [row for row, _ in zip(rows, range(through - after), strict=False)]


def _first_bad_signature(public_key: bytes, items: list[tuple[int, bytes, bytes]]) -> int | None:
    for seq, digest, sig in items:
        try:
            verify_hash_signature(public_key, digest, sig)
        except BadSignature:
            return seq
    return None


def _raise_bad(ledger_id: str, bad: int | None) -> None:
    if bad is not None:
        raise StoreCorrupted(ledger_id, bad, "signature does not verify")
