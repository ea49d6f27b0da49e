"""The registry service on 127.0.0.1 with a real SQLite file: binding, heartbeats, liveness, discovery."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from node.ledger.clock import wall_ms
from protocol.records import sign_record, sign_rotation
from protocol.requests import sign_request
from protocol.signing import KeyPair
from registry.app import build_app
from registry.settings import RegistrySettings
from tests.conftest import eventually

KEY_A, KEY_B, KEY_A2 = KeyPair(bytes([1] * 32)), KeyPair(bytes([2] * 32)), KeyPair(bytes([3] * 32))


class Client:
    def __init__(self, url: str, session: aiohttp.ClientSession, runner: web.AppRunner) -> None:
        self.url, self.session, self.runner = url, session, runner

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        async with self.session.request(method, self.url + path, data=data, headers=headers) as response:
            raw = await response.read()
            return response.status, orjson.loads(raw) if raw else None

    async def signed(self, keys: KeyPair, ledger_id: str, method: str, path: str) -> tuple[int, Any]:
        return await self.call(method, path, headers=sign_request(keys, ledger_id, method, path, b"", wall_ms()))


def record(keys: KeyPair, ledger_id: str = "node-a", issued_at: int | None = None, **extra: Any) -> dict[str, Any]:
    fields = {"ledger_id": ledger_id, "name": ledger_id.upper(), "endpoints": ["http://127.0.0.1:8700"],
              "capabilities": ["ledger", "query"], "issued_at": issued_at or wall_ms(), **extra}  # fmt: skip
    return sign_record(keys, **fields).model_dump()


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def launch(**overrides: Any) -> Client:
        settings = RegistrySettings(data_dir=tmp_path / "registry", port=0, **{"enrolment": "open", **overrides})
        runner = web.AppRunner(build_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return Client(f"http://{host}:{port}", session, runner)

    yield launch
    for runner in runners:
        await runner.cleanup()
    await session.close()


async def test_register_get_and_discover(start: Callable[..., Awaitable[Client]]) -> None:
    registry = await start()
    status, body = await registry.call("POST", "/registry/nodes", record(KEY_A))
    assert status == 201 and body["status"] == "online" and body["bound_key"] == KEY_A.public_key.hex()
    status, body = await registry.call("GET", "/registry/nodes/node-a")
    assert status == 200 and body["record"]["name"] == "NODE-A"
    status, body = await registry.call("GET", "/registry/nodes?capability=ledger")
    assert [n["record"]["ledger_id"] for n in body["nodes"]] == ["node-a"]


async def test_a_taken_id_a_forged_record_and_a_replayed_record_are_refused(
    start: Callable[..., Awaitable[Client]],
) -> None:
    registry = await start()
    first = record(KEY_A, issued_at=1000)
    assert (await registry.call("POST", "/registry/nodes", first))[0] == 201
    status, problem = await registry.call("POST", "/registry/nodes", record(KEY_B, issued_at=2000))
    assert status == 409 and problem["type"].endswith(":key-mismatch")
    forged = {**record(KEY_A, issued_at=3000), "name": "MALLORY"}
    status, problem = await registry.call("POST", "/registry/nodes", forged)
    assert status == 401 and problem["type"].endswith(":unauthenticated")
    status, problem = await registry.call("POST", "/registry/nodes", first)
    assert status == 409 and problem["type"].endswith(":stale-record")
    assert (await registry.call("GET", "/registry/nodes/node-a"))[1]["record"]["name"] == "NODE-A"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"{", 400, "body"),
        (b'{"ledger_id": "node-a"}', 400, "name"),
        (orjson.dumps({**record(KEY_A), "endpoints": []}), 400, "endpoints"),
        (orjson.dumps({**record(KEY_A), "ledger_id": "Not Valid"}), 400, "ledger_id"),
        (orjson.dumps({**record(KEY_A), "extra": 1}), 400, "extra"),
        (b"x" * 70_000, 413, "Request Entity Too Large"),
    ],
)
async def test_malformed_and_oversized_records(
    start: Callable[..., Awaitable[Client]], body: bytes, status: int, detail: str
) -> None:
    registry = await start()
    got, problem = await registry.call("POST", "/registry/nodes", body)
    assert got == status and detail in problem["detail"]
    assert (await registry.call("GET", "/registry/nodes"))[1]["nodes"] == []


async def test_heartbeats_must_be_signed_by_the_bound_key_and_fresh(start: Callable[..., Awaitable[Client]]) -> None:
    registry = await start()
    await registry.call("POST", "/registry/nodes", record(KEY_A))
    path = "/registry/nodes/node-a/heartbeat"
    headers = sign_request(KEY_A, "node-a", "POST", path, b"", wall_ms())
    assert (await registry.call("POST", path, headers=headers))[0] == 200
    assert (await registry.call("POST", path, headers=headers))[0] == 401  # replayed
    assert (await registry.call("POST", path))[0] == 401  # unsigned
    assert (await registry.signed(KEY_B, "node-a", "POST", path))[0] == 401  # another key
    stale = sign_request(KEY_A, "node-a", "POST", path, b"", wall_ms() - 600_000)
    assert (await registry.call("POST", path, headers=stale))[0] == 401
    assert (await registry.signed(KEY_B, "node-b", "POST", path))[0] == 401  # signed as another node
    assert (await registry.signed(KEY_A, "node-x", "POST", "/registry/nodes/node-x/heartbeat"))[0] == 404


async def test_silent_nodes_go_offline_and_come_back(start: Callable[..., Awaitable[Client]]) -> None:
    registry = await start(ttl_s=0.3, sweep_interval_s=0.05)
    await registry.call("POST", "/registry/nodes", record(KEY_A))

    async def status_is(wanted: str) -> bool:
        return (await registry.call("GET", "/registry/nodes/node-a"))[1]["status"] == wanted

    await eventually(lambda: status_is("offline"), timeout=0.6 + 1)  # within 2 x TTL (+ scheduling slack)
    assert (await registry.call("GET", "/registry/nodes?status=online"))[1]["nodes"] == []
    assert (await registry.signed(KEY_A, "node-a", "POST", "/registry/nodes/node-a/heartbeat"))[0] == 200
    assert await status_is("online")


async def test_discovery_filters_and_pages(start: Callable[..., Awaitable[Client]]) -> None:
    registry = await start()
    for i in range(12):
        keys = KeyPair(bytes([10 + i] * 32))
        meta = {"region": "eu" if i % 2 else "us", "streams": ["proofs"] if i % 3 == 0 else ["assets"]}
        caps = ["ledger", "query"] if i % 4 else ["ledger"]
        status, _ = await registry.call("POST", "/registry/nodes",
                                        record(keys, f"node-{i:02d}", metadata=meta, capabilities=caps))  # fmt: skip
        assert status == 201
    _, eu = await registry.call("GET", "/registry/nodes?region=eu")
    assert [n["record"]["ledger_id"] for n in eu["nodes"]] == [f"node-{i:02d}" for i in range(1, 12, 2)]
    _, query = await registry.call("GET", "/registry/nodes?capability=query&stream=proofs")
    assert [n["record"]["ledger_id"] for n in query["nodes"]] == ["node-03", "node-06", "node-09"]
    seen, after = [], None
    while True:
        _, page = await registry.call("GET", "/registry/nodes?limit=5" + (f"&after={after}" if after else ""))
        seen += [n["record"]["ledger_id"] for n in page["nodes"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [f"node-{i:02d}" for i in range(12)]
    assert (await registry.call("GET", "/registry/nodes?limit=0"))[0] == 400
    assert (await registry.call("GET", "/registry/nodes?status=sleeping"))[0] == 400


async def test_deregister_and_rotate(start: Callable[..., Awaitable[Client]]) -> None:
    registry = await start()
    await registry.call("POST", "/registry/nodes", record(KEY_A, issued_at=1000))
    rotation = sign_rotation(KEY_A, "node-a", KEY_A2.public_key, 2000).model_dump()
    bad = sign_rotation(KEY_B, "node-a", KEY_B.public_key, 2000).model_dump()
    assert (await registry.call("POST", "/registry/nodes/node-a/rotate", bad))[0] == 409
    status, body = await registry.call("POST", "/registry/nodes/node-a/rotate", rotation)
    assert status == 200 and body["bound_key"] == KEY_A2.public_key.hex()
    assert (await registry.call("POST", "/registry/nodes", record(KEY_A, issued_at=3000)))[0] == 409
    assert (await registry.call("POST", "/registry/nodes", record(KEY_A2, issued_at=3000)))[0] == 201
    assert (await registry.signed(KEY_A, "node-a", "DELETE", "/registry/nodes/node-a"))[0] == 401
    assert (await registry.signed(KEY_A2, "node-a", "DELETE", "/registry/nodes/node-a"))[0] == 204
    assert (await registry.call("GET", "/registry/nodes/node-a"))[0] == 404


async def test_records_survive_a_restart(start: Callable[..., Awaitable[Client]], tmp_path: Path) -> None:
    first = await start()
    await first.call("POST", "/registry/nodes", record(KEY_A))
    await first.stop()
    second = await start()  # same data dir
    status, body = await second.call("GET", "/registry/nodes/node-a")
    assert status == 200 and body["bound_key"] == KEY_A.public_key.hex()


async def test_clients_are_rate_limited(start: Callable[..., Awaitable[Client]]) -> None:
    registry = await start(rate_per_s=1, burst=5)
    statuses = [(await registry.call("GET", "/registry/nodes"))[0] for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[-1] == 429
    assert (await registry.call("GET", "/health"))[0] == 200  # probes are not limited
