"""Verification of stored ledgers: hash reconstruction, links, signature digests, checkpoints.

Modes:
- ``fast``: from the last checkpoint a verification passed (``ledgers.verified_seq``) to the head;
- ``chain``: every entry from seq 1: its hash re-computed from its columns, its link, the running
  signature digest against every checkpoint, every checkpoint signature and the head's signature;
- ``full``: ``chain`` plus every entry signature.

Every mode also applies the rules a receiver applies that a valid signature does not imply: payload
and meta (``protocol.limits.encode_content``), timestamps never decreasing and a checkpoint dated
as the entry it covers (``protocol.chain``). An entry that breaks them is validly signed, so the
store is not corrupt, but no peer or importer accepts it: it is listed in
``VerifyReport.refused_by_peers`` (``ledger-node verify`` then fails; a starting node logs it and
starts). Unique ids and one checkpoint per seq need no step here: the store's keys enforce them.

A ledger is cut at checkpoints into spans. A span verifies on its own: it starts from the state its
opening checkpoint records and must end exactly in the state its closing checkpoint records, so
consecutive spans together verify the whole chain. Large ledgers are verified span by span on a
pool of worker processes (both cores, no GIL in the way); small ones in the calling thread.

The first bad position is raised as StoreCorrupted(ledger_id, seq, reason). Rows are streamed in
seq order; memory stays flat whatever the ledger's size.
"""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from node.errors import StoreCorrupted
from node.storage.contract import CheckpointRecord, LedgerRecord, StoredEntry
from node.storage.database import connect_sync
from node.storage.sqlite.scan import checkpoint_at_or_before, iter_checkpoints, iter_entries, read_ledgers
from protocol.chain import check_timestamp
from protocol.entry import GENESIS_DIGEST, next_sig_digest, verify_checkpoint, verify_hash_signature
from protocol.errors import BadSignature, InvalidEntry, TimestampDecreasing
from protocol.limits import encode_content

Mode = Literal["fast", "chain", "full"]
Progress = Callable[[int], None]

SPAN_ENTRIES = 50_000  # a span closes at the first checkpoint at least this far from its start
PARALLEL_FROM = 200_000  # below this many entries, worker processes cost more than they save
LISTED_REFUSALS = 100  # entries peers refuse, listed per ledger in a report


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
    # entries whose payload or meta every receiver refuses (signed before that rule was enforced):
    # the chain is intact, but these entries and every later one cannot be replicated or imported
    refused_by_peers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _State:
    seq: int
    hash: bytes | None
    digest: bytes
    timestamp: int  # the entry's at seq (0 before seq 1)


@dataclass(frozen=True, slots=True)
class Plan:
    """How to cut and spread the work (defaults suit production; tests use small spans)."""

    workers: int = 2
    span_entries: int = SPAN_ENTRIES
    parallel_from: int = PARALLEL_FROM


def verify_store(
    db_path: Path, mode: Mode, *, progress: Progress | None = None, plan: Plan = Plan()
) -> list[VerifyReport]:
    """Verify every ledger in the database at ``db_path``; raise StoreCorrupted at the first bad position."""
    conn = connect_sync(db_path, read_only=True)
    try:
        conn.execute("BEGIN")  # the heads and checkpoints read here are one snapshot
        return [_verify_ledger(conn, db_path, ledger, mode, progress, plan) for ledger in read_ledgers(conn)]
    finally:
        conn.close()


