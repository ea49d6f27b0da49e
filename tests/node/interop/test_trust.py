"""The trust graph: signed attestations, best paths with bounded depth, expiry, gating of sync."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from node.errors import IdentityConflict
from node.interop.trust import TrustGraph
from node.keys import load_or_create_key_file
from node.ledger.service import Ledger
from node.settings import NodeSettings, TrustSettings
from node.storage.sqlite import open_sqlite
from protocol.errors import BadSignature
from protocol.signing import KeyPair
from protocol.trust import QUERY_TYPES, SYNC_TYPES, attest
from tests.conftest import ADMIN_TOKEN, RunningNode, draft, eventually
from tests.node.sync.test_replication import FAST, link

MakeNode = Callable[..., Awaitable[RunningNode]]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEYS = {name: KeyPair(bytes([i + 1] * 32)) for i, name in enumerate(["n1", "n2", "n3", "n4", "n5", "n6"])}


class Clock:
    now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def graph(tmp_path: Path) -> AsyncIterator[tuple[TrustGraph, Clock]]:
    settings = NodeSettings(ledger_id="me", data_dir=tmp_path)
    async with (
        open_sqlite(settings.db_path) as storage,
        Ledger.open(settings, load_or_create_key_file(settings.key_path), storage=storage) as ledger,
    ):
        for name, keys in KEYS.items():
            await ledger.pin(name, keys.public_key, "operator")
        clock = Clock()
        trust = TrustGraph(ledger, TrustSettings(max_depth=3), storage.trust, clock)
        await trust.load()
        yield trust, clock


def edge(source: str, target: str, level: float, type_: str = "full", expires: int = 10**12, at: int = 1) -> object:
    return attest(KEYS[source], source, target, level, type_, expires, at).wire()


async def test_best_path_is_the_best_product_within_the_depth_bound(graph: tuple[TrustGraph, Clock]) -> None:
    trust, _ = graph
    await trust.attest("n1", 0.9, "full")
    await trust.attest("n2", 0.5, "full")
    counts = await trust.add_many([edge("n1", "n3", 0.9), edge("n2", "n3", 1.0), edge("n3", "n4", 0.8),
                                   edge("n4", "n5", 1.0)])  # fmt: skip
    assert counts == {"kept": 4, "old": 0, "refused": 0, "refusals": []}
    score, path = trust.score("me", "n3", SYNC_TYPES)
    assert path == ["me", "n1", "n3"] and score == pytest.approx(0.81)
    assert trust.score("me", "n4", SYNC_TYPES) == (pytest.approx(0.648), ["me", "n1", "n3", "n4"])
    assert trust.score("me", "n5", SYNC_TYPES) == (0.0, [])  # four edges away, depth is 3


async def test_types_expiry_revocation_and_refusals(graph: tuple[TrustGraph, Clock]) -> None:
    trust, clock = graph
    await trust.attest("n1", 1.0, "query-only")
    assert trust.score("me", "n1", SYNC_TYPES)[0] == 0 and trust.score("me", "n1", QUERY_TYPES)[0] == 1
    await trust.attest("n2", 0.7, "sync-only", expires_at=clock.now + 1000)
    assert trust.score("me", "n2", SYNC_TYPES)[0] == pytest.approx(0.7)
    clock.now += 1001  # expired edges count as absent (the cached score is dropped)
    assert trust.score("me", "n2", SYNC_TYPES)[0] == 0
    await trust.attest("n1", 0.0, "full")  # a newer attestation revokes
    assert trust.score("me", "n1", QUERY_TYPES)[0] == 0
    assert (await trust.add_many([edge("n3", "n4", 0.5, at=5)]))["kept"] == 1
    assert (await trust.add_many([edge("n3", "n4", 0.9, at=4)]))["old"] == 1  # older than the one held
    stranger = attest(KeyPair(bytes([99] * 32)), "zz", "n1", 1.0, "full", 10**12, 1)
    with pytest.raises(IdentityConflict):
        await trust.add(stranger)
    forged = attest(KeyPair(bytes([99] * 32)), "n3", "n1", 1.0, "full", 10**12, 9)
    with pytest.raises(BadSignature):
        await trust.add(forged)
    bad = [{**edge("n3", "n5", 0.5), "level": 1.5}, {"from": "n3"}, edge("n4", "n5", 0.5)]
    answer = await trust.add_many(bad)
    assert {k: answer[k] for k in ("kept", "old", "refused")} == {"kept": 1, "old": 0, "refused": 2}
    assert [(r["index"], r["reason"].split(":")[0]) for r in answer["refusals"]] == [(0, "level"), (1, "to")]


async def test_trust_gates_sync_and_a_revocation_stops_it(make_node: MakeNode) -> None:
    gated = {"required": True, "sync_threshold": 0.5}
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, trust=gated)
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST, trust=gated)
    await link(a, b)
    await link(b, a)
    await a.request("POST", "/ledger/entries", json=[draft(i) for i in range(5)])

    async def state_of_peer(node: RunningNode, peer: str) -> str:
        _, status, _ = await node.request("GET", "/ledger/sync/status")
        return str(next(p["state"] for p in status["peers"] if p["ledger_id"] == peer))

    await eventually(lambda: _equals(state_of_peer(b, "node-a"), "untrusted"), timeout=10)
    assert (await b.request("GET", "/ledger/ledgers/node-a/entries/1"))[0] == 404
    for node, other in ((a, "node-b"), (b, "node-a")):
        status, _, _ = await node.request("POST", "/admin/trust", headers=AUTH, json={"to": other, "level": 0.9})
        assert status == 201
    await eventually(lambda: _status(b, "/ledger/ledgers/node-a/entries/5", 200), timeout=15)
    await b.request("POST", "/admin/trust", headers=AUTH, json={"to": "node-a", "revoke": True})
    await a.request("POST", "/ledger/entries", json=[draft(i) for i in range(5, 8)])
    await eventually(lambda: _equals(state_of_peer(b, "node-a"), "untrusted"), timeout=10)
    assert (await b.request("GET", "/ledger/ledgers/node-a/entries/8"))[0] == 404
    _, path, _ = await b.request("GET", "/network/trust/path", params={"to": "node-a"})
    assert path["score"] == 0 and path["path"] == []


async def _equals(value: Awaitable[str], wanted: str) -> bool:
    return await value == wanted


async def _status(node: RunningNode, path: str, wanted: int) -> bool:
    return (await node.request("GET", path))[0] == wanted


async def test_attestations_are_shared_and_topology_exports(make_node: MakeNode) -> None:
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    await link(b, a)
    await link(a, b)
    status, att, _ = await a.request("POST", "/admin/trust", headers=AUTH, json={"to": "node-b", "level": 0.6,
                                                                                  "type": "partial"})  # fmt: skip
    assert status == 201 and att["from"] == "node-a"
    _, shared, _ = await a.request("GET", "/network/trust")
    _, counts, _ = await b.request("POST", "/admin/trust/attestations", headers=AUTH, json=shared)
    assert counts == {"kept": 1, "old": 0, "refused": 0, "refusals": []}  # verified with a's pinned key
    _, path, _ = await b.request("GET", "/network/trust/path", params={"from": "node-a", "to": "node-b"})
    assert path["score"] == pytest.approx(0.6) and path["path"] == ["node-a", "node-b"]
    for fmt, ctype, needle in (("json", "application/json", '"node-b"'),
                               ("graphml", "application/graphml+xml", "<graphml"),
                               ("dot", "text/vnd.graphviz", '"node-a" -> "node-b"')):  # fmt: skip
        status, body, got = await a.request("GET", "/network/topology", params={"format": fmt})
        text = body if isinstance(body, str) else json.dumps(body)
        assert status == 200 and got == ctype and needle in text
    for bad in ({"to": "node-b", "level": 1.5}, {"to": "node-b", "type": "everything"}, {"to": "node-a"}):
        assert (await a.request("POST", "/admin/trust", headers=AUTH, json=bad))[0] in (400, 422)
