"""Indexed query latency on a large ledger: by subject_oid (about 10 matches per subject), in-process
and over HTTP, limit 100; then in-process again on a copy of the ledger with 50,000 more entries
committed and not yet indexed (the indexer held), so the answers come from the indexes and the
unindexed tail together.

    python -m bench.query [--quick] [--entries N] [--queries Q] [--unindexed U]
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import SUBJECTS, append_range, arguments, built_ledger, log, percentile, report
from node.keys import load_key_file
from node.ledger.service import Ledger
from node.settings import NodeSettings
from node.storage.contract import Filters
from node.storage.sqlite import open_sqlite
from scenarios.cluster import ADMIN_TOKEN, AUTH
from scenarios.procs import start_node


async def timed_queries(ledger: Ledger, subjects: list[str]) -> tuple[list[float], int]:
    latencies, found = [], 0
    for subject in subjects:
        started = time.perf_counter()
        page = await ledger.query(Filters(subject_oid=subject), limit=100)
        latencies.append(time.perf_counter() - started)
        found += len(page.rows)
    return latencies, found


async def in_process(settings: NodeSettings, subjects: list[str]) -> tuple[list[float], int]:
    async with Ledger.open(settings, load_key_file(settings.key_path), verify="fast") as ledger:
        return await timed_queries(ledger, subjects)


async def with_unindexed_tail(settings: NodeSettings, subjects: list[str], more: int) -> tuple[list[float], int]:
    """The queries on a copy of the ledger holding ``more`` entries committed after it, unindexed."""
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        copy = settings.model_copy(update={"data_dir": Path(tmp) / "copy"})
        shutil.copytree(settings.data_dir, copy.data_dir)
        async with (
            open_sqlite(copy.db_path, durability="normal", index_max_lag=more + 10_000, indexing=False) as storage,
            Ledger.open(copy, load_key_file(copy.key_path), verify="fast", storage=storage) as ledger,
        ):
            head = ledger.head.head_seq
            await append_range(ledger, head, more)
            lag = ledger.index_lag()
            assert lag == more, f"{lag} entries unindexed, not {more}"
            return await timed_queries(ledger, subjects)


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
    parser.add_argument("--unindexed", type=int, help="entries committed, not yet indexed (default 50,000)")
    args = parser.parse_args()
    entries = args.entries or (20_000 if args.quick else 1_000_000)
    unindexed = args.unindexed or (2_000 if args.quick else 50_000)
    settings = built_ledger(entries)
    rng = random.Random(7)
    subjects = [f"oid:bench:subject:{(rng.randrange(entries) * 7919) % SUBJECTS}" for _ in range(args.queries)]
    log(f"{args.queries} queries by subject_oid on {entries} entries")
    latencies, found = asyncio.run(in_process(settings, subjects))
    log(f"the same queries with {unindexed} more entries committed and not indexed")
    tail_latencies, tail_found = asyncio.run(with_unindexed_tail(settings, subjects, unindexed))
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
            "unindexed_entries": unindexed,
            "unindexed_mean_rows": round(tail_found / args.queries, 1),
            "unindexed_query_p50_ms": round(percentile(tail_latencies, 50) * 1000, 3),
            "unindexed_query_p95_ms": round(percentile(tail_latencies, 95) * 1000, 3),
            "http_query_p50_ms": round(percentile(http, 50) * 1000, 3),
            "http_query_p95_ms": round(percentile(http, 95) * 1000, 3),
        },
    )


if __name__ == "__main__":
    main()
