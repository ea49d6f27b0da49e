"""A peer that lies: every lie is refused with its reason, nothing of it is stored, the peer backs off."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from node.api.context import SYNC
from node.keys import load_key_file
from node.ledger.clock import wall_ms
from protocol.requests import sign_request
from protocol.signing import KeyPair
from scenarios.byzantine import LIES, liar
from tests.conftest import ADMIN_TOKEN, RunningNode, draft, eventually

MakeNode = Callable[..., Awaitable[RunningNode]]
LIAR_KEY = KeyPair(bytes([7] * 32))


async def genuine_page(origin: RunningNode) -> dict[str, Any]:
    keys = load_key_file(origin.settings.key_path)
    path = "/ledger/sync/pull?ledger=node-a&after=0&limit=1000"
    _, page, _ = await origin.request("GET", path, headers=sign_request(keys, "node-a", "GET", path, b"", wall_ms()))
    return dict(page)


async def metric_shows(node: RunningNode, needle: str) -> bool:
    _, text, _ = await node.request("GET", "/metrics")
    return needle in text


async def victim_sees_failures(victim: RunningNode) -> dict[str, Any]:
    result: dict[str, Any] = {}

    async def failed() -> bool:
        _, status, _ = await victim.request("GET", "/ledger/sync/status")
        peers = [p for p in status["peers"] if p["ledger_id"] == "node-m"]
        if peers and peers[0]["failures"] >= 2:
            result.update(peers[0])
            return True
        return False

    await eventually(failed, timeout=15)
    return result


@pytest.mark.parametrize("lie", LIES)
async def test_lies_are_refused_and_nothing_is_stored(make_node: MakeNode, lie: str) -> None:
    origin = await make_node("node-a")
    for k in range(3):
        await origin.request("POST", "/ledger/entries", json=[draft(10 * k + i) for i in range(10)])
    page = LIES[lie](await genuine_page(origin))
    real_key = load_key_file(origin.settings.key_path).public_key.hex()
    quick = {"interval_s": 0.1, "backoff_max_s": 0.2, "live": False, "retries": 0}
    async with liar(page, real_key) as url:
        victim = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=quick)
        await victim.request("POST", "/ledger/entries", json=draft(1))
        status, _, _ = await victim.request(
            "POST", "/admin/peers", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            json={"url": url, "ledger_id": "node-m", "public_key": LIAR_KEY.public_key.hex(), "mode": "pull"},
        )  # fmt: skip
        assert status == 201
        peer = await victim_sees_failures(victim)
        assert peer["state"] == "backing-off" and peer["last_error"]
        for seq in (1, 5, 30):
            assert (await victim.request("GET", f"/ledger/ledgers/node-a/entries/{seq}"))[0] == 404
        _, stats, _ = await victim.request("GET", "/ledger/stats")
        assert stats["entries"] == 1  # our own data unchanged
        _, text, _ = await victim.request("GET", "/metrics")
        assert 'ledger_sync_failures_total{error="' in text


async def test_another_key_under_a_pinned_ledger_id_is_an_identity_conflict(make_node: MakeNode) -> None:
    origin = await make_node("node-a")
    await origin.request("POST", "/ledger/entries", json=[draft(i) for i in range(30)])
    page = await genuine_page(origin)
    async with liar(page, LIAR_KEY.public_key.hex()) as url:  # node-a advertised with the liar's key
        victim = await make_node("node-b", admin_token=ADMIN_TOKEN, sync={"interval_s": 0.1, "live": False})
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        real_key = load_key_file(origin.settings.key_path).public_key.hex()
        genuine = {"url": origin.url, "ledger_id": "node-a", "public_key": real_key, "mode": "push"}
        await victim.request("POST", "/admin/peers", headers=auth, json=genuine)
        lying = {"url": url, "ledger_id": "node-m", "public_key": LIAR_KEY.public_key.hex(), "mode": "pull"}
        await victim.request("POST", "/admin/peers", headers=auth, json=lying)
        conflict = 'ledger_sync_rejects_total{peer="node-m",reason="identity-conflict"}'
        await eventually(lambda: metric_shows(victim, conflict), timeout=15)
        assert (await victim.request("GET", "/ledger/ledgers/node-a/entries/1"))[0] == 404
        status, body, _ = await victim.request(
            "POST", "/admin/peers", headers=auth,
            json={"url": url, "ledger_id": "node-a", "public_key": LIAR_KEY.public_key.hex()},
        )  # fmt: skip
        assert status == 409 and body["type"].endswith(":identity-conflict")


async def test_a_lower_head_under_another_key_is_looked_at_after_a_pull_of_that_ledger_ends(
    make_node: MakeNode,
) -> None:
    """The liar's heads list node-a below the held head; its first round finds node-a being pulled
    from another peer and skips it. That skipped head is looked at in a later round, not marked seen."""
    origin = await make_node("node-a")
    await origin.request("POST", "/ledger/entries", json=[draft(i) for i in range(30)])
    page = await genuine_page(origin)
    await origin.request("POST", "/ledger/entries", json=[draft(i) for i in range(30, 40)])
    victim = await make_node("node-b", admin_token=ADMIN_TOKEN, sync={"interval_s": 0.1, "live": False})
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    real_key = load_key_file(origin.settings.key_path).public_key.hex()
    genuine = {"url": origin.url, "ledger_id": "node-a", "public_key": real_key, "mode": "push"}
    await victim.request("POST", "/admin/peers", headers=auth, json=genuine)
    await origin.request("POST", "/admin/peers", headers=auth,
                         json={"url": victim.url, "ledger_id": "node-b", "mode": "push",
                               "public_key": load_key_file(victim.settings.key_path).public_key.hex()})  # fmt: skip
    await eventually(lambda: _holds(victim, 40), timeout=15)
    engine = victim.app[SYNC]
    pulling = engine._pulling.setdefault("node-a", asyncio.Lock())
    async with liar(page, LIAR_KEY.public_key.hex()) as url:  # node-a at seq 30, advertised with the liar's key
        await pulling.acquire()  # as if another peer's round were pulling node-a now
        lying = {"url": url, "ledger_id": "node-m", "public_key": LIAR_KEY.public_key.hex(), "mode": "pull"}
        await victim.request("POST", "/admin/peers", headers=auth, json=lying)
        await eventually(lambda: _round_done(engine, "node-m"), timeout=10)
        pulling.release()
        conflict = 'ledger_sync_rejects_total{peer="node-m",reason="identity-conflict"}'
        await eventually(lambda: metric_shows(victim, conflict), timeout=10)


async def _holds(node: RunningNode, seq: int) -> bool:
    return (await node.request("GET", f"/ledger/ledgers/node-a/entries/{seq}"))[0] == 200


def _round_done(engine: Any, peer_id: str) -> bool:
    return any(p.ledger_id == peer_id and p.last_success_ms for p in engine.peers())
