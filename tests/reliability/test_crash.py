"""SIGKILL a node while it appends; after a restart every acknowledged entry is there and verifies.

``CRASH_ROUNDS`` rounds (3 in CI, 200 under ``make reliability``), each killing at a random moment."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from scenarios.procs import NodeProcess, start_node
from tests.conftest import ADMIN_TOKEN, AUTH, cli
from tests.reliability.conftest import record, size

ROUNDS = int(os.environ.get("CRASH_ROUNDS", str(size(3, 200))))
TALLY: dict[str, list[float]] = {"acked": [], "lost": [], "restart_verify_s": []}

TOKEN_ENV = {"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN}


@pytest.fixture(scope="module", autouse=True)
def figures_of_all_rounds() -> Iterator[None]:
    yield
    if TALLY["acked"]:
        rounds = len(TALLY["acked"])
        record("SIGKILL during writes: rounds / acknowledged entries", f"{rounds} / {int(sum(TALLY['acked']))}")
        record("SIGKILL during writes: acknowledged entries lost", int(sum(TALLY["lost"])), "0")
        record(
            "restart and verify --full after SIGKILL: median (s)",
            round(statistics.median(TALLY["restart_verify_s"]), 2),
        )


async def hammer(url: str, acked: dict[int, str], stop_after: float) -> None:
    """Append batches from 4 writers until the node dies; record every acknowledged (seq, hash)."""
    deadline = time.monotonic() + 30

    async def writer(session: aiohttp.ClientSession, k: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            body = [
                {"stream": "crash", "type": "t", "payload": {"w": k, "n": n + i}} for i in range(random.randint(1, 200))
            ]
            n += len(body)
            try:
                async with session.post(url + "/ledger/entries", json=body) as response:
                    if response.status != 201:
                        return
                    for receipt in (await response.json())["entries"]:
                        acked[receipt["seq"]] = receipt["hash"]
            except (TimeoutError, aiohttp.ClientError):
                return

    async with aiohttp.ClientSession(headers=AUTH) as session:
        await asyncio.gather(*(writer(session, k) for k in range(4)))


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_acknowledged_entries_survive_sigkill(tmp_path: Path, processes: list[NodeProcess], round_: int) -> None:
    data_dir = tmp_path / "node"
    node = start_node(data_dir, env=TOKEN_ENV)
    processes.append(node)
    acked: dict[int, str] = {}
    kill_after = random.uniform(0.2, 1.5)

    async def killer() -> None:
        await asyncio.sleep(kill_after)  # a random point in the write stream, not synchronisation
        node.kill()

    await asyncio.gather(hammer(node.url, acked, kill_after), killer())
    assert acked, "nothing was acknowledged before the kill"

    restart_started = time.perf_counter()
    restarted = start_node(data_dir, env=TOKEN_ENV)  # verifies the whole chain on start
    processes.append(restarted)
    restart_s = time.perf_counter() - restart_started
    async with aiohttp.ClientSession(headers=AUTH) as session:
        stored: dict[int, str] = {}
        params = {"stream": "crash", "limit": "1000"}
        while True:
            async with session.get(f"{restarted.url}/ledger/entries", params=params) as response:
                page = await response.json()
            stored.update((e["seq"], e["hash"]) for e in page["entries"])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        lost = [seq for seq, digest in acked.items() if stored.get(seq) != digest]
        TALLY["acked"].append(len(acked))
        TALLY["lost"].append(len(lost))
        assert lost == [], f"{len(lost)} acknowledged entries lost or changed"
        async with session.post(
            restarted.url + "/ledger/entries", json={"stream": "after", "type": "t", "payload": {}}
        ) as r:
            assert r.status == 201 and (await r.json())["seq"] > max(acked)
    assert restarted.terminate() == 0
    verify_started = time.perf_counter()
    verified = cli("verify", "--data-dir", str(data_dir), "--full")
    TALLY["restart_verify_s"].append(restart_s + time.perf_counter() - verify_started)
    assert verified.returncode == 0, verified.stderr
