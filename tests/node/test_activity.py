"""What the node is doing right now: a verification is listed, with its size, while it runs, in
/admin/status and the console's snapshot, and is gone when it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from node.api.console import FEED
from node.api.context import LEDGER
from protocol.models import EntryDraft
from tests.conftest import RunningNode, eventually


async def test_a_running_verification_is_listed_with_its_size(make_node: Callable[..., Awaitable[RunningNode]]) -> None:
    node = await make_node("node-a")
    ledger = node.app[LEDGER]
    for start in range(0, 20_000, 1000):
        await ledger.append([EntryDraft(stream="s", type="t", payload={"n": i}) for i in range(start, start + 1000)])
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
    assert body["activities"] == [] and body["index_lag_entries"] == 0
    snapshot = await node.app[FEED].snapshot()
    assert snapshot["activities"] == [] and snapshot["conflicts"] == [] and snapshot["node"]["index_lag_entries"] == 0
