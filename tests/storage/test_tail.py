"""The in-memory tail against an oracle: random commits, lookups and indexer drops, in any order."""

from __future__ import annotations

import random

import pytest

from node.storage.contract import Filters
from node.storage.tail import Tail, TailKey
from tests.storage.contract import chain, matches

LEDGERS = ("node-a", "node-b", "node-c")


@pytest.mark.parametrize("seed", range(12))
def test_the_tail_answers_like_a_scan_of_what_it_holds(seed: int) -> None:
    rng = random.Random(seed)
    full = {lid: chain(lid, 1, 400, ts=rng.randrange(0, 50)) for lid in LEDGERS}
    committed = dict.fromkeys(LEDGERS, 0)  # seq committed through
    indexed = dict.fromkeys(LEDGERS, 0)  # seq dropped through
    tail = Tail()
    for _ in range(150):
        lid = rng.choice(LEDGERS)
        action = rng.random()
        if action < 0.4 and committed[lid] < 400:
            count = rng.randint(1, 30)
            segment = full[lid][committed[lid] : committed[lid] + count]
            tail.add([TailKey.of(e) for e in segment])
            committed[lid] += len(segment)
        elif action < 0.6:
            through = rng.randint(indexed[lid], committed[lid])
            tail.drop(lid, through)
            indexed[lid] = through
        held = [e for x in LEDGERS for e in full[x][indexed[x] : committed[x]]]
        held.sort(key=lambda e: (e.timestamp, e.ledger_id, e.seq))
        assert tail.size == len(held)
        filters = rng.choice([
            Filters(), Filters(stream="even"), Filters(ledger_id=lid, type="three"),
            Filters(key="key-1", issuer_oid="issuer-1"), Filters(subject_oid=f"subject-{rng.randrange(1, 60)}"),
            Filters(ledgers=("node-a", "node-c"), since=rng.randrange(0, 200), until=rng.randrange(100, 400)),
        ])  # fmt: skip
        descending = rng.random() < 0.5
        expected = [e for e in held if matches(e, filters)][:: -1 if descending else 1]
        cursor = expected[len(expected) // 3] if expected and rng.random() < 0.5 else None
        after = None if cursor is None else (cursor.timestamp, cursor.ledger_id, cursor.seq)
        if cursor is not None:
            expected = expected[expected.index(cursor) + 1 :]
        limit = rng.randint(1, 40)
        got = tail.match(filters, descending=descending, after=after, limit=limit)
        assert [(k.ledger_id, k.seq) for k in got] == [(e.ledger_id, e.seq) for e in expected[:limit]]
        if held:
            probe = rng.choice(held)
            assert tail.by_hash(probe.hash) == TailKey.of(probe)
        assert {(k.ledger_id, k.seq) for k in tail.keyed("key-2")} == {
            (e.ledger_id, e.seq) for e in held if e.key == "key-2"}  # fmt: skip
    tail.drop("node-a")
    assert tail.lag("node-a") == 0 and tail.by_hash(full["node-a"][0].hash) is None
