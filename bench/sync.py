"""Replication between node processes on 127.0.0.1: throughput, live propagation, mesh convergence.

    python -m bench.sync [--quick] [--entries N]

- A holds N entries (default 100,000); B, empty, pulls them all: once verifying by checkpoint, once
  verifying every signature. Rate = N / time from the sync trigger to B holding A's head.
- Live propagation: single appends at A, time until B's head stream announces them (p50, p99).
- Mesh: three nodes, all peers of each other, each writing 5,000 entries at once; time from the
  last write until all three hold identical heads of all three ledgers.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.common import arguments, log, percentile, report
from node.keys import load_key_file
from node.ledger.clock import wall_ms
from protocol.requests import sign_request
from scenarios.cluster import AUTH, add_peer, fill, holds, node_env
from scenarios.procs import NodeProcess, start_node


async def wait_for(check: Any, timeout: float) -> float:
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"not reached within {timeout}s")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def replicate(work: Path, origin_dir: Path, entries: int, verify: str) -> float:
    a = start_node(origin_dir, "node-a", env=node_env(interval_s=3600, live=False))
    b = start_node(work / f"b-{verify}", f"mirror-{verify}", env=node_env(interval_s=3600, live=False, verify=verify))
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            await add_peer(session, a, b, "pull")  # a serves b
            await add_peer(session, b, a, "pull")  # the first round starts at once
            return await wait_for(lambda: holds(session, b, "node-a", entries), timeout=600)
    finally:
        a.terminate()
        b.terminate()


async def propagation(work: Path, samples: int) -> list[float]:
    a = start_node(work / "pa", "node-a", env=node_env(interval_s=3600))
    b = start_node(work / "pb", "node-b", env=node_env(interval_s=3600))
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            await add_peer(session, a, b, "pull")
            await add_peer(session, b, a, "pull")
            keys = load_key_file(a.data_dir / "node.key")  # b's stream, read as node-a (a peer of b)
            path = "/ledger/sync/stream"
            headers = sign_request(keys, "node-a", "GET", path, b"", wall_ms())
            async with session.get(b.url + path, headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as stream:
                await asyncio.sleep(0.5)  # let b's own live subscription to a connect
                for i in range(samples):
                    started = time.perf_counter()
                    async with session.post(
                        a.url + "/ledger/entries", json={"stream": "s", "type": "t", "payload": {"i": i}}
                    ) as r:
                        seq = (await r.json())["seq"]
                    async for line in stream.content:
                        if line.startswith(b"data: "):
                            event = orjson.loads(line[6:])
                            if event["ledger_id"] == "node-a" and event["seq"] >= seq:
                                break
                    latencies.append(time.perf_counter() - started)
    finally:
        a.terminate()
        b.terminate()
    return latencies


async def mesh(work: Path, per_node: int) -> float:
    names = ["node-a", "node-b", "node-c"]
    nodes = [start_node(work / f"m-{n}", n, env=node_env(interval_s=1)) for n in names]
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            for x in nodes:
                for y in nodes:
                    if x is not y:
                        await add_peer(session, x, y, "both")

            async def write(node: NodeProcess) -> None:
                for first in range(0, per_node, 500):
                    batch = [{"stream": "s", "type": "t", "payload": {"i": i}} for i in range(first, first + 500)]
                    async with session.post(node.url + "/ledger/entries", json=batch) as r:
                        assert r.status == 201

            await asyncio.gather(*(write(n) for n in nodes))

            async def converged() -> bool:
                checks = [holds(session, n, lid, per_node) for n in nodes for lid in names]
                return all(await asyncio.gather(*checks))

            return await wait_for(converged, timeout=300)
    finally:
        for n in nodes:
            n.terminate()


def main() -> None:
    parser = arguments(__doc__, "small sizes, for a smoke test")
    parser.add_argument("--entries", type=int, help="entries to replicate (default 100,000)")
    args = parser.parse_args()
    entries = args.entries or (3_000 if args.quick else 100_000)
    samples = 20 if args.quick else 200
    per_node = 500 if args.quick else 5_000
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        log(f"building node-a with {entries} entries")
        asyncio.run(fill(work / "a", "node-a", entries))
        log("replicating (checkpoint mode)")
        checkpoint_s = asyncio.run(replicate(work, work / "a", entries, "checkpoint"))
        log("replicating (full mode)")
        full_s = asyncio.run(replicate(work, work / "a", entries, "full"))
        log(f"live propagation: {samples} single appends")
        latencies = asyncio.run(propagation(work, samples))
        log(f"mesh: 3 nodes x {per_node} entries")
        mesh_s = asyncio.run(mesh(work, per_node))
    report(
        "bench.sync",
        {
            "entries": entries,
            "sync_checkpoint_per_s": round(entries / checkpoint_s),
            "sync_full_per_s": round(entries / full_s),
            "propagation_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "propagation_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "mesh_entries_per_node": per_node,
            "mesh_converge_s": round(mesh_s, 2),
        },
    )


if __name__ == "__main__":
    main()
