"""The append path against a real SQLite file: group commit, atomicity, failures, hooks."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import pytest

from node.errors import AppendRejected, BatchTooLarge, DuplicateEntry, StorageError
from node.keys import load_or_create_key_file
from node.ledger.clock import HybridClock
from node.ledger.service import Ledger
from node.settings import NodeSettings
from node.storage.contract import Filters, StoredEntry
from protocol.entry import verify_hash_signature
from protocol.errors import LimitExceeded, NotCanonical
from protocol.models import EntryDraft
from tests.conftest import eventually


def drafts(n: int, start: int = 0, **fields: object) -> list[EntryDraft]:
    return [EntryDraft(stream="proofs", type="proof", payload={"n": start + i}, **fields) for i in range(n)]  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> NodeSettings:
    return NodeSettings(ledger_id="node-a", data_dir=tmp_path)


@pytest.fixture
async def ledger(settings: NodeSettings) -> AsyncIterator[Ledger]:
    async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as opened:
        yield opened


async def test_concurrent_appends_form_one_gap_free_chain(ledger: Ledger) -> None:
    results = await asyncio.gather(*(ledger.append(drafts(25, start=100 * k)) for k in range(40)))
    seqs = sorted(row.seq for rows in results for row in rows)
    assert seqs == list(range(1, 1001))
    for rows in results:  # a batch is contiguous and in submission order
        assert [r.seq for r in rows] == list(range(rows[0].seq, rows[0].seq + 25))
        payloads = [orjson.loads(r.payload)["n"] for r in rows]
        assert payloads == list(range(payloads[0], payloads[0] + 25))
    checkpoints = sqlite3.connect(ledger.settings.db_path).execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    assert checkpoints < 40, "concurrent appends should have been group-committed"
    reports = await ledger.verify("full")
    assert reports[0].through_seq == 1000


async def test_every_entry_is_signed_and_linked(ledger: Ledger) -> None:
    rows = await ledger.append(drafts(50))
    previous = None
    for row in rows:
        assert row.content_hash() == row.hash
        assert row.prev_hash == previous
        verify_hash_signature(ledger.keys.public_key, row.hash, row.sig)
        previous = row.hash


async def test_batch_with_one_bad_entry_writes_nothing(ledger: Ledger) -> None:
    await ledger.append(drafts(3))
    bad = drafts(2) + [EntryDraft(stream="proofs", type="proof", payload={"x": float("nan")})]
    with pytest.raises(NotCanonical, match=r"entries\[2\]\.payload\.x"):
        await ledger.append(bad)
    assert ledger.head.head_seq == 3


async def test_oversized_payload_and_batch_are_refused(ledger: Ledger) -> None:
    with pytest.raises(LimitExceeded, match="payload and meta are"):
        await ledger.append([EntryDraft(stream="s", type="t", payload={"a": "x" * 16000, "b": ["y" * 16000] * 4})])
    with pytest.raises(BatchTooLarge, match="exceeds 1000"):
        await ledger.append(drafts(1001))
    assert ledger.head.head_seq == 0


async def test_duplicate_ids_are_refused(ledger: Ledger) -> None:
    entry_id = "01930000-0000-7000-8000-0000000000aa"
    await ledger.append(drafts(1, id=entry_id))
    with pytest.raises(DuplicateEntry):
        await ledger.append(drafts(1, id=entry_id))
    twice = [EntryDraft(stream="s", type="t", payload={}, id="01930000-0000-7000-8000-0000000000bb")] * 2
    with pytest.raises(DuplicateEntry):
        await ledger.append(twice)
    assert ledger.head.head_seq == 1


async def test_a_failed_commit_fails_its_callers_and_the_chain_continues(ledger: Ledger) -> None:
    conn = sqlite3.connect(ledger.settings.db_path)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.payload LIKE '%boom%'"
        " BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END"
    )
    conn.commit()
    await ledger.append(drafts(5))
    boom = [EntryDraft(stream="proofs", type="proof", payload={"boom": True})]
    outcomes = await asyncio.gather(
        ledger.append(drafts(10, start=10)), ledger.append(boom), ledger.append(drafts(10, start=30)),
        return_exceptions=True,
    )  # fmt: skip
    assert any(isinstance(o, StorageError) for o in outcomes)
    committed = sum(len(o) for o in outcomes if isinstance(o, list))
    assert ledger.head.head_seq == 5 + committed
    conn.execute("DROP TRIGGER refuse")
    conn.commit()
    rows = await ledger.append(drafts(3, start=50))
    assert rows[-1].seq == ledger.head.head_seq == 8 + committed
    await ledger.verify("full")


async def test_hooks_reject_and_observe_in_commit_order(ledger: Ledger) -> None:
    seen: list[int] = []

    async def refuse_secret(batch: Sequence[EntryDraft]) -> str | None:
        return "secret stream is closed" if any(d.stream == "secret" for d in batch) else None

    async def observe(rows: Sequence[StoredEntry]) -> None:
        seen.extend(row.seq for row in rows)

    ledger.hooks.before_append.append(refuse_secret)
    ledger.hooks.after_append.append(observe)
    with pytest.raises(AppendRejected, match="secret stream is closed"):
        await ledger.append([EntryDraft(stream="secret", type="t", payload={})])
    await asyncio.gather(*(ledger.append(drafts(3)) for _ in range(5)))
    await eventually(lambda: len(seen) == 15, timeout=5)  # notifications come off the write path
    assert seen == list(range(1, 16))


async def test_query_pages_with_cursors_in_both_orders(ledger: Ledger) -> None:
    for k in range(5):
        await ledger.append(drafts(9, start=10 * k, subject_oid="oid:s:1"))
    await ledger.append(drafts(5, subject_oid="oid:s:2"))
    for order in ("asc", "desc"):
        got: list[int] = []
        cursor = None
        while True:
            page = await ledger.query(Filters(subject_oid="oid:s:1"), order=order, limit=4, cursor=cursor)  # type: ignore[arg-type]
            got.extend(row.seq for row in page.rows)
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = list(range(1, 46))
        assert got == (expected if order == "asc" else expected[::-1])


def test_hybrid_clock_never_goes_back() -> None:
    wall = iter([1000, 900, 950, 1200])
    clock = HybridClock(0, wall=lambda: next(wall))
    assert [clock.now(), clock.now(), clock.now()] == [1000, 1000, 1000]
    clock.observe(1100)
    assert clock.now() == 1200


async def test_reopen_keeps_the_head_and_continues_the_chain(settings: NodeSettings) -> None:
    keys = load_or_create_key_file(settings.key_path)
    async with Ledger.open(settings, keys) as first:
        await first.append(drafts(10))
        head = first.head
    async with Ledger.open(settings, keys) as second:
        assert second.head.head_seq == 10 and second.head.head_hash == head.head_hash
        rows = await second.append(drafts(1))
        assert rows[0].seq == 11 and rows[0].prev_hash == head.head_hash
        assert rows[0].timestamp >= head.last_timestamp
