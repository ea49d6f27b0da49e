"""The console's HTTP side, in-process: the page and its headers, links as JSON, login check, live feed."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from node.api.console import FEED
from node.console.feed import _peer_links
from node.ledger.clock import wall_ms
from protocol.records import sign_record
from protocol.signing import KeyPair, fingerprint
from registry.app import build_app as build_registry
from registry.settings import RegistrySettings
from tests.conftest import AUTH, RunningNode, draft, eventually

Start = Callable[..., Awaitable[RunningNode]]


async def test_the_page_is_served_with_a_strict_policy_and_links_answer_json(make_node: Start) -> None:
    node = await make_node("node-a")
    async with node.session.get(node.url + "/", headers={"Accept": "text/html"}) as response:
        page = await response.text()
        headers = response.headers
    assert response.status == 200 and response.content_type == "text/html"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "<script" in page and "<script>" not in page and "style=" not in page  # nothing inline
    assert "http" not in page.split("<body")[0]  # nothing from elsewhere
    for asset, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        async with node.session.get(f"{node.url}/console/{asset}") as response:
            assert response.status == 200 and response.content_type == kind
            assert b"http://" not in (await response.read()).replace(b"http://www.w3.org/2000/svg", b"")
    status, body, kind = await node.request("GET", "/", headers={"Accept": "application/json"}, anonymous=True)
    assert status == 200 and kind == "application/json"
    assert body["links"]["openapi"] == "/openapi.json" and body["links"]["console"] == "/"


async def test_the_login_check_refuses_a_wrong_or_missing_credential(make_node: Start) -> None:
    node = await make_node("node-a")
    status, body, _ = await node.request("GET", "/console/whoami")
    assert status == 200 and body["id"] == "admin-token" and "admin" in body["scopes"]
    for headers in ({"Authorization": "Bearer lnt_000000000000_wrong"}, {"Authorization": "Bearer nope"}, {}):
        status, body, kind = await node.request("GET", "/console/whoami", headers=headers, anonymous=True)
        assert status == 401 and kind == "application/problem+json", (headers, status)
    status, issued, _ = await node.request("POST", "/admin/credentials", json={"name": "viewer", "scopes": ["read"]})
    status, body, _ = await node.request(
        "GET", "/console/whoami", headers={"Authorization": f"Bearer {issued['token']}"}, anonymous=True
    )
    assert status == 200 and body["scopes"] == ["read"]


async def test_the_feed_pushes_a_snapshot_and_each_new_head(make_node: Start) -> None:
    node = await make_node("node-a")
    async with node.session.get(node.url + "/console/events", headers=AUTH) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        snapshot = await _next_event(response)
        assert snapshot[0] == "snapshot"
        assert snapshot[1]["node"]["ledger_id"] == "node-a" and snapshot[1]["node"]["key_fingerprint"]
        assert snapshot[1]["nodes"][0]["self"] and snapshot[1]["in_sync"]["in_sync"]
        status, _, _ = await node.request("POST", "/ledger/entries", json=draft(1))
        assert status == 201
        kind, head = await _next_event(response)
        assert kind == "head" and head["ledger_id"] == "node-a" and head["seq"] == 1


async def test_the_verification_state_covers_entries_written_after_the_start_check(make_node: Start) -> None:
    node = await make_node("node-a", console={"snapshot_s": 0.5})  # verified at start with an empty ledger
    for i in range(3):
        assert (await node.request("POST", "/ledger/entries", json=draft(i)))[0] == 201
    snapshot = await node.app[FEED].snapshot()
    verification = snapshot["node"]["verification"]
    assert verification["state"] == "verified" and verification["head_seq"] == 3, verification
    assert "the 3 entries written since were checked as they were written" in verification["detail"]
    assert (await node.request("POST", "/admin/verify?mode=full"))[0] == 200

    async def checked_again() -> bool:
        verification = (await node.app[FEED].snapshot())["node"]["verification"]
        return (verification["mode"], verification["checked_through_seq"]) == ("full", 3)

    await eventually(checked_again, timeout=5)


async def _next_event(response: object) -> tuple[str, dict[str, object]]:
    kind, data = "message", b""
    async for line in response.content:  # type: ignore[attr-defined]
        if line.startswith(b"event: "):
            kind = line[7:].strip().decode()
        elif line.startswith(b"data: "):
            data += line[6:].strip()
        elif line == b"\n" and data:
            return kind, orjson.loads(data)
    raise AssertionError("the stream ended")


async def test_the_registry_serves_its_console_and_links(tmp_path: Path) -> None:
    runner = web.AppRunner(build_registry(RegistrySettings(data_dir=tmp_path / "registry", port=0)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}/", headers={"Accept": "text/html"}) as response:
                assert response.status == 200 and response.content_type == "text/html"
                assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
                assert response.headers["X-Content-Type-Options"] == "nosniff"
            async with session.get(f"http://{host}:{port}/", headers={"Accept": "application/json"}) as response:
                body = await response.json()
                assert body["links"]["openapi"] == "/openapi.json" and body["links"]["console"] == "/"
            async with session.get(f"http://{host}:{port}/openapi.json") as response:
                assert "/" in (await response.json())["paths"]
    finally:
        await runner.cleanup()


async def test_the_feed_needs_a_credential_even_where_reads_are_public_and_is_bounded(make_node: Start) -> None:
    node = await make_node("node-a", console={"max_streams": 1, "snapshot_s": 0.5})
    assert node.settings.access.public_read
    status, body, kind = await node.request("GET", "/console/events", anonymous=True)
    assert status == 401 and kind == "application/problem+json"
    async with node.session.get(node.url + "/console/events", headers=AUTH) as first:
        assert first.status == 200 and (await _next_event(first))[0] == "snapshot"
        status, body, _ = await node.request("GET", "/console/events")
        assert status == 429, body
    await eventually(lambda: node.app[FEED].streams == 0)
    async with node.session.get(node.url + "/console/events", headers=AUTH) as again:
        assert again.status == 200


async def test_an_open_feed_does_not_hold_the_node_shutdown(make_node: Start) -> None:
    node = await make_node("node-a")
    async with node.session.get(node.url + "/console/events", headers=AUTH) as response:
        assert (await _next_event(response))[0] == "snapshot"
        started = time.monotonic()
        await node.stop()
        assert time.monotonic() - started < 5


def test_a_peering_is_drawn_only_where_both_nodes_list_each_other() -> None:
    def known(ledger_id: str, peers: list[str] | None, *, self_: bool = False) -> dict[str, object]:
        return {"ledger_id": ledger_id, "self": self_, "peers": peers}

    nodes = {
        "node-a": known("node-a", None, self_=True),
        "node-b": known("node-b", ["node-c", "node-d"]),
        "node-c": known("node-c", ["node-b", "node-d"]),  # node-d has not admitted node-c: one-sided
        "node-d": known("node-d", ["node-b"]),
        "node-e": known("node-e", ["node-b"]),  # listed by nobody: one-sided too
    }
    assert _peer_links(nodes) == [{"a": "node-b", "b": "node-c"}, {"a": "node-b", "b": "node-d"}]


async def test_a_proposed_peer_is_listed_with_the_key_fingerprint_the_pins_show(make_node: Start) -> None:
    node = await make_node("node-a")
    keys = KeyPair(bytes([5] * 32))
    proposed = sign_record(keys, ledger_id="node-d", name="node-d", endpoints=["http://127.0.0.1:9"],
                           capabilities=["ledger", "sync"], issued_at=wall_ms()).model_dump()  # fmt: skip
    assert (await node.request("POST", "/network/introduce", json=proposed))[0] == 202
    status, listed, _ = await node.request("GET", "/admin/candidates")
    assert status == 200, listed
    claim = next(c for c in listed if c["ledger_id"] == "node-d")
    assert claim["key_fingerprint"] == fingerprint(keys.public_key)  # as `ledger-node pins` names the key
    assert claim["record"]["public_key"] == keys.public_key.hex()  # the full key, to admit a contested id


async def test_strangers_introducing_themselves_cannot_fill_the_console(make_node: Start) -> None:
    node = await make_node("node-a", console={"snapshot_s": 0.5})
    for i in range(40):
        keys = KeyPair(bytes([120 + i] * 32))
        stranger = sign_record(keys, ledger_id=f"stranger-{i:02d}", name="x" * 60, endpoints=["http://127.0.0.1:9"],
                               issued_at=int(time.time() * 1000))  # fmt: skip
        assert (await node.request("POST", "/network/introduce", json=stranger.model_dump()))[0] == 202
    snapshot = await node.app[FEED].snapshot()
    strangers = [n for n in snapshot["nodes"] if n["ledger_id"].startswith("stranger-")]
    assert len(strangers) == 20, len(strangers)  # the newest; all 40 stay in GET /admin/candidates
    assert len((await node.request("GET", "/admin/candidates"))[1]) == 40
