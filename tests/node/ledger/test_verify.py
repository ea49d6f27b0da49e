"""Tampering with any stored byte is detected, with the position of the first bad entry."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from node.errors import SchemaTooNew, StoreCorrupted
from node.keys import load_or_create_key_file
from node.ledger.chain import to_checkpoint_record
from node.ledger.service import Ledger
from node.ledger.verify import Plan, verify_store
from node.settings import NodeSettings
from node.storage.contract import StoredEntry
from node.storage.sqlite import open_sqlite
from protocol.models import EntryDraft
from protocol.signing import KeyPair
from protocol.vectors import TEST_SEED
from protocol.vectors.build import checkpoint_of, sign_chain

ENTRIES = 60  # in batches of 10: checkpoints at 10, 20, ... 60


async def build(tmp_path: Path) -> NodeSettings:
    settings = NodeSettings(ledger_id="node-a", data_dir=tmp_path)
    async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as ledger:
        for k in range(ENTRIES // 10):
            await ledger.append(
                [EntryDraft(stream="proofs", type="proof", payload={"n": 10 * k + i}, subject_oid="oid:s")
                 for i in range(10)]
            )  # fmt: skip
    return settings


def flip_byte(column: str, seq: int, offset: int = 5) -> Callable[[sqlite3.Connection], None]:
    def tamper(conn: sqlite3.Connection) -> None:
        (value,) = conn.execute(f"SELECT {column} FROM entries WHERE seq = ?", (seq,)).fetchone()
        raw = bytearray(value.encode() if isinstance(value, str) else value)
        raw[offset] ^= 0x01
        new = raw.decode() if isinstance(value, str) else bytes(raw)
        conn.execute(f"UPDATE entries SET {column} = ? WHERE seq = ?", (new, seq))

    return tamper


def sql(statement: str) -> Callable[[sqlite3.Connection], None]:
    return lambda conn: conn.execute(statement)


def swap(a: int, b: int) -> Callable[[sqlite3.Connection], None]:
    def tamper(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE entries SET seq = -1 WHERE seq = ?", (a,))
        conn.execute("UPDATE entries SET seq = ? WHERE seq = ?", (a, b))
        conn.execute("UPDATE entries SET seq = ? WHERE seq = -1", (b,))

    return tamper


CASES = {
    "payload byte": (flip_byte("payload", 17, 2), 17),
    "hash": (flip_byte("hash", 20), 20),
    "signature": (flip_byte("sig", 23, 40), 23),
    "prev_hash": (flip_byte("prev_hash", 30), 30),
    "indexed column": (sql("UPDATE entries SET subject_oid = 'oid:other' WHERE seq = 33"), 33),
    "timestamp": (sql("UPDATE entries SET timestamp = timestamp + 1 WHERE seq = 34"), 34),
    "entry id": (sql("UPDATE entries SET id = '01930000-0000-7000-8000-000000000000' WHERE seq = 35"), 35),
    "deleted row": (sql("DELETE FROM entries WHERE seq = 12"), 12),
    "deleted head": (sql("DELETE FROM entries WHERE seq = 60"), 60),
    "swapped rows": (swap(40, 41), 40),
    "first entry": (flip_byte("payload", 1, 2), 1),
    "checkpoint signature": (sql("UPDATE checkpoints SET sig = zeroblob(64) WHERE seq = 50"), 50),
    "checkpoint digest": (sql("UPDATE checkpoints SET sig_digest = zeroblob(32) WHERE seq = 40"), 40),
}


PLANS = {
    "chain": ("chain", Plan()),
    "full": ("full", Plan()),
    "parallel": ("chain", Plan(workers=2, span_entries=20, parallel_from=0)),  # 3 spans on 2 processes
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("how", PLANS)
async def test_tampering_is_detected_at_its_position(tmp_path: Path, case: str, how: str) -> None:
    settings = await build(tmp_path)
    tamper, seq = CASES[case]
    conn = sqlite3.connect(settings.db_path)
    tamper(conn)
    conn.commit()
    conn.close()
    mode, plan = PLANS[how]
    with pytest.raises(StoreCorrupted) as caught:
        verify_store(settings.db_path, mode, plan=plan)  # type: ignore[arg-type]
    assert (caught.value.ledger_id, caught.value.seq) == ("node-a", seq), str(caught.value)


async def test_an_intact_store_verifies_in_every_mode(tmp_path: Path) -> None:
    settings = await build(tmp_path)
    for mode in ("fast", "chain", "full"):
        (report,) = verify_store(settings.db_path, mode)  # type: ignore[arg-type]
        assert report.through_seq == ENTRIES
    (full,) = verify_store(settings.db_path, "full")
    assert full.signatures == ENTRIES and full.checkpoints == ENTRIES // 10
    (parallel,) = verify_store(settings.db_path, "full", plan=PLANS["parallel"][1])
    assert parallel.signatures == ENTRIES and parallel.checkpoints == ENTRIES // 10


async def test_a_node_refuses_to_open_a_tampered_store(tmp_path: Path) -> None:
    settings = await build(tmp_path)
    flip_byte("payload", 44, 2)(conn := sqlite3.connect(settings.db_path))
    conn.commit()
    with pytest.raises(StoreCorrupted, match="ledger node-a seq 44"):
        async with Ledger.open(settings, load_or_create_key_file(settings.key_path)):
            pass


async def test_fast_start_checks_only_what_came_after_the_last_verification(tmp_path: Path) -> None:
    settings = await build(tmp_path)  # opening verified nothing yet; the chain check on next open records 60
    keys = load_or_create_key_file(settings.key_path)
    async with Ledger.open(settings, keys, verify="chain") as ledger:
        await ledger.append([EntryDraft(stream="proofs", type="proof", payload={"late": i}) for i in range(5)])
    conn = sqlite3.connect(settings.db_path)
    flip_byte("payload", 63, 2)(conn)  # after the verified checkpoint at 60: fast start sees it
    conn.commit()
    with pytest.raises(StoreCorrupted, match="seq 63"):
        async with Ledger.open(settings, keys, verify="fast"):
            pass


async def test_entries_after_the_last_checkpoint_are_checked_by_their_signatures(tmp_path: Path) -> None:
    settings = await build(tmp_path)
    conn = sqlite3.connect(settings.db_path)
    conn.execute("DELETE FROM checkpoints WHERE seq = 60")  # as a replica held between checkpoints
    conn.commit()
    (report,) = verify_store(settings.db_path, "chain")
    assert report.through_seq == ENTRIES
    flip_byte("sig", 57, 3)(conn)
    conn.execute("UPDATE ledgers SET sig_digest = ?", (bytes(32),))
    conn.commit()
    with pytest.raises(StoreCorrupted, match="seq 57: signature does not verify"):
        verify_store(settings.db_path, "chain")


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    settings = await build(tmp_path)
    conn = sqlite3.connect(settings.db_path)
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)")
    conn.commit()
    with pytest.raises(SchemaTooNew, match="schema version 99 is newer than this node supports"):
        async with Ledger.open(settings, load_or_create_key_file(settings.key_path)):
            pass


async def test_a_stored_chain_a_receiver_refuses_is_listed_by_verify(tmp_path: Path) -> None:
    """Decreasing timestamps and a checkpoint dated otherwise than its entry are validly signed, so
    the store is intact, but no receiver accepts them: verify lists them, as it lists numbers."""
    keys = KeyPair(TEST_SEED)
    drafts = [{"id": f"01930000-0000-7000-8000-00000000000{i}", "timestamp": ts, "payload": {}}
              for i, ts in ((1, 50), (2, 40), (3, 60))]  # fmt: skip
    signed = sign_chain(keys, "vector-ledger", drafts)
    middle = checkpoint_of(keys, signed[1].state, "vector-ledger", timestamp=99)
    head = checkpoint_of(keys, signed[2].state, "vector-ledger")
    rows = [StoredEntry(*s.content_args[:9], s.content_args[9].decode(), None, s.content_args[11], s.state.hash,
                        bytes.fromhex(s.entry.sig)) for s in signed]  # fmt: skip
    settings = NodeSettings(ledger_id="node-a", data_dir=tmp_path)
    async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as ledger:
        await ledger.pin("vector-ledger", keys.public_key, "operator")
        # written as an older node stored them, past the receiver's checks (through a second connection)
        async with open_sqlite(settings.db_path) as storage:
            checkpoints = [to_checkpoint_record(middle), to_checkpoint_record(head)]
            counts = {("stream", "s"): 3, ("type", "t"): 3}
            await storage.entries.commit(rows, checkpoints, counts, sig_digest=signed[2].state.digest)
        reports = {report.ledger_id: report for report in await ledger.verify("full")}
    assert reports["vector-ledger"].refused_by_peers == (
        "seq 2: timestamp 40 is lower than the previous entry's 50",
        "checkpoint at seq 2: timestamp differs from the entry's",
    )