def _verify_ledger(
    conn: sqlite3.Connection, db_path: Path, ledger: LedgerRecord, mode: Mode, progress: Progress | None, plan: Plan
) -> VerifyReport:
    started = time.perf_counter()
    lid, head = ledger.ledger_id, ledger.head_seq
    start = _starting_point(conn, ledger, mode)
    spans = _spans(conn, lid, start, head, plan.span_entries)
    full = mode == "full"
    if head - start.seq >= plan.parallel_from and plan.workers > 1 and len(spans) > 1:
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        with ProcessPoolExecutor(max_workers=plan.workers, mp_context=context) as pool:
            jobs: list[Future[_Span]] = [
                pool.submit(_verify_span_in_worker, db_path, ledger, begin, end.seq, full) for begin, end in spans
            ]
            # in span order: the first failing span names the first bad position
            done = [
                _done(job.result(), end.seq - begin.seq, progress)
                for job, (begin, end) in zip(jobs, spans, strict=True)
            ]
    else:
        done = [
            _done(_verify_span(conn, ledger, begin, end.seq, full), end.seq - begin.seq, progress)
            for begin, end in spans
        ]
    last = spans[-1][1] if spans else start
    end = _State(last.seq, last.hash, last.sig_digest if isinstance(last, CheckpointRecord) else last.digest,
                 last.timestamp)  # fmt: skip
    if end.seq < head:
        # entries after the last checkpoint (a replica's head between checkpoints, or a lost
        # checkpoint row): no signed head covers them, so every one of their signatures is checked
        tail = _verify_span(conn, ledger, end, head, full=True)
        done.append(tail)
        end = tail.end
    checkpoints = sum(span.checked for span in done)
    refused = tuple(reason for span in done for reason in span.refused)[:LISTED_REFUSALS]
    if end.seq != head or end.hash != ledger.head_hash or end.digest != ledger.sig_digest:
        raise StoreCorrupted(lid, head, "entries do not end at the recorded head")
    beyond = next(iter_checkpoints(conn, lid, head), None)
    if beyond is not None:
        raise StoreCorrupted(lid, beyond.seq, "checkpoint beyond the head")
    if head > 0:
        _check_head_signature(conn, ledger, head)
    return VerifyReport(
        lid, mode, start.seq, head, head - start.seq, checkpoints, head - start.seq if full else min(head, 1),
        time.perf_counter() - started, refused,
    )  # fmt: skip


def _starting_point(conn: sqlite3.Connection, ledger: LedgerRecord, mode: Mode) -> _State:
    """Genesis, or (fast mode) the last verified checkpoint, itself checked."""
    if mode != "fast" or ledger.verified_seq == 0:
        return _State(0, None, GENESIS_DIGEST, 0)
    cp = checkpoint_at_or_before(conn, ledger.ledger_id, ledger.verified_seq)
    if cp is None or cp.seq != ledger.verified_seq:
        raise StoreCorrupted(ledger.ledger_id, ledger.verified_seq, "verified checkpoint is missing")
    _check_checkpoint_signature(ledger, cp)
    row = next(iter_entries(conn, ledger.ledger_id, cp.seq - 1), None)
    if row is None or row.seq != cp.seq or row.content_hash() != cp.hash or row.hash != cp.hash:
        raise StoreCorrupted(ledger.ledger_id, cp.seq, "entry does not match its verified checkpoint")
    return _State(cp.seq, cp.hash, cp.sig_digest, cp.timestamp)


def _spans(
    conn: sqlite3.Connection, ledger_id: str, start: _State, head: int, span_entries: int
) -> list[tuple[_State, CheckpointRecord]]:
    """Cut (start, head] at checkpoints into spans of about ``span_entries`` entries.

    Each span ends at a checkpoint; the next span starts from that checkpoint's recorded state.
    Entries after the last checkpoint form no span: the head check reports them.
    """
    spans: list[tuple[_State, CheckpointRecord]] = []
    begin = start
    last: CheckpointRecord | None = None
    for cp in iter_checkpoints(conn, ledger_id, start.seq):
        if cp.seq > head:
            break
        last = cp
        if cp.seq - begin.seq >= span_entries:
            spans.append((begin, cp))
            begin, last = _State(cp.seq, cp.hash, cp.sig_digest, cp.timestamp), None
    if last is not None:
        spans.append((begin, last))
    return spans


@dataclass(frozen=True, slots=True)
class _Span:
    checked: int  # checkpoints checked
    end: _State
    refused: tuple[str, ...]  # the first LISTED_REFUSALS entries peers refuse, "seq N: reason"


def _done(span: _Span, entries: int, progress: Progress | None) -> _Span:
    if progress is not None:
        progress(entries)
    return span


def _verify_span_in_worker(db_path: Path, ledger: LedgerRecord, begin: _State, end_seq: int, full: bool) -> _Span:
    conn = connect_sync(db_path, read_only=True)
    try:
        conn.execute("BEGIN")
        return _verify_span(conn, ledger, begin, end_seq, full)
    finally:
        conn.close()


