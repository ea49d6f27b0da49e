"""The peer directory is the one list of peers: the sync engine, federation, references and discovery
all see what it holds, and the engine's loops follow its changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from node.api.context import PEERS, REFS, SYNC, TASKS
from protocol.models import Ref
from tests.conftest import RunningNode, draft
from tests.node.sync.test_replication import link

MakeNode = Callable[..., Awaitable[RunningNode]]
QUIET = {"interval_s": 3600, "live": False}


async def federated_peers(node: RunningNode) -> dict[str, Any]:
    status, body, _ = await node.request("GET", "/network/query", params={"subject_oid": "oid:x"})
    assert status == 200, body
    return dict(body["peers"])


async def synced_peers(node: RunningNode) -> list[str]:
    _, body, _ = await node.request("GET", "/ledger/sync/status")
    return [p["ledger_id"] for p in body["peers"]]


async def test_a_peer_added_through_the_admin_api_is_seen_by_every_service_and_removal_stops_its_loop(
    make_node: MakeNode,
) -> None:
    a = await make_node("node-a", sync=QUIET)
    b = await make_node("node-b", sync=QUIET)
    await link(b, a, "push")  # b serves a (it knows a's key)
    status, entry, _ = await b.request("POST", "/ledger/entries", json=draft(1))
    assert status == 201, entry
    ref = Ref(ledger_id="node-b", entry_id=entry["id"], seq=entry["seq"], hash=entry["hash"], type="source")

    await link(a, b, "push")  # pull nothing: b's entry stays at b, so references must ask b for it
    assert a.app[PEERS].is_peer("node-b")
    assert await synced_peers(a) == ["node-b"]
    loop = a.app[TASKS].get("sync:node-b")
    assert loop is not None and loop.state == "running"
    assert "node-b" in await federated_peers(a)  # asked, or listed as untrusted: either way, known
    assert (await a.app[REFS].resolve(ref))[0] == "verified"  # fetched from b and verified

    assert (await a.request("DELETE", "/admin/peers/node-b"))[0] == 204
    assert not a.app[PEERS].is_peer("node-b")
    assert loop.task is not None and loop.task.done()  # the engine stopped the loop
    assert a.app[TASKS].get("sync:node-b") is None and a.app[SYNC].peers() == []
    assert await synced_peers(a) == []
    assert await federated_peers(a) == {}
    assert (await a.app[REFS].resolve(ref))[0] == "pending"  # no peer left to ask; the pin stays
    assert (await a.request("DELETE", "/admin/peers/node-b"))[0] == 404


async def test_the_engine_follows_replacements_and_a_restart_lists_the_saved_peers(make_node: MakeNode) -> None:
    a = await make_node("node-a", sync=QUIET)
    b = await make_node("node-b", sync=QUIET)
    key = bytes.fromhex((await b.request("GET", "/network/info"))[1]["public_key"])
    await a.app[PEERS].add("http://127.0.0.1:9/", "node-b", key, "pull", "bootstrap", pin_source="first-sight")
    first = a.app[TASKS].get("sync:node-b")
    assert first is not None and [p.url for p in a.app[SYNC].peers()] == ["http://127.0.0.1:9/"]

    await a.app[PEERS].add(b.url, "node-b", key, "both", "admin")  # the same id again: replaced
    assert first.task is not None and first.task.done()
    assert [(p.url, p.mode, p.source) for p in a.app[SYNC].peers()] == [(b.url, "both", "admin")]
    assert a.app[TASKS].get("sync:node-b") not in (None, first)

    await a.stop()
    again = await make_node("node-a", sync=QUIET, data_dir=a.settings.data_dir)
    assert [(p.ledger_id, p.url, p.mode, p.source) for p in again.app[PEERS].all()] == [
        ("node-b", b.url, "both", "admin")
    ]
    assert [p.ledger_id for p in again.app[SYNC].peers()] == ["node-b"]
