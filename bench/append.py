"""Append throughput: in-process batches, HTTP single entries from 32 clients, HTTP batches.

    python -m bench.append [--quick] [--entries N]

In-process: batches of 1000 from 4 concurrent producers (group commit merges them), every entry
signed, durability=full (fsync per commit); ``indexed_per_s`` counts from the first append until
the background indexer has every entry of the burst in the secondary indexes. HTTP: a node
process on 127.0.0.1, clients in this process.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import append_range, arguments, bench_draft, ledger_settings, log, percentile, report
from node.keys import load_or_create_key_file
from node.ledger.service import Ledger
from scenarios.cluster import ADMIN_TOKEN, AUTH
from scenarios.procs import start_node


async def in_process(data_dir: Path, entries: int) -> tuple[float, float]:
    """Entries per second acknowledged, and until the secondary indexes cover the whole burst."""
    settings = ledger_settings(data_dir)
    async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as ledger:
        started = time.perf_counter()
        seconds = await append_range(ledger, 0, entries)
        await ledger.index_now()  # what the background indexer has not done yet
        indexed = time.perf_counter() - started
    return entries / seconds, entries / indexed


async def http_single(url: str, entries: int, clients: int = 32) -> tuple[float, list[float]]:
    bodies = [bench_draft(i).model_dump(exclude_none=True) for i in range(entries)]
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=AUTH) as session:

        async def client(k: int) -> None:
            for body in bodies[k::clients]:
                started = time.perf_counter()
                async with session.post(url + "/ledger/entries", json=body) as response:
                    await response.read()
                    assert response.status == 201, response.status
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        return entries / (time.perf_counter() - started), latencies


async def http_batches(url: str, entries: int, clients: int = 4) -> float:
    batches = [
        [bench_draft(i).model_dump(exclude_none=True) for i in range(s, min(s + 1000, entries))]
        for s in range(0, entries, 1000)
    ]
    async with aiohttp.ClientSession(headers=AUTH) as session:

        async def client(k: int) -> None:
            for batch in batches[k::clients]:
                async with session.post(url + "/ledger/entries", json=batch) as response:
                    await response.read()
                    assert response.status == 201, response.status

        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        return entries / (time.perf_counter() - started)


def main() -> None:
    parser = arguments(__doc__, "small sizes, for a smoke test")
    parser.add_argument("--entries", type=int, help="entries for the batch runs (default 200,000; quick 3,000)")
    args = parser.parse_args()
    batch_entries = args.entries or (3_000 if args.quick else 200_000)
    single_entries = 500 if args.quick else 20_000
    with tempfile.TemporaryDirectory(prefix="bench-append-") as tmp:
        work = Path(tmp)
        log(f"in-process: {batch_entries} entries in batches of 1000")
        batch_rate, indexed_rate = asyncio.run(in_process(work / "inproc", batch_entries))
        node = start_node(work / "http", "bench", env={"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN})
        try:
            log(f"HTTP single: {single_entries} entries from 32 clients")
            single_rate, latencies = asyncio.run(http_single(node.url, single_entries))
            log(f"HTTP batches: {batch_entries} entries")
            http_batch_rate = asyncio.run(http_batches(node.url, batch_entries))
        finally:
            node.terminate()
    report(
        "bench.append",
        {
            "append_batch_per_s": round(batch_rate),
            "indexed_per_s": round(indexed_rate),
            "http_single_per_s": round(single_rate),
            "http_single_p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "http_single_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "http_batch_per_s": round(http_batch_rate),
            "batch_entries": batch_entries,
            "single_entries": single_entries,
            "durability": "full",
        },
    )


if __name__ == "__main__":
    main()
