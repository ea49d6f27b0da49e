"""``ledger-node import`` verifies by the rules sync applies: the export vectors get their verdict,
ids already held are a verification error, entries after the last checkpoint are taken by their
signatures, limits hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from node.ledger.transfer import import_ledger
from node.storage.contract import Repositories
from node.storage.sqlite import open_sqlite
from protocol.chain import EMPTY
from protocol.errors import ProtocolError
from protocol.signing import KeyPair
from protocol.vectors import DIRECTORY, TEST_SEED
from protocol.vectors.build import checkpoint_of, sign_chain, wire

EXPORTS: list[dict[str, Any]] = orjson.loads((DIRECTORY / "exports.json").read_bytes())
KEYS = KeyPair(TEST_SEED)
LEDGER = "vector-ledger"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Repositories]:
    async with open_sqlite(tmp_path / "ledger.db") as repositories:
        yield repositories


def _lines(case: dict[str, Any]) -> list[bytes]:
    return [line.encode() for line in case["lines"]]


@pytest.mark.parametrize("case", EXPORTS, ids=lambda case: case["name"])
async def test_import_gives_each_export_vector_its_verdict(storage: Repositories, case: dict[str, Any]) -> None:
    if case["result"] == "accepted":
        report = await import_ledger(storage, _lines(case))
        held = await storage.ledgers.get(LEDGER)
        assert held is not None and (report.imported, report.head_seq) == (case["imported"], case["head"]["seq"])
        assert (held.head_hash.hex(), held.sig_digest.hex()) == (case["head"]["hash"], case["head"]["sig_digest"])  # type: ignore[union-attr]
        return
    with pytest.raises(ProtocolError) as refused:
        await import_ledger(storage, _lines(case))
    assert refused.value.code == case["refused"], refused.value
    held = await storage.ledgers.get(LEDGER)
    assert held is not None and held.head_seq == 0  # nothing of a refused file is committed


async def test_entries_after_the_last_checkpoint_are_imported_by_their_signatures(storage: Repositories) -> None:
    (valid,) = [case for case in EXPORTS if case["name"] == "checkpoint-in-the-middle-and-uncovered-tail"]
    assert orjson.loads(valid["lines"][-1]).get("entry", {}).get("seq") == 4  # no checkpoint after it
    report = await import_ledger(storage, _lines(valid))
    assert report.head_seq == 4
    again = await import_ledger(storage, _lines(valid))  # the same file again: held, skipped
    assert (again.imported, again.skipped, again.head_seq) == (0, 4, 4)


async def test_an_id_held_from_an_earlier_import_is_a_verification_error(storage: Repositories) -> None:
    header = orjson.dumps({"format": "ledger-export/1", "ledger_id": LEDGER, "public_key": KEYS.public_key.hex()})
    first = sign_chain(KEYS, LEDGER, [{"id": f"01930000-0000-7000-8000-00000000000{i}", "timestamp": 10 + i,
                                       "payload": {}} for i in (1, 2)])  # fmt: skip
    closing = orjson.dumps({"checkpoint": checkpoint_of(KEYS, first[-1].state, LEDGER).model_dump()})
    await import_ledger(storage, [header, *(orjson.dumps({"entry": wire(s.entry)}) for s in first), closing])
    reused = sign_chain(KEYS, LEDGER, [{"id": first[0].entry.id, "timestamp": 20, "payload": {}}], first[-1].state)
    lines = [header, *(orjson.dumps({"entry": wire(s.entry)}) for s in first + reused),
             orjson.dumps({"checkpoint": checkpoint_of(KEYS, reused[0].state, LEDGER).model_dump()})]  # fmt: skip
    with pytest.raises(ProtocolError) as refused:
        await import_ledger(storage, lines)
    assert refused.value.code == "duplicate-id" and "seq 3" in str(refused.value)
    held = await storage.ledgers.get(LEDGER)
    assert held is not None and held.head_seq == 2


async def test_import_applies_the_limits(storage: Repositories) -> None:
    long_string = sign_chain(KEYS, LEDGER, [{"id": "01930000-0000-7000-8000-000000000001", "timestamp": 1,
                                             "payload": {"s": "x" * 16385}}], EMPTY)  # fmt: skip
    header = orjson.dumps({"format": "ledger-export/1", "ledger_id": LEDGER, "public_key": KEYS.public_key.hex()})
    lines = [header, orjson.dumps({"entry": wire(long_string[0].entry)}),
             orjson.dumps({"checkpoint": checkpoint_of(KEYS, long_string[0].state, LEDGER).model_dump()})]  # fmt: skip
    with pytest.raises(ProtocolError) as refused:
        await import_ledger(storage, lines)
    assert refused.value.code == "limit-exceeded" and "line 2: seq 1: payload.s" in str(refused.value)
