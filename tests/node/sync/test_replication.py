"""Replication between real nodes on 127.0.0.1: convergence, transitivity, live heads, resume, forks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.conftest import ADMIN_TOKEN, RunningNode, draft, eventually

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAST = {"interval_s": 0.2, "backoff_max_s": 1.0, "timeout_s": 5.0}

MakeNode = Callable[..., Awaitable[RunningNode]]


async def start(make_node: MakeNode, ledger_id: str, **sync: Any) -> RunningNode:
    return await make_node(ledger_id, admin_token=ADMIN_TOKEN, sync={**FAST, **sync})


async def link(a: RunningNode, b: RunningNode, mode: str = "both") -> None:
    """Make ``b`` a peer of ``a`` (through a's admin API)."""
    _, info, _ = await b.request("GET", "/network/info")
    status, body, _ = await a.request("POST", "/admin/peers", headers=AUTH,
                                      json={"url": b.url, "ledger_id": info["ledger_id"],
                                            "public_key": info["public_key"], "mode": mode})  # fmt: skip
    assert status == 201, body


async def holds(node: RunningNode, ledger_id: str, seq: int) -> bool:
    status, _, _ = await node.request("GET", f"/ledger/ledgers/{ledger_id}/entries/{seq}")
    return status == 200


async def append(node: RunningNode, count: int, start: int = 0) -> None:
    for first in range(start, start + count, 1000):
        batch = [draft(i) for i in range(first, min(first + 1000, start + count))]
        status, body, _ = await node.request("POST", "/ledger/entries", json=batch)
        assert status == 201, body


async def test_two_nodes_replicate_each_other(make_node: MakeNode) -> None:
    a, b = await start(make_node, "node-a"), await start(make_node, "node-b")
    await link(a, b)
    await link(b, a)
    await append(a, 2500)
    await append(b, 1200)
    await eventually(lambda: holds(b, "node-a", 2500), timeout=20)
    await eventually(lambda: holds(a, "node-b", 1200), timeout=20)
    _, theirs, _ = await b.request("GET", "/ledger/ledgers/node-a/entries/2500")
    _, ours, _ = await a.request("GET", "/ledger/ledgers/node-a/entries/2500")
    assert theirs == ours  # stored verbatim, never re-signed
    _, page, _ = await b.request("GET", "/ledger/entries", params={"ledger_id": "node-a", "limit": "1000"})
    assert len(page["entries"]) == 1000 and {e["ledger_id"] for e in page["entries"]} == {"node-a"}
    status, report, _ = await b.request("POST", "/admin/verify", params={"mode": "full"}, headers=AUTH)
    assert status == 200 and {r["ledger_id"]: r["through_seq"] for r in report["ledgers"]} == {
        "node-b": 1200,
        "node-a": 2500,
    }
    _, status_body, _ = await b.request("GET", "/ledger/sync/status")
    peer = status_body["peers"][0]
    assert peer["ledger_id"] == "node-a" and peer["last_error"] is None
    assert {x["ledger_id"]: x["pulled_through"] for x in peer["ledgers"]}["node-a"] == 2500


async def test_entries_travel_transitively(make_node: MakeNode) -> None:
    a, b, c = [await start(make_node, name) for name in ("node-a", "node-b", "node-c")]
    await link(a, b)
    await link(b, a)
    await link(b, c)
    await link(c, b)  # no link between a and c
    await append(a, 300)
    await eventually(lambda: holds(c, "node-a", 300), timeout=20)
    await append(c, 10)
    await eventually(lambda: holds(a, "node-c", 10), timeout=20)


async def test_live_heads_propagate_between_polls(make_node: MakeNode) -> None:
    a, b = await start(make_node, "node-a", interval_s=60), await start(make_node, "node-b", interval_s=60)
    await link(b, a, "pull")
    await link(a, b, "pull")  # a must know b's key to serve it (and its stream)
    await append(a, 1)
    await eventually(lambda: holds(b, "node-a", 1), timeout=20)  # b's first round, or its stream
    for i in range(2, 5):
        await append(a, 1, start=i)
        await eventually(lambda i=i: holds(b, "node-a", i), timeout=5)  # far below the 60 s poll


async def test_sync_resumes_after_a_restart(make_node: MakeNode, tmp_path: Path) -> None:
    a = await start(make_node, "node-a")
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, data_dir=tmp_path / "b", sync=FAST)
    await link(b, a, "pull")
    await link(a, b, "pull")  # a serves only nodes it knows
    await append(a, 1500)
    await eventually(lambda: holds(b, "node-a", 1500), timeout=20)
    await b.stop()
    await append(a, 700, start=1500)
    b2 = await make_node("node-b", admin_token=ADMIN_TOKEN, data_dir=tmp_path / "b", sync=FAST)
    await eventually(lambda: holds(b2, "node-a", 2200), timeout=20)  # the saved peer came back with it
    status, report, _ = await b2.request("POST", "/admin/verify", params={"mode": "full"}, headers=AUTH)
    assert status == 200 and {r["ledger_id"]: r["entries"] for r in report["ledgers"]}["node-a"] == 2200


async def test_a_fork_is_kept_as_evidence_and_quarantines_the_ledger(make_node: MakeNode, tmp_path: Path) -> None:
    # two nodes with the same key and ledger id write different histories: equivocation
    honest = await make_node("node-a", admin_token=ADMIN_TOKEN, data_dir=tmp_path / "a1", sync=FAST)
    await append(honest, 5)
    twin_dir = tmp_path / "a2"
    twin_dir.mkdir()
    (twin_dir / "node.key").write_bytes((tmp_path / "a1" / "node.key").read_bytes())
    (twin_dir / "node.key").chmod(0o600)
    twin = await make_node("node-a", admin_token=ADMIN_TOKEN, data_dir=twin_dir, sync=FAST)
    await twin.request("POST", "/ledger/entries", json=[draft(100 + i) for i in range(5)])
    b = await start(make_node, "node-b")
    for origin in (honest, twin):
        await link(origin, b, "pull")
    await link(b, honest, "pull")
    await eventually(lambda: holds(b, "node-a", 5), timeout=20)
    _, info, _ = await twin.request("GET", "/network/info")
    status, _, _ = await b.request("POST", "/admin/peers", headers=AUTH,
                                   json={"url": twin.url, "ledger_id": "node-a", "public_key": info["public_key"],
                                         "mode": "pull"})  # fmt: skip
    assert status == 201

    async def quarantined() -> bool:
        _, found, _ = await b.request("GET", "/admin/conflicts", headers=AUTH)
        return bool(found)

    await eventually(quarantined, timeout=20)
    _, found, _ = await b.request("GET", "/admin/conflicts", headers=AUTH)
    assert found[0]["kind"] == "fork" and found[0]["ledger_id"] == "node-a" and found[0]["status"] == "open"
    evidence = found[0]["evidence"]
    assert evidence["held"]["seq"] == evidence["received"]["seq"]
    assert evidence["held"]["hash"] != evidence["received"]["hash"]
    _, held, _ = await b.request("GET", f"/ledger/ledgers/node-a/entries/{evidence['held']['seq']}")
    assert held["hash"] == evidence["held"]["hash"]  # our copy unchanged
    _, attestations, _ = await b.request("GET", "/network/trust")
    assert [(x["from"], x["to"], x["level"]) for x in attestations] == [("node-b", "node-a", 0.0)]  # trust dropped
