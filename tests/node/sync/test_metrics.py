"""Metrics of the own ledger are not moved by replicated entries."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from tests.conftest import ADMIN_TOKEN, RunningNode, draft, eventually
from tests.node.sync.test_replication import holds, link, start

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

MakeNode = Callable[..., Awaitable[RunningNode]]


async def append(node: RunningNode, count: int) -> None:
    status, body, _ = await node.request("POST", "/ledger/entries", json=[draft(i) for i in range(count)], headers=AUTH)
    assert status == 201, body


async def figure(node: RunningNode, name: str) -> float:
    status, text, _ = await node.request("GET", "/metrics", headers=AUTH)
    assert status == 200
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in /metrics"
    return float(match.group(1))


async def test_a_replica_moves_neither_the_appended_counter_nor_the_head_gauge(make_node: MakeNode) -> None:
    a, b = await start(make_node, "node-a"), await start(make_node, "node-b")
    await append(b, 5)
    await append(a, 3)
    await link(a, b)
    await link(b, a)
    await eventually(lambda: holds(b, "node-a", 3), timeout=10)
    assert await figure(b, "ledger_entries_appended_total") == 5
    assert await figure(b, "ledger_head_seq") == 5
    await append(a, 4)  # a seq 7 on node-a, later than node-b's own head
    await eventually(lambda: holds(b, "node-a", 7), timeout=10)
    assert await figure(b, "ledger_entries_appended_total") == 5
    assert await figure(b, "ledger_head_seq") == 5
    await append(b, 1)
    await eventually(lambda: _is(b, "ledger_head_seq", 6))
    assert await figure(b, "ledger_entries_appended_total") == 6


async def _is(node: RunningNode, name: str, value: float) -> bool:
    return await figure(node, name) == value
