"""Federated queries across real nodes: trust decides who is asked, every remote entry is verified."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web

from protocol.signing import KeyPair
from tests.conftest import ADMIN_TOKEN, RunningNode, draft, eventually

MakeNode = Callable[..., Awaitable[RunningNode]]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUIET = {"interval_s": 3600, "live": False}


async def network(make_node: MakeNode) -> tuple[RunningNode, RunningNode, RunningNode]:
    a, b, c = [await make_node(n, admin_token=ADMIN_TOKEN, sync=QUIET) for n in ("node-a", "node-b", "node-c")]
    for node, n in ((a, 0), (b, 100), (c, 200)):
        batch = [draft(n + i, subject_oid="oid:fed" if i % 2 == 0 else "oid:other") for i in range(6)]
        assert (await node.request("POST", "/ledger/entries", json=batch))[0] == 201
    for other in (b, c):
        await add_peer(a, other.url, await key_of(other), other.settings.ledger_id)
    return a, b, c


async def key_of(node: RunningNode) -> str:
    return str((await node.request("GET", "/network/info"))[1]["public_key"])


async def add_peer(node: RunningNode, url: str, key: str, ledger_id: str, mode: str = "push") -> None:
    body = {"url": url, "ledger_id": ledger_id, "public_key": key, "mode": mode}
    assert (await node.request("POST", "/admin/peers", headers=AUTH, json=body))[0] == 201


async def trust(node: RunningNode, target: str, level: float = 0.9) -> None:
    body = {"to": target, "level": level, "type": "query-only"}
    assert (await node.request("POST", "/admin/trust", headers=AUTH, json=body))[0] == 201


async def query(node: RunningNode, **params: str) -> dict[str, Any]:
    status, body, _ = await node.request("GET", "/network/query", params={"subject_oid": "oid:fed", **params})
    assert status == 200, body
    return dict(body)


async def test_trusted_peers_answer_and_untrusted_ones_are_not_asked(make_node: MakeNode) -> None:
    a, _, _ = await network(make_node)
    await trust(a, "node-b")
    answer = await query(a)
    assert answer["peers"] == {"node-b": answer["peers"]["node-b"], "node-c": {"status": "untrusted"}}
    assert answer["peers"]["node-b"]["status"] == "ok"
    assert sorted({e["ledger_id"] for e in answer["entries"]}) == ["node-a", "node-b"]
    assert len(answer["entries"]) == 6 and all(e["subject_oid"] == "oid:fed" for e in answer["entries"])
    await trust(a, "node-c")
    answer = await query(a, ledgers="node-b,node-c,node-z")
    assert sorted({e["ledger_id"] for e in answer["entries"]}) == ["node-b", "node-c"]
    assert answer["ledgers"]["node-z"] == "unknown"  # no key pinned here: not a trust question
    keys = [(e["timestamp"], e["ledger_id"], e["seq"]) for e in answer["entries"]]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


async def test_pages_follow_the_cursor_without_duplicates(make_node: MakeNode) -> None:
    a, _, _ = await network(make_node)
    await trust(a, "node-b")
    await trust(a, "node-c")
    seen: list[tuple[str, int]] = []
    cursor = None
    for _ in range(20):
        answer = await query(a, limit="2", **({"cursor": cursor} if cursor else {}))
        seen += [(e["ledger_id"], e["seq"]) for e in answer["entries"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 9 and len(set(seen)) == 9


async def page_through(node: RunningNode, limit: int, **params: str) -> list[tuple[str, int]]:
    """Every entry the federated query returns, page by page, until it gives no cursor; each page
    but the last is full, so no empty page is needed to learn that the query is done."""
    seen: list[tuple[str, int]] = []
    cursor = None
    for _ in range(20):
        status, answer, _ = await node.request(
            "GET", "/network/query", params={"limit": str(limit), **params, **({"cursor": cursor} if cursor else {})}
        )
        assert status == 200, answer
        seen += [(e["ledger_id"], e["seq"]) for e in answer["entries"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            return seen
        assert len(answer["entries"]) == limit, answer
    raise AssertionError("the cursor never ended")


async def holds(node: RunningNode, ledger_id: str, seq: int) -> bool:
    return (await node.request("GET", f"/ledger/ledgers/{ledger_id}/entries/{seq}"))[0] == 200


async def append(node: RunningNode, count: int) -> None:
    batch = [draft(i) for i in range(count)]
    assert (await node.request("POST", "/ledger/entries", headers=AUTH, json=batch))[0] == 201


NODE_C = [("node-c", seq) for seq in range(1, 7)]


async def test_the_ledgers_filter_pages_through_local_replicas(make_node: MakeNode) -> None:
    a, c = [await make_node(n, admin_token=ADMIN_TOKEN, sync=QUIET) for n in ("node-a", "node-c")]
    for node in (a, c):  # a's own entries come first in time, so a page taken before filtering has none of c's
        await append(node, 6)
    await add_peer(c, a.url, await key_of(a), "node-a")  # c serves only nodes it knows
    await add_peer(a, c.url, await key_of(c), "node-c", "pull")
    await eventually(lambda: holds(a, "node-c", 6))
    _, answer, _ = await a.request("GET", "/network/query", params={"ledgers": "node-c", "limit": "5"})
    assert [(e["ledger_id"], e["seq"]) for e in answer["entries"]] == NODE_C[:5]
    assert answer["next_cursor"] is not None and answer["ledgers"] == {"node-c": "ok"}
    assert answer["peers"] == {"node-c": {"status": "untrusted"}}  # only the local replicas were read
    for limit in (1, 2, 5, 10):
        assert await page_through(a, limit, ledgers="node-c") == NODE_C
    await trust(a, "node-c")  # now node-c answers too: its copies and the local ones merge without duplicates
    for limit in (1, 2, 5, 10):
        assert await page_through(a, limit, ledgers="node-c") == NODE_C
    _, answer, _ = await a.request("GET", "/network/query", params={"ledgers": "nope,node-c", "limit": "10"})
    assert answer["ledgers"] == {"nope": "unknown", "node-c": "ok"} and len(answer["entries"]) == 6
    _, answer, _ = await a.request("GET", "/network/query", params={"ledgers": "nope"})
    assert answer == {"entries": [], "next_cursor": None, "peers": {}, "ledgers": {"nope": "unknown"}}


async def test_the_ledgers_filter_is_sent_to_the_peers(make_node: MakeNode) -> None:
    a, b, c = [await make_node(n, admin_token=ADMIN_TOKEN, sync=QUIET) for n in ("node-a", "node-b", "node-c")]
    for node in (b, c):  # b's own entries come first in time, before its replicas of c's
        await append(node, 6)
    await add_peer(c, b.url, await key_of(b), "node-b")  # c serves only nodes it knows
    await add_peer(b, c.url, await key_of(c), "node-c", "pull")
    await eventually(lambda: holds(b, "node-c", 6))
    await add_peer(a, c.url, await key_of(c), "node-c")  # pins c's key; a pulls nothing and c is not trusted
    await add_peer(a, b.url, await key_of(b), "node-b")
    _, answer, _ = await a.request("GET", "/network/query", params={"ledgers": "node-c"})
    assert answer["entries"] == [] and answer["ledgers"] == {"node-c": "untrusted"}
    await trust(a, "node-b")  # only b, which holds replicas of c, can answer for node-c
    _, answer, _ = await a.request("GET", "/network/query", params={"ledgers": "node-c", "limit": "5"})
    assert [(e["ledger_id"], e["seq"]) for e in answer["entries"]] == NODE_C[:5] and answer["next_cursor"]
    assert answer["peers"]["node-b"] == {"status": "ok", "entries": 5, "ms": answer["peers"]["node-b"]["ms"]}
    for limit in (1, 2, 5, 10):
        assert await page_through(a, limit, ledgers="node-c") == NODE_C
    assert (await a.request("GET", "/ledger/entries", params={"ledger_id": "node-c"}))[1]["entries"] == []


@asynccontextmanager
async def fake_peer(handler: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/ledger/entries", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_a_hanging_peer_is_reported_within_the_timeout(make_node: MakeNode) -> None:
    a, _, _ = await network(make_node)
    await trust(a, "node-b")

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3)  # far beyond the 300 ms timeout
        return web.json_response({"entries": []})

    async with fake_peer(hang) as url:
        await add_peer(a, url, KeyPair(bytes([5] * 32)).public_key.hex(), "node-slow")
        await trust(a, "node-slow")
        started = time.perf_counter()
        answer = await query(a, timeout_ms="300")
        elapsed = time.perf_counter() - started
    assert answer["peers"]["node-slow"] == {"status": "timeout"} and answer["peers"]["node-b"]["status"] == "ok"
    assert elapsed < 2.0 and {e["ledger_id"] for e in answer["entries"]} == {"node-a", "node-b"}


async def test_a_peer_that_returns_a_forged_entry_is_dropped_whole(make_node: MakeNode) -> None:
    a, b, _ = await network(make_node)
    _, page, _ = await b.request("GET", "/ledger/entries", params={"subject_oid": "oid:fed"})
    forged = copy.deepcopy(page)
    forged["entries"][1]["payload"]["n"] = 999

    async def lie(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(forged), content_type="application/json")

    async def stranger(request: web.Request) -> web.Response:  # entries of a ledger nobody pinned
        other = copy.deepcopy(page)
        for entry in other["entries"]:
            entry["ledger_id"] = "node-q"
        return web.Response(body=orjson.dumps(other), content_type="application/json")

    async with fake_peer(lie) as liar_url, fake_peer(stranger) as stranger_url:
        await add_peer(a, liar_url, KeyPair(bytes([6] * 32)).public_key.hex(), "node-liar")
        await add_peer(a, stranger_url, KeyPair(bytes([7] * 32)).public_key.hex(), "node-odd")
        for peer in ("node-b", "node-liar", "node-odd"):
            await trust(a, peer)
        answer = await query(a)
    assert answer["peers"]["node-liar"]["status"] == "error" and "hash" in answer["peers"]["node-liar"]["detail"]
    assert (
        answer["peers"]["node-odd"]["status"] == "error" and "unknown ledger" in answer["peers"]["node-odd"]["detail"]
    )
    by_seq = {(e["ledger_id"], e["seq"]): e for e in answer["entries"]}
    assert all(e["payload"]["n"] != 999 for e in by_seq.values())  # the forged copy never got in
    assert len([k for k in by_seq if k[0] == "node-b"]) == 3


async def test_a_forged_signature_in_what_would_be_returned_drops_the_peer(make_node: MakeNode) -> None:
    a, _, c = await network(make_node)  # c is a peer of a but not trusted, so only the liar offers c's entries
    _, page, _ = await c.request("GET", "/ledger/entries", params={"subject_oid": "oid:fed"})
    forged = copy.deepcopy(page)
    forged["entries"][0]["sig"] = forged["entries"][1]["sig"]  # the hash still matches the content

    async def lie(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(forged), content_type="application/json")

    async with fake_peer(lie) as url:
        await add_peer(a, url, KeyPair(bytes([8] * 32)).public_key.hex(), "node-liar")
        await trust(a, "node-liar")
        answer = await query(a)
    assert answer["peers"]["node-liar"]["status"] == "error" and "signature" in answer["peers"]["node-liar"]["detail"]
    assert {e["ledger_id"] for e in answer["entries"]} == {"node-a"}


async def test_a_cursor_is_refused_by_a_query_with_other_ledgers_or_filters(make_node: MakeNode) -> None:
    a, _, _ = await network(make_node)
    await trust(a, "node-b")
    first = await query(a, ledgers="node-a,node-b", limit="2")
    cursor = first["next_cursor"]
    assert cursor is not None
    assert (await query(a, ledgers="node-a,node-b", limit="2", cursor=cursor))["entries"]  # the same query goes on
    for other in ({"ledgers": "node-b"}, {"ledgers": "node-a,node-b", "subject_oid": "oid:other"}, {}):
        params = {"subject_oid": "oid:fed", "limit": "2", "cursor": cursor, **other}
        status, problem, _ = await a.request("GET", "/network/query", params=params)
        assert status == 400 and "different query" in problem["detail"], (other, problem)
