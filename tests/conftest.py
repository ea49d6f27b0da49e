"""Shared fixtures: real nodes on 127.0.0.1 (in-process apps or processes), temporary SQLite files."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.api.context import DISCOVERY
from node.app import build_app
from node.settings import NodeSettings
from scenarios.procs import REPO, NodeProcess

ADMIN_TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Wait until ``check()`` is true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@dataclass
class RunningNode:
    """An in-process node served on 127.0.0.1 with an ephemeral port."""

    url: str
    settings: NodeSettings
    app: web.Application
    runner: web.AppRunner
    session: aiohttp.ClientSession

    async def request(self, method: str, path: str, *, anonymous: bool = False, **kwargs: Any) -> tuple[int, Any, str]:
        """(status, JSON body or None, content type). Sent with the admin token unless ``anonymous`` or
        the caller passes its own Authorization header."""
        if not anonymous:
            kwargs["headers"] = {**AUTH, **(kwargs.get("headers") or {})}
        async with self.session.request(method, self.url + path, **kwargs) as response:
            raw = await response.read()
            try:
                body = await response.json(content_type=None) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            return response.status, body, response.content_type

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[RunningNode]]]:
    """Factory of in-process nodes (with ``admin_token=ADMIN_TOKEN`` unless given); every node is stopped at
    teardown (running every cleanup_ctx exit)."""
    started: list[RunningNode] = []
    session = aiohttp.ClientSession()

    async def start(ledger_id: str = "node-a", **overrides: Any) -> RunningNode:
        data_dir = overrides.pop("data_dir", tmp_path / ledger_id)
        overrides.setdefault("admin_token", ADMIN_TOKEN)
        overrides["net"] = {"allow_private": True, **overrides.get("net", {})}  # every node here is on 127.0.0.1
        settings = NodeSettings(ledger_id=ledger_id, data_dir=data_dir, port=0, **overrides)
        app = build_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        app[DISCOVERY].start(f"http://{host}:{port}")
        node = RunningNode(f"http://{host}:{port}", settings, app, runner, session)
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        await node.stop()
    await session.close()


@pytest.fixture
async def node(make_node: Callable[..., Awaitable[RunningNode]]) -> RunningNode:
    return await make_node(admin_token=ADMIN_TOKEN)


def draft(i: int = 0, **fields: Any) -> dict[str, Any]:
    """An entry draft with sensible defaults."""
    return {"stream": "proofs", "type": "proof", "payload": {"n": i}, "subject_oid": f"oid:test:subject:{i % 7}",
            **fields}  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``ledger-node`` with ``args`` and capture its output (client commands send ADMIN_TOKEN unless
    ``env`` sets LEDGER_TOKEN)."""
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "LEDGER_TOKEN": ADMIN_TOKEN, **(env or {})}, cwd=cwd or REPO,
    )  # fmt: skip


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    """Node processes started by a test; killed at teardown whatever happened."""
    running: list[NodeProcess] = []
    yield running
    for p in running:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(timeout=10)
