"""The registry binds a ledger id to a key only on its operator's enrolment, and its operator can
release a squatted id so the rightful owner enrols again."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.ledger.clock import wall_ms
from protocol.records import sign_record
from protocol.requests import sign_request
from protocol.signing import KeyPair
from registry.app import build_app
from registry.settings import RegistrySettings
from scenarios.procs import REPO, start_process

ADMIN = "registry-admin-token-0123456789"
OWNER, SQUATTER, NEW_KEY = KeyPair(bytes([1] * 32)), KeyPair(bytes([2] * 32)), KeyPair(bytes([3] * 32))


_ISSUED = itertools.count(wall_ms())


def record(keys: KeyPair, ledger_id: str = "node-d") -> dict[str, Any]:
    """A signed record, each newer than the last (two in one millisecond would be a stale replay)."""
    return sign_record(keys, ledger_id=ledger_id, name=ledger_id, endpoints=["http://127.0.0.1:8700"],
                       capabilities=["ledger"], issued_at=next(_ISSUED)).model_dump()  # fmt: skip


class Registry:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.url + path, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None) if await response.read() else None

    async def register(self, keys: KeyPair, token: str | None = None, ledger_id: str = "node-d") -> tuple[int, Any]:
        return await self.call("POST", "/registry/nodes", record(keys, ledger_id), token)


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Registry]]]:
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def launch(**overrides: Any) -> Registry:
        settings = RegistrySettings(data_dir=tmp_path / "registry", port=0, admin_token=ADMIN, **overrides)
        runner = web.AppRunner(build_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return Registry(f"http://127.0.0.1:{runner.addresses[0][1]}", session)

    yield launch
    for runner in runners:
        await runner.cleanup()
    await session.close()


async def test_an_unenrolled_id_is_refused_and_an_enrolment_token_binds_it(
    start: Callable[..., Awaitable[Registry]],
) -> None:
    registry = await start()
    status, problem = await registry.register(SQUATTER)
    assert status == 403 and problem["type"].endswith(":not-enrolled")
    assert (await registry.register(SQUATTER, "guessed-token"))[0] == 403
    assert (await registry.call("POST", "/admin/enrolments", {"ledger_id": "node-d"}))[0] == 401
    assert (await registry.call("POST", "/admin/enrolments", {"ledger_id": "node-d"}, "wrong"))[0] == 401
    status, issued = await registry.call("POST", "/admin/enrolments", {"ledger_id": "node-d"}, ADMIN)
    assert status == 201 and issued["ledger_id"] == "node-d" and len(issued["token"]) >= 32
    assert (await registry.register(SQUATTER, "not-" + issued["token"]))[0] == 403
    status, body = await registry.register(OWNER, issued["token"])
    assert status == 201 and body["bound_key"] == OWNER.public_key.hex()
    # bound: later registrations need no token; another key is refused, with or without the token
    assert (await registry.register(OWNER))[0] == 201
    assert (await registry.register(SQUATTER, issued["token"]))[0] == 409
    # deregistration keeps the binding: the id cannot be taken while its node is away
    path = "/registry/nodes/node-d"
    async with registry.session.delete(
        registry.url + path, headers=sign_request(OWNER, "node-d", "DELETE", path, b"", wall_ms())
    ) as r:
        assert r.status == 204  # fmt: skip
    assert (await registry.register(SQUATTER, issued["token"]))[0] == 409
    assert (await registry.register(OWNER))[0] == 201
    # the token is stored hashed, never in clear
    db = (await registry.call("GET", "/admin/nodes", token=ADMIN))[1]
    assert db == [{"ledger_id": "node-d", "bound_key": OWNER.public_key.hex(), "bound_at": db[0]["bound_at"],
                   "status": "online"}]  # fmt: skip


async def test_release_lets_the_rightful_owner_enrol_again_with_a_new_key(
    start: Callable[..., Awaitable[Registry]], tmp_path: Path
) -> None:
    registry = await start(enrolments={"node-d": "configured-token-for-node-d"})
    assert (await registry.register(SQUATTER, "configured-token-for-node-d"))[0] == 201  # the token leaked
    assert (await registry.register(NEW_KEY))[0] == 409
    assert (await registry.call("DELETE", "/admin/nodes/node-d"))[0] == 401
    assert (await registry.call("DELETE", "/admin/nodes/node-d", token=ADMIN))[0] == 204
    assert (await registry.call("GET", "/registry/nodes/node-d"))[0] == 404
    assert (await registry.call("DELETE", "/admin/nodes/node-d", token=ADMIN))[0] == 404
    _, issued = await registry.call("POST", "/admin/enrolments", {"ledger_id": "node-d"}, ADMIN)
    status, body = await registry.register(NEW_KEY, issued["token"])
    assert status == 201 and body["bound_key"] == NEW_KEY.public_key.hex()
    assert (await registry.register(SQUATTER))[0] == 409
    # bindings and issued tokens survive a restart
    _, other = await registry.call("POST", "/admin/enrolments", {"ledger_id": "node-e"}, ADMIN)
    again = await start(enrolments={"node-d": "configured-token-for-node-d"})
    assert (await again.register(SQUATTER, "configured-token-for-node-d"))[0] == 409
    assert (await again.register(OWNER, other["token"], "node-e"))[0] == 201


async def test_open_enrolment_binds_the_first_comer(start: Callable[..., Awaitable[Registry]]) -> None:
    registry = await start(enrolment="open")
    assert (await registry.register(OWNER))[0] == 201
    assert (await registry.register(SQUATTER))[0] == 409


def test_the_operator_commands_enrol_list_and_release(tmp_path: Path) -> None:
    env = {"LEDGER_REGISTRY_ADMIN_TOKEN": ADMIN}
    registry = start_process([sys.executable, "-m", "registry.cli", "run", "--port", "0", "--data-dir",
                              str(tmp_path)], tmp_path, env=env)  # fmt: skip
    try:

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "registry.cli", *args, "--url", registry.url],
                                  capture_output=True, text=True, timeout=60, cwd=REPO,
                                  env={**os.environ, **env})  # fmt: skip

        enrolled = cli("enrol", "node-d")
        assert enrolled.returncode == 0 and "enrolment token for node-d: " in enrolled.stdout, enrolled.stderr
        listed = cli("bindings")
        assert listed.returncode == 0 and "node-d" in listed.stdout and "(enrolled, not bound)" in listed.stdout
        assert cli("release", "node-d").returncode == 0
        assert "node-d" not in cli("bindings").stdout
        refused = subprocess.run([sys.executable, "-m", "registry.cli", "bindings", "--url", registry.url, "--token",
                                  "wrong"], capture_output=True, text=True, timeout=60, cwd=REPO)  # fmt: skip
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    finally:
        registry.proc.terminate()
        registry.proc.wait(timeout=10)
