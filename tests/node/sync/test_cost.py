"""What sync costs: an idle round is one heads request answered without a body, nothing is pulled
that is held already, and a ledger is pulled from one peer at a time."""

from __future__ import annotations

import time

import pytest

from node.api.context import METRICS, PAGES, SYNC
from node.errors import NotReady
from protocol.models import Page
from tests.conftest import RunningNode, eventually
from tests.node.sync.test_replication import MakeNode, append, holds, link, start


def served(node: RunningNode, route: str, status: str = "200") -> float:
    """Requests for ``route`` that ``node`` answered with ``status``."""
    return float(node.app[METRICS].http_requests.labels("GET", route, status)._value.get())


async def rounds_since(node: RunningNode, peer: str, since_ms: int) -> bool:
    _, status, _ = await node.request("GET", "/ledger/sync/status")
    return any(p["ledger_id"] == peer and (p["last_success_ms"] or 0) > since_ms for p in status["peers"])


async def test_idle_rounds_cost_one_bodiless_heads_request(make_node: MakeNode) -> None:
    a, b = await start(make_node, "node-a"), await start(make_node, "node-b")  # node-b's ledger stays empty
    await link(a, b)
    await link(b, a)
    await append(a, 5)
    await eventually(lambda: holds(b, "node-a", 5), timeout=10)
    since = time.time_ns() // 1_000_000
    await eventually(lambda: rounds_since(a, "node-b", since), timeout=5)  # both past their first rounds
    await eventually(lambda: rounds_since(b, "node-a", since), timeout=5)
    pulls = served(a, "/ledger/sync/pull") + served(b, "/ledger/sync/pull")
    unchanged = served(a, "/ledger/sync/heads", "304") + served(b, "/ledger/sync/heads", "304")
    for _ in range(3):  # three more rounds each way
        now = time.time_ns() // 1_000_000
        await eventually(lambda now=now: rounds_since(a, "node-b", now), timeout=5)  # type: ignore[misc]
        await eventually(lambda now=now: rounds_since(b, "node-a", now), timeout=5)  # type: ignore[misc]
    assert served(a, "/ledger/sync/pull") + served(b, "/ledger/sync/pull") == pulls  # not even the empty ledger
    assert served(a, "/ledger/sync/heads", "304") + served(b, "/ledger/sync/heads", "304") >= unchanged + 6


async def test_a_ledger_is_pulled_from_one_peer_at_a_time(make_node: MakeNode) -> None:
    """node-c learns node-a's 3,000 entries from node-a and node-b at once (two rounds in flight):
    the pages it pulls carry them once, not once per peer."""
    a, b = await start(make_node, "node-a"), await start(make_node, "node-b")
    await link(a, b)
    await link(b, a)
    await append(a, 3000)
    await eventually(lambda: holds(b, "node-a", 3000), timeout=20)
    before = served(a, "/ledger/sync/pull") + served(b, "/ledger/sync/pull")  # node-b's from node-a
    c = await start(make_node, "node-c", interval_s=3600, live=False, page_size=100, max_concurrency=4)
    await link(a, c, "pull")  # known to node-a and node-b (they serve it), nothing pushed to it
    await link(b, c, "pull")
    await link(c, a, "pull")
    await link(c, b, "pull")
    await eventually(lambda: holds(c, "node-a", 3000), timeout=30)
    pulled = served(a, "/ledger/sync/pull") + served(b, "/ledger/sync/pull") - before
    assert pulled <= 3000 / 100 + 1  # one copy in pages of 100 (and a page that found nothing new)


async def test_a_stopping_node_refuses_pushes_instead_of_storing_them(make_node: MakeNode) -> None:
    """Pushes that arrive on kept-alive connections while the node stops are refused (503), not taken
    into a store that is closing."""
    a, b = await start(make_node, "node-a"), await start(make_node, "node-b")
    await link(b, a)
    b.app[SYNC].close_streams()  # what SIGTERM does first
    page = Page.model_construct(ledger_id="node-a", entries=[], checkpoints=[], public_key=None)
    with pytest.raises(NotReady):
        await b.app[SYNC].receive_push("node-a", page)


async def test_a_page_is_encoded_once_for_every_peer_that_pulls_it_at_one_head(make_node: MakeNode) -> None:
    """node-b and node-c pull node-a's ledger from node-a: the second pull of each page is served from
    the encoded answers (the same bytes); a new head makes new answers."""
    a = await start(make_node, "node-a")
    await append(a, 1500)
    pages = a.app[PAGES]
    b = await start(make_node, "node-b", page_size=500)
    await link(a, b, "pull")
    await link(b, a, "pull")
    await eventually(lambda: holds(b, "node-a", 1500), timeout=20)
    misses, hits = pages.misses, pages.hits
    c = await start(make_node, "node-c", page_size=500)
    await link(a, c, "pull")
    await link(c, a, "pull")
    await eventually(lambda: holds(c, "node-a", 1500), timeout=20)
    assert pages.hits - hits >= 3 and pages.misses - misses <= 1  # node-c's pages were node-b's
    first = await pages.answer("node-a", 0, 500, gzip=True)
    assert first is await pages.answer("node-a", 0, 500, gzip=True)
    await append(a, 1)
    fresh = await pages.answer("node-a", 0, 500, gzip=True)
    assert fresh is not first and fresh.gzipped