def _verify_span(conn: sqlite3.Connection, ledger: LedgerRecord, begin: _State, end_seq: int, full: bool) -> _Span:
    """Verify the entries (begin.seq, end_seq] and every checkpoint among them."""
    lid, key = ledger.ledger_id, ledger.public_key
    checkpoints = iter_checkpoints(conn, lid, begin.seq)
    next_cp = next(checkpoints, None)
    prev, digest, expected, last_cp, checked = begin.hash, begin.digest, begin.seq + 1, begin.seq, 0
    previous_timestamp = begin.timestamp
    refused: list[str] = []
    for row in _rows(conn, lid, begin.seq, end_seq):
        seq = row.seq
        if seq != expected:
            raise StoreCorrupted(lid, expected, "entry missing")
        if row.prev_hash != prev:
            raise StoreCorrupted(lid, seq, f"prev_hash does not match the hash of seq {seq - 1}")
        computed = row.content_hash()
        if computed != row.hash:
            raise StoreCorrupted(lid, seq, "hash does not match the entry's content")
        if len(refused) < LISTED_REFUSALS and (reason := _refusal(row, previous_timestamp)) is not None:
            refused.append(f"seq {seq}: {reason}")
        previous_timestamp = row.timestamp
        if full and _first_bad_signature(key, [(seq, computed, row.sig)]) is not None:
            raise StoreCorrupted(lid, seq, "signature does not verify")
        digest = next_sig_digest(digest, row.sig)
        if next_cp is not None and next_cp.seq == seq:
            _check_checkpoint(conn, ledger, next_cp, computed, digest, last_cp)
            if next_cp.timestamp != row.timestamp and len(refused) < LISTED_REFUSALS:
                refused.append(f"checkpoint at seq {seq}: timestamp differs from the entry's")
            last_cp, checked = seq, checked + 1
            next_cp = next(checkpoints, None)
        prev = computed
        expected += 1
    if expected - 1 != end_seq:
        raise StoreCorrupted(lid, expected, "entry missing")
    return _Span(checked, _State(end_seq, prev, digest, previous_timestamp), tuple(refused))


# Canonical text of a number beyond ±(2^53-1) has 16 or more digits in a row or an "e+" exponent
# (ECMAScript form); only payloads and metas where this matches (rare) are parsed and checked.
_MAYBE_REFUSED = re.compile(r"[0-9]{16}|e\+")


def _refusal(row: StoredEntry, previous_timestamp: int) -> str | None:
    """Why every receiver refuses this stored entry (its timestamp, payload or meta), or None."""
    try:
        check_timestamp(row.seq, row.timestamp, previous_timestamp)
    except TimestampDecreasing as exc:
        return str(exc).removeprefix(f"seq {row.seq}: ")
    payload, meta = row.payload, row.meta
    if _MAYBE_REFUSED.search(payload) is None and (meta is None or _MAYBE_REFUSED.search(meta) is None):
        return None
    try:
        encode_content(orjson.loads(payload), None if meta is None else orjson.loads(meta))
    except InvalidEntry as exc:
        return str(exc)
    return None


def _rows(conn: sqlite3.Connection, ledger_id: str, after: int, through: int) -> Iterator[StoredEntry]:
    for row in iter_entries(conn, ledger_id, after):
        if row.seq > through:
            return
        yield row


def _check_checkpoint(
    conn: sqlite3.Connection, ledger: LedgerRecord, cp: CheckpointRecord, digest: bytes, sig_digest: bytes, last_cp: int
) -> None:
    _check_checkpoint_signature(ledger, cp)
    if cp.hash != digest:
        raise StoreCorrupted(ledger.ledger_id, cp.seq, "checkpoint hash differs from the entry's")
    if cp.sig_digest != sig_digest:
        # some signature after the previous checkpoint was altered: find which one
        rows = list(_rows(conn, ledger.ledger_id, last_cp, cp.seq))
        bad = _first_bad_signature(ledger.public_key, [(r.seq, r.hash, r.sig) for r in rows])
        raise StoreCorrupted(ledger.ledger_id, bad or cp.seq, "signature does not verify")


def _check_checkpoint_signature(ledger: LedgerRecord, cp: CheckpointRecord) -> None:
    try:
        verify_checkpoint(ledger.public_key, cp.ledger_id, cp.seq, cp.hash, cp.sig_digest, cp.timestamp, cp.sig)
    except BadSignature:
        raise StoreCorrupted(ledger.ledger_id, cp.seq, "checkpoint signature does not verify") from None


def _check_head_signature(conn: sqlite3.Connection, ledger: LedgerRecord, head: int) -> None:
    row = next(_rows(conn, ledger.ledger_id, head - 1, head))
    if _first_bad_signature(ledger.public_key, [(row.seq, row.hash, row.sig)]) is not None:
        raise StoreCorrupted(ledger.ledger_id, head, "signature does not verify")


def _first_bad_signature(public_key: bytes, items: list[tuple[int, bytes, bytes]]) -> int | None:
    for seq, digest, sig in items:
        try:
            verify_hash_signature(public_key, digest, sig)
        except BadSignature:
            return seq
    return None
