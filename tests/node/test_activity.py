"""What the node is doing right now: a verification and a sync are listed, with their size and progress,
while they run, in /admin/status and the console's snapshot, and are gone when they end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from node.api.console import FEED
from node.api.context import LEDGER
from protocol.models import EntryDraft
from tests.conftest import RunningNode, eventually


async def fill(node: RunningNode, count: int) -> None:
    for start in range(0, count, 1000):
        await node.app[LEDGER].append(
            [EntryDraft(stream="s", type="t", payload={"n": i}) for i in range(start, start + 1000)]
        )


async def test_a_running_verification_is_listed_with_its_size(make_node: Callable[..., Awaitable[RunningNode]]) -> None:
    node = await make_node("node-a")
    await fill(node, 20_000)
    seen: list[dict[str, Any]] = []

    async def listed() -> bool:
        status, body, _ = await node.request("GET", "/admin/status")
        assert status == 200, body
        seen.extend(a for a in body["activities"] if a["kind"] == "verify")
        return bool(seen)

    verifying = asyncio.create_task(node.request("POST", "/admin/verify?mode=full"))
    await eventually(listed, timeout=20, interval=0.005)
    activity = seen[0]
    assert activity["total"] == 20_000 and 0 <= activity["done"] <= 20_000 and activity["target"].startswith("full")
    status, body, _ = await verifying
    assert status == 200 and body["ok"], body
    status, body, _ = await node.request("GET", "/admin/status")
    assert body["activities"] == []
    snapshot = await node.app[FEED].snapshot()
    assert snapshot["activities"] == [] and snapshot["conflicts"] == []


async def test_the_index_lag_is_reported_until_the_indexer_catches_up(
    make_node: Callable[..., Awaitable[RunningNode]],
) -> None:
    node = await make_node("node-a")
    ledger = node.app[LEDGER]
    await ledger.append([EntryDraft(stream="s", type="t", payload={"n": i}) for i in range(500)])
    lag = ledger.index_lag()  # no await since the append: the indexer has not run
    assert lag == 500  # below the indexer's batch: it waits for more first
    status, body, _ = await node.request("GET", "/admin/status")
    assert 0 <= body["index_lag_entries"] <= lag
    await eventually(lambda: ledger.index_lag() == 0)
    status, body, _ = await node.request("GET", "/admin/status")
    assert body["index_lag_entries"] == 0 and (await node.app[FEED].snapshot())["node"]["index_lag_entries"] == 0
    status, text, _ = await node.request("GET", "/metrics")
    assert "ledger_index_lag_entries 0.0" in str(text)


async def test_a_running_sync_is_listed_with_its_progress(make_node: Callable[..., Awaitable[RunningNode]]) -> None:
    a = await make_node("node-a")
    for start in range(0, 20_000, 1000):
        await a.app[LEDGER].append(
            [EntryDraft(stream="s", type="t", payload={"n": i}) for i in range(start, start + 1000)]
        )
    b = await make_node("node-b", sync={"page_size": 100, "interval_s": 0.2})
    await link(b, a)  # b pulls a's 20,000 entries, a hundred at a time
    await link(a, b)
    seen: list[dict[str, Any]] = []

    async def listed() -> bool:
        status, body, _ = await b.request("GET", "/admin/status")
        seen.extend(x for x in body["activities"] if x["kind"] == "sync" and 0 < x["done"] < x["total"])
        return bool(seen)

    await eventually(listed, timeout=30, interval=0.005)
    assert seen[0]["total"] == 20_000 and seen[0]["target"].startswith("node-a from node-a")
    assert 0 < seen[0]["progress"] < 1

    async def done() -> bool:
        status, body, _ = await b.request("GET", "/admin/status")
        held = {x["ledger_id"]: x["head_seq"] for x in body["ledgers"]}
        return held.get("node-a") == 20_000 and not body["activities"]

    await eventually(done, timeout=60)


async def link(a: RunningNode, b: RunningNode) -> None:
    """Make ``b`` a peer of ``a`` (through a's admin API)."""
    _, info, _ = await b.request("GET", "/network/info")
    status, body, _ = await a.request("POST", "/admin/peers", json={
        "url": b.url, "ledger_id": info["ledger_id"], "public_key": info["public_key"], "mode": "pull"})  # fmt: skip
    assert status == 201, body
