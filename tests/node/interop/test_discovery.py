"""Discovery with a real registry and real nodes on 127.0.0.1: registry, bootstrap, exchange, mDNS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from node.ledger.clock import wall_ms
from protocol.records import sign_record
from protocol.signing import KeyPair
from registry.app import build_app as build_registry
from registry.settings import RegistrySettings
from tests.conftest import ADMIN_TOKEN, RunningNode, draft, eventually

MakeNode = Callable[..., Awaitable[RunningNode]]
FAST_SYNC = {"interval_s": 0.2, "backoff_max_s": 1.0}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Registry:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> str:
        settings = RegistrySettings(data_dir=self.data_dir, port=self.port, ttl_s=2, sweep_interval_s=0.2,
                                    enrolments={"node-a": "enrol-node-a", "node-b": "enrol-node-b"})  # fmt: skip
        self.runner = web.AppRunner(build_registry(settings))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    reg = Registry(tmp_path / "registry")
    await reg.start()
    yield reg
    await reg.stop()


def discovery(**values: Any) -> dict[str, Any]:
    return {"heartbeat_s": 0.2, "interval_s": 0.3, "auto_admit": True, **values}


async def sources(node: RunningNode) -> dict[str, tuple[list[str], str]]:
    _, body, _ = await node.request("GET", "/network/discover")
    return {n["record"]["ledger_id"]: (n["sources"], n["status"]) for n in body["nodes"]}


async def holds(node: RunningNode, ledger_id: str, seq: int) -> bool:
    return (await node.request("GET", f"/ledger/ledgers/{ledger_id}/entries/{seq}"))[0] == 200


async def test_nodes_find_each_other_through_the_registry_and_sync(make_node: MakeNode, registry: Registry) -> None:
    url = f"http://127.0.0.1:{registry.port}"
    a = await make_node(
        "node-a", sync=FAST_SYNC, discovery=discovery(registry_urls=[url], registry_token="enrol-node-a")
    )
    b = await make_node("node-b", sync=FAST_SYNC, discovery=discovery(registry_urls=["http://127.0.0.1:9", url],
                                                                      registry_token="enrol-node-b"))  # fmt: skip
    await eventually(lambda: peers_of(a, "node-b"), timeout=15)
    await eventually(lambda: peers_of(b, "node-a"), timeout=15)
    assert (await sources(b))["node-a"][1] == "peer" and "registry" in (await sources(b))["node-a"][0]
    await a.request("POST", "/ledger/entries", json=[draft(i) for i in range(20)])
    await eventually(lambda: holds(b, "node-a", 20), timeout=15)

    # the registry goes away: peers stay, sync goes on
    await registry.stop()
    await a.request("POST", "/ledger/entries", json=[draft(i) for i in range(20, 30)])
    await eventually(lambda: holds(b, "node-a", 30), timeout=15)

    # it comes back having lost its data: the nodes register again
    for path in registry.data_dir.iterdir():
        path.unlink()
    await registry.start()

    async def registered() -> bool:
        _, info, _ = await a.request("GET", "/network/info")  # any node client will do for a GET
        async with a.session.get(f"{url}/registry/nodes?status=online") as response:
            listed = {n["record"]["ledger_id"] for n in (await response.json())["nodes"]}
        return {"node-a", "node-b"} <= listed and bool(info)

    await eventually(registered, timeout=15)

    # a clean shutdown deregisters
    await a.stop()

    async def gone() -> bool:
        async with b.session.get(f"{url}/registry/nodes/node-a") as response:
            return response.status == 404

    await eventually(gone, timeout=10)


async def peers_of(node: RunningNode, ledger_id: str) -> bool:
    _, status, _ = await node.request("GET", "/ledger/sync/status")
    return any(p["ledger_id"] == ledger_id for p in status["peers"])


async def test_bootstrap_introduces_both_ways_and_exchange_spreads_peers(make_node: MakeNode) -> None:
    a = await make_node("node-a", sync=FAST_SYNC, discovery=discovery())
    b = await make_node("node-b", sync=FAST_SYNC, discovery=discovery(bootstrap=[a.url]))
    c = await make_node("node-c", sync=FAST_SYNC, discovery=discovery(bootstrap=[a.url]))
    await eventually(lambda: peers_of(a, "node-b"), timeout=15)  # b introduced itself to a
    await b.request("POST", "/ledger/entries", json=[draft(i) for i in range(5)])
    await eventually(lambda: holds(a, "node-b", 5), timeout=15)
    await eventually(lambda: peers_of(c, "node-b"), timeout=15)  # c learned b from a's /network/ledgers
    assert "exchange" in (await sources(c))["node-b"][0]


async def test_a_record_claiming_a_pinned_id_with_another_key_is_reported_not_used(
    make_node: MakeNode, tmp_path: Path
) -> None:
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST_SYNC, discovery=discovery())
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST_SYNC, discovery=discovery())
    assert (await b.request("POST", "/network/connect", headers=AUTH, json={"url": a.url}))[0] == 201
    impostor = KeyPair(bytes([9] * 32))
    spoof = sign_record(impostor, ledger_id="node-a", name="evil", endpoints=["http://127.0.0.1:9"],
                        issued_at=wall_ms() + 1000).model_dump()  # fmt: skip

    async def info(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"record": spoof}), content_type="application/json")

    app = web.Application()
    app.router.add_get("/network/info", info)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        status, problem, _ = await b.request("POST", "/network/connect", headers=AUTH, json={"url": fake})
        assert status == 409 and problem["type"].endswith(":identity-conflict")
        status, problem, _ = await b.request("POST", "/network/introduce", json=spoof)
        assert status == 409
    finally:
        await runner.cleanup()
    _, peers, _ = await b.request("GET", "/admin/peers", headers=AUTH)
    assert [(p["ledger_id"], p["url"]) for p in peers] == [("node-a", a.url)]  # pin and peer unchanged
    _, text, _ = await b.request("GET", "/metrics")
    assert 'ledger_discovery_rejects_total{reason="identity-conflict",source="connect"}' in text
    forged = {**sign_record(impostor, ledger_id="node-z", name="z", endpoints=["http://127.0.0.1:9"],
                            issued_at=wall_ms()).model_dump(), "name": "changed"}  # fmt: skip
    status, problem, _ = await b.request("POST", "/network/introduce", json=forged)
    assert status == 422 and "signature does not verify" in problem["detail"]


async def test_mdns_on_loopback(make_node: MakeNode) -> None:
    loopback = {"mdns": True, "mdns_interfaces": ["127.0.0.1"], "peer_exchange": False}
    a = await make_node("node-a", sync=FAST_SYNC, discovery=discovery(**loopback))
    b = await make_node("node-b", sync=FAST_SYNC, discovery=discovery(**loopback))

    async def found() -> bool:
        return "node-b" in await sources(a) and "node-a" in await sources(b)

    await eventually(found, timeout=20)
    assert (await sources(a))["node-b"][0] == ["mdns"]


async def test_a_node_the_registry_refuses_says_why_once_and_how_to_enrol(
    make_node: MakeNode, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{registry.port}"
    await make_node("node-q", sync=FAST_SYNC, discovery=discovery(registry_urls=[url]))  # no enrolment token

    def refusals() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("registry refused this node")]

    await eventually(lambda: len(refusals()) >= 1, timeout=10)
    assert "(not-enrolled)" in refusals()[0] and "ledger-registry enrol" in refusals()[0]
    assert not any("registry unavailable" in r.getMessage() for r in caplog.records)

    async def refused_403(times: int) -> bool:  # registration attempts the registry refused
        async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
            text = await response.text()
        line = next((x for x in text.splitlines() if 'method="POST"' in x and 'status="403"' in x), "x 0")
        return float(line.split()[-1]) >= times

    await eventually(lambda: refused_403(4), timeout=10)
    assert len(refusals()) == 1, refusals()  # said once, not every round
