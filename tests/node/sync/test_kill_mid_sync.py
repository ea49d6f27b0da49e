"""A node SIGKILLed while it pulls resumes from its durable checkpoint: no gaps, no duplicates."""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp
import pytest

from scenarios.cluster import add_peer, fill, holds, node_env
from scenarios.procs import NodeProcess, start_node
from tests.conftest import cli, eventually

ENTRIES = 20_000


async def held_seq(session: aiohttp.ClientSession, node: NodeProcess) -> int:
    async with session.get(node.url + "/ledger/sync/status") as response:
        status = await response.json()
    return max((x["local_seq"] for p in status["peers"] for x in p["ledgers"] if x["ledger_id"] == "node-a"), default=0)


@pytest.mark.parametrize("victim", ["puller", "origin"])
async def test_pull_resumes_after_sigkill(tmp_path: Path, processes: list[NodeProcess], victim: str) -> None:
    await fill(tmp_path / "a", "node-a", ENTRIES)
    settings = node_env(interval_s=0.2, page_size=500, live=False)
    a = start_node(tmp_path / "a", "node-a", env=settings)
    b = start_node(tmp_path / "b", "node-b", env=settings)
    processes += [a, b]
    async with aiohttp.ClientSession() as session:
        await add_peer(session, a, b, "pull")
        await add_peer(session, b, a, "pull")
        target = random.randint(2_000, ENTRIES - 5_000)

        async def partway() -> bool:
            return await held_seq(session, b) >= target

        await eventually(partway, timeout=60)
        if victim == "puller":
            b.kill()
            restarted = start_node(tmp_path / "b", "node-b", env=settings)  # verifies its store on start
        else:  # the origin disappears mid-sync and comes back on another port
            a.kill()
            a = start_node(tmp_path / "a", "node-a", env=settings)
            restarted = b
            await add_peer(session, restarted, a, "pull")  # the new address; its key is already pinned
        processes.append(a)
        processes.append(restarted)
        await eventually(lambda: holds(session, restarted, "node-a", ENTRIES), timeout=120)
        async with session.get(restarted.url + "/ledger/sync/status") as response:
            status = await response.json()
        (mark,) = [x for p in status["peers"] for x in p["ledgers"] if x["ledger_id"] == "node-a"]
        assert mark["local_seq"] == mark["pulled_through"] == ENTRIES
    assert restarted.terminate() == 0
    verified = cli("verify", "--data-dir", str(tmp_path / "b"), "--full")
    assert verified.returncode == 0, verified.stderr
    assert "ledger=node-a" in verified.stdout and f"entries={ENTRIES}" in verified.stdout
