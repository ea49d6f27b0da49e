"""Ingesting pages of another ledger into a real store: verbatim, verified, future dates flagged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from node.errors import PeerFailed
from node.keys import load_or_create_key_file
from node.ledger.clock import wall_ms
from node.ledger.service import Ledger
from node.net.client import _json as answer_json
from node.settings import NodeSettings
from node.storage.sqlite import open_sqlite
from protocol.canonical import canonical
from protocol.entry import GENESIS_DIGEST, entry_hash, next_sig_digest, sign_checkpoint, sign_hash
from protocol.errors import ProtocolError, VerificationFailed
from protocol.models import Checkpoint, Entry, EntryDraft, Page
from protocol.signing import KeyPair
from protocol.vectors import DIRECTORY
from protocol.vectors.cases import LEDGER

ORIGIN = KeyPair(bytes([3] * 32))


def chain(timestamps: list[int]) -> tuple[list[Entry], Checkpoint]:
    """A signed chain of ledger 'origin' with the given timestamps, and its head checkpoint."""
    entries, prev, digest = [], None, GENESIS_DIGEST
    for seq, ts in enumerate(timestamps, start=1):
        entry_id = f"01930000-0000-7000-8000-{seq:012d}"
        payload = {"n": seq}
        digest_bytes = entry_hash(
            "origin", seq, entry_id, "s", "t", None, None, None, ts, canonical(payload), None, prev
        )
        sig = sign_hash(ORIGIN, digest_bytes)
        digest = next_sig_digest(digest, sig)
        entries.append(Entry(ledger_id="origin", seq=seq, id=entry_id, stream="s", type="t", timestamp=ts,
                             payload=payload, prev_hash=None if prev is None else prev.hex(),
                             hash=digest_bytes.hex(), sig=sig.hex()))  # fmt: skip
        prev = digest_bytes
    assert prev is not None
    ts = timestamps[-1]
    cp = Checkpoint(ledger_id="origin", seq=len(timestamps), hash=prev.hex(), sig_digest=digest.hex(), timestamp=ts,
                    sig=sign_checkpoint(ORIGIN, "origin", len(timestamps), prev, digest, ts).hex())  # fmt: skip
    return entries, cp


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    settings = NodeSettings(ledger_id="node-b", data_dir=tmp_path)
    async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as opened:
        await opened.pin("origin", ORIGIN.public_key, "operator")
        yield opened


async def test_a_verified_page_is_stored_verbatim(ledger: Ledger) -> None:
    entries, cp = chain([wall_ms() - 1000 + i for i in range(5)])
    result = await ledger.ingest("origin", entries, [cp], peer="node-x", full=False)
    assert (result.accepted, result.head_seq) == (5, 5)
    stored = await ledger.get_by_seq("origin", 3)
    assert stored.hash.hex() == entries[2].hash and stored.sig.hex() == entries[2].sig
    again = await ledger.ingest("origin", entries, [cp], peer="node-x", full=False)
    assert (again.accepted, again.already_held) == (0, 5)


async def test_a_page_with_a_bad_tail_signature_is_refused_whole(ledger: Ledger) -> None:
    entries, _ = chain([wall_ms() + i for i in range(4)])
    forged = entries[:3] + [entries[3].model_copy(update={"sig": entries[2].sig})]
    with pytest.raises(VerificationFailed, match="seq 4"):
        await ledger.ingest("origin", forged, [], peer="node-x", full=False)  # no checkpoint covers them
    assert (await ledger.held("origin")).head_seq == 0  # type: ignore[union-attr]


async def test_entries_dated_far_ahead_are_stored_but_flagged(ledger: Ledger) -> None:
    now = wall_ms()
    entries, cp = chain([now, now + 3_600_000])  # the second one an hour ahead
    await ledger.ingest("origin", entries, [cp], peer="node-x", full=True)
    async with open_sqlite(ledger.settings.db_path) as storage:  # a second connection reads what was committed
        flagged = [c for c in await storage.conflicts.all() if c.kind == "future-timestamp"]
    assert len(flagged) == 1 and (flagged[0].ledger_id, flagged[0].seq) == ("origin", 2)
    (own,) = await ledger.append([EntryDraft(stream="s", type="t", payload={})])
    assert own.timestamp < now + 3_600_000  # our clock did not jump an hour ahead


CHAINS: list[dict[str, Any]] = orjson.loads((DIRECTORY / "chains.json").read_bytes())


@pytest.mark.parametrize("case", [c for c in CHAINS if "page_text" not in c], ids=lambda case: case["name"])
async def test_a_page_gets_the_verdict_of_its_chain_vector(tmp_path: Path, case: dict[str, Any]) -> None:
    settings = NodeSettings(ledger_id="node-b", data_dir=tmp_path)
    async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as opened:
        replicas = opened
        await replicas.pin(LEDGER, bytes.fromhex(case["public_key"]), "operator")
        if case["held"]["seq"]:  # the held state: the first entries of the valid chain, with its checkpoint
            base = Page.model_validate(CHAINS[0]["page"])
            held = case["held"]["seq"]
            prefix = [c for c in base.checkpoints if c.seq == held]
            await replicas.ingest(LEDGER, base.entries[:held], prefix, peer="node-x", full=False)
        page = Page.model_validate(case["page"])
        if case["result"] == "accepted":
            result = await replicas.ingest(LEDGER, page.entries, page.checkpoints, peer="node-x", full=False)
            head = await replicas.held(LEDGER)
            assert head is not None and result.head_seq == case["head"]["seq"]
            assert (head.head_hash.hex(), head.sig_digest.hex()) == (case["head"]["hash"], case["head"]["sig_digest"])  # type: ignore[union-attr]
            return
        with pytest.raises(ProtocolError) as refused:
            await replicas.ingest(LEDGER, page.entries, page.checkpoints, peer="node-x", full=False)
        assert refused.value.code == case["refused"], refused.value
        after = await replicas.held(LEDGER)
        assert after is not None and after.head_seq == case["held"]["seq"]  # the page is refused whole


def test_a_peer_answer_naming_a_member_twice_is_refused() -> None:
    (case,) = [c for c in CHAINS if "page_text" in c]
    with pytest.raises(PeerFailed, match="names a member twice"):
        answer_json("http://peer", case["page_text"].encode())
