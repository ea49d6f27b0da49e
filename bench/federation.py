"""Federated queries over five node processes, and trust paths on a large graph.

    python -m bench.federation [--quick] [--entries N]

Five nodes on 127.0.0.1 hold N entries each (default 100,000); node-1 trusts the other four for
queries. A federated query for 100 results on an indexed filter (issuer_oid) is timed, then again
with a sixth peer that never answers (timeout 200 ms). Trust paths: best path on a random
1,000-ledger graph with 10,000 attestations, cold (graph built, nothing cached) and cached.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp
from aiohttp import web

from bench.common import arguments, log, percentile, report
from node.interop.trust import TrustGraph
from node.settings import TrustSettings
from protocol.signing import KeyPair
from protocol.trust import SYNC_TYPES, TrustAttestation
from scenarios.cluster import AUTH, add_peer, fill, node_env
from scenarios.procs import start_node

TIMEOUT_MS = 200


async def federated(work: Path, entries: int, queries: int) -> tuple[list[float], list[float]]:
    names = [f"node-{i}" for i in range(1, 6)]
    await asyncio.gather(*(fill(work / n, n, entries) for n in names))
    nodes = [start_node(work / n, n, "--verify", "fast", env=node_env(interval_s=3600, live=False)) for n in names]
    hang = web.Application()

    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response({"entries": []})

    hang.router.add_get("/ledger/entries", never)
    runner = web.AppRunner(hang, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hang_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            first = nodes[0]
            for other in nodes[1:]:
                await add_peer(session, first, other, "push")  # pins the key; no pulling
                body = {"to": other.data_dir.name, "level": 0.9, "type": "query-only"}
                async with session.post(first.url + "/admin/trust", json=body, headers=AUTH) as r:
                    assert r.status == 201

            async def run(count: int) -> list[float]:
                times = []
                for i in range(count):
                    issuer = f"oid:bench:org:{i % 10}"
                    params = {"issuer_oid": issuer, "limit": "100", "timeout_ms": str(TIMEOUT_MS)}
                    started = time.perf_counter()
                    async with session.get(first.url + "/network/query", params=params) as r:
                        answer = await r.json()
                    times.append(time.perf_counter() - started)
                    assert len(answer["entries"]) == 100, answer["peers"]
                return times

            await run(5)  # warm up connections
            plain = await run(queries)
            slow_key = KeyPair(bytes([42] * 32)).public_key.hex()
            body = {"url": hang_url, "ledger_id": "node-slow", "public_key": slow_key, "mode": "push"}
            async with session.post(first.url + "/admin/peers", json=body, headers=AUTH) as r:
                assert r.status == 201
            trust = {"to": "node-slow", "level": 0.9, "type": "query-only"}
            async with session.post(first.url + "/admin/trust", json=trust, headers=AUTH) as r:
                assert r.status == 201
            hanging = await run(max(20, queries // 4))
    finally:
        for node in nodes:
            node.terminate()
        await runner.cleanup()
    return plain, hanging


def trust_paths(ledgers: int = 1000, edges: int = 10_000) -> tuple[float, float]:
    rng = random.Random(1)
    names = [f"l{i:04d}" for i in range(ledgers)]
    graph = TrustGraph(SimpleNamespace(ledger_id=names[0]), TrustSettings(max_depth=4), None)  # type: ignore[arg-type]
    sig = KeyPair(bytes(32)).sign(b"x", b"x").hex()
    while len(graph._edges) < edges:
        a, b = rng.sample(names, 2)
        graph._put(
            TrustAttestation.model_construct(
                source=a, target=b, level=rng.uniform(0.3, 1.0), type="full", expires_at=2**53 - 1, issued_at=1,
                sig=sig,
            )
        )  # fmt: skip
    colds, cached = [], []
    for target in rng.sample(names[1:], 20):
        graph._changed()  # a cold cache
        started = time.perf_counter()
        graph.score(names[0], target, SYNC_TYPES)
        colds.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(1000):
            graph.score(names[0], target, SYNC_TYPES)
        cached.append((time.perf_counter() - started) / 1000)
    return percentile(colds, 50), percentile(cached, 50)


def main() -> None:
    parser = arguments(__doc__, "2,000 entries per node, for a smoke test")
    parser.add_argument("--entries", type=int, help="entries per node (default 100,000)")
    args = parser.parse_args()
    entries = args.entries or (2_000 if args.quick else 100_000)
    queries = 40 if args.quick else 200
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp:
        work = Path(tmp)
        log(f"5 nodes x {entries} entries; {queries} federated queries")
        plain, hanging = asyncio.run(federated(work, entries, queries))
    log("trust paths on 1,000 ledgers / 10,000 attestations")
    cold, cached = trust_paths()
    report(
        "bench.federation",
        {
            "entries_per_node": entries,
            "federated_p50_ms": round(percentile(plain, 50) * 1000, 2),
            "federated_p95_ms": round(percentile(plain, 95) * 1000, 2),
            "federated_hang_p95_ms": round(percentile(hanging, 95) * 1000, 2),
            "timeout_ms": TIMEOUT_MS,
            "trust_path_cold_ms": round(cold * 1000, 3),
            "trust_path_cached_ms": round(cached * 1000, 4),
        },
    )


if __name__ == "__main__":
    main()
