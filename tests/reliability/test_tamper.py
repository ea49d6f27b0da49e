"""Tampering at random: one bit of one stored field of one random entry is flipped, and verification
must name exactly that entry. Figures: detection rate and position accuracy over every trial."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from node.errors import StoreCorrupted
from node.keys import load_or_create_key_file
from node.ledger.service import Ledger
from node.ledger.verify import verify_store
from node.settings import NodeSettings
from protocol.models import EntryDraft
from tests.reliability.conftest import record, size

ENTRIES = size(300, 2000)
TRIALS = size(60, 500)
TEXT = ["id", "stream", "type", "issuer_oid", "subject_oid", "key", "payload", "meta"]
BLOBS = ["prev_hash", "hash", "sig"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("pristine")
    settings = NodeSettings(ledger_id="node-a", data_dir=data_dir)

    async def build() -> None:
        async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as ledger:
            for first in range(0, ENTRIES, 50):
                await ledger.append([EntryDraft(stream="s", type="t", payload={"n": first + i, "text": "abc" * 5},
                                                meta={"m": i}, issuer_oid="oid:i", subject_oid=f"oid:s:{i}",
                                                key=f"k{i % 7}") for i in range(50)])  # fmt: skip

    asyncio.run(build())
    return data_dir


def flip(conn: sqlite3.Connection, rng: random.Random) -> tuple[int, str]:
    """Flip one bit of one field of a random entry; (its seq, what was changed)."""
    seq = rng.randint(1, ENTRIES)
    column = rng.choice([*TEXT, *BLOBS, "timestamp"])
    (value,) = conn.execute(f"SELECT {column} FROM entries WHERE seq = ?", (seq,)).fetchone()
    if column == "timestamp":
        new: object = value ^ (1 << rng.randrange(0, 40))
    elif column in BLOBS:
        raw = bytearray(value)
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        new = bytes(raw)
    else:
        raw = bytearray(value.encode())
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(7)  # stays ASCII, so stays valid text
        new = raw.decode()
    conn.execute(f"UPDATE entries SET {column} = ? WHERE seq = ?", (new, seq))
    return seq, column


def test_every_flipped_bit_is_found_at_its_entry(pristine: Path, tmp_path: Path) -> None:
    rng = random.Random(20261122)
    detected = located = 0
    missed = []
    for trial in range(TRIALS):
        data_dir = tmp_path / f"t{trial}"
        shutil.copytree(pristine, data_dir)
        conn = sqlite3.connect(data_dir / "ledger.db")
        seq, column = flip(conn, rng)
        conn.commit()
        conn.close()
        try:
            verify_store(data_dir / "ledger.db", "chain")
            missed.append(f"{column}@{seq}: not detected")
        except StoreCorrupted as exc:
            detected += 1
            located += exc.seq == seq
            if exc.seq != seq:
                missed.append(f"{column}@{seq}: reported at {exc.seq}")
        shutil.rmtree(data_dir)
    record(f"tampering detected ({TRIALS} random bit flips)", f"{100 * detected / TRIALS:.1f}%", "100%")
    record("tampering: position named exactly", f"{100 * located / max(detected, 1):.1f}%", "100%")
    assert not missed, missed[:10]
