"""Indexed query latency on a large ledger: by subject_oid (about 10 matches per subject), in-process
and over HTTP, limit 100.

    python -m bench.query [--quick] [--entries N] [--queries Q]
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from bench.common import SUBJECTS, arguments, built_ledger, log, percentile, report
from node.keys import load_key_file
from node.ledger.service import Ledger
from node.settings import NodeSettings
from node.storage.contract import Filters
from scenarios.cluster import ADMIN_TOKEN, AUTH
from scenarios.procs import start_node


async def in_process(settings: NodeSettings, subjects: list[str]) -> tuple[list[float], int]:
    latencies, found = [], 0
    async with Ledger.open(settings, load_key_file(settings.key_path), verify="fast") as ledger:
        for subject in subjects:
            started = time.perf_counter()
            page = await ledger.query(Filters(subject_oid=subject), limit=100)
            latencies.append(time.perf_counter() - started)
            found += len(page.rows)
    return latencies, found


async def over_http(url: str, subjects: list[str]) -> list[float]:
    latencies = []
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for subject in subjects:
            started = time.perf_counter()
            async with session.get(url + "/ledger/entries", params={"subject_oid": subject, "limit": "100"}) as r:
                await r.read()
                assert r.status == 200
            latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = arguments(__doc__, "20,000 entries, for a smoke test")
    parser.add_argument("--entries", type=int, help="ledger size (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=2000, help="queries to time (default 2000)")
    args = parser.parse_args()
    entries = args.entries or (20_000 if args.quick else 1_000_000)
    settings = built_ledger(entries)
    rng = random.Random(7)
    subjects = [f"oid:bench:subject:{(rng.randrange(entries) * 7919) % SUBJECTS}" for _ in range(args.queries)]
    log(f"{args.queries} queries by subject_oid on {entries} entries")
    latencies, found = asyncio.run(in_process(settings, subjects))
    node = start_node(settings.data_dir, "bench", "--verify", "fast", env={"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        http = asyncio.run(over_http(node.url, subjects))
    finally:
        node.terminate()
    report(
        "bench.query",
        {
            "entries": entries,
            "queries": args.queries,
            "mean_rows": round(found / args.queries, 1),
            "query_p50_ms": round(percentile(latencies, 50) * 1000, 3),
            "query_p95_ms": round(percentile(latencies, 95) * 1000, 3),
            "http_query_p50_ms": round(percentile(http, 50) * 1000, 3),
            "http_query_p95_ms": round(percentile(http, 95) * 1000, 3),
        },
    )


if __name__ == "__main__":
    main()
