"""Replication between node processes on 127.0.0.1: throughput, live propagation, mesh convergence.

    python -m bench.sync [--quick] [--entries N] [--repeats R] [--hypercore | --no-hypercore]

- A holds N entries (default 100,000); B, empty, pulls them all: once verifying by checkpoint, once
  verifying every signature. Rate = N / time from the sync trigger to B holding A's head. Each is
  measured R times (default 3; 1 with --quick), interleaved, and the median reported.
- Hypercore, in the same run: the harness in ../shared/anchors/hypercore (see bench.hypercore)
  replicates N blocks between two processes, R times; ``ratio_checkpoint`` and ``ratio_full`` are
  our medians over its median. Skipped without node/npm (said so on stderr), and under --quick
  unless --hypercore asks for it (so the smoke test does not depend on npm).
- Live propagation: single appends at A, time until B's head stream announces them (p50, p99).
- Mesh: three nodes, all peers of each other, each writing 5,000 entries at once; time from the
  last write until all three hold identical heads of all three ledgers.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import hypercore
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


async def replicate(work: Path, origin_dir: Path, entries: int, verify: str, attempt: int = 0) -> float:
    a = start_node(origin_dir, "node-a", env=node_env(interval_s=3600, live=False))
    b_dir = work / f"b-{verify}-{attempt}"
    b = start_node(b_dir, f"mirror-{verify}-{attempt}", env=node_env(interval_s=3600, live=False, verify=verify))
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


def anchor(work: Path | None, entries: int) -> int | None:
    """One Hypercore replication of ``entries`` blocks (blocks/s), or None when it cannot run."""
    if work is None:
        return None
    try:
        return hypercore.run(work, entries).replicate_per_s
    except hypercore.AnchorUnavailable as exc:
        log(f"hypercore: {exc}")
        return None


def main() -> None:
    parser = arguments(__doc__, "small sizes, for a smoke test (Hypercore skipped unless --hypercore)")
    parser.add_argument("--entries", type=int, help="entries to replicate (default 100,000)")
    parser.add_argument("--repeats", type=int, help="measures of each replication (default 3; quick 1)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--hypercore", action="store_true", default=None, help="run the Hypercore anchor")
    group.add_argument("--no-hypercore", dest="hypercore", action="store_false", help="skip the Hypercore anchor")
    args = parser.parse_args()
    entries = args.entries or (3_000 if args.quick else 100_000)
    repeats = args.repeats or (1 if args.quick else 3)
    samples = 20 if args.quick else 200
    per_node = 500 if args.quick else 5_000
    with_anchor = (not args.quick) if args.hypercore is None else args.hypercore
    checkpoint_s: list[float] = []
    full_s: list[float] = []
    anchor_rates: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        anchor_dir = None
        if with_anchor:
            log("hypercore: copying the harness and running npm ci")
            try:
                anchor_dir = stack.enter_context(hypercore.installed())
            except hypercore.AnchorUnavailable as exc:
                log(f"hypercore: {exc}; our figures alone")
        log(f"building node-a with {entries} entries")
        asyncio.run(fill(work / "a", "node-a", entries))
        for attempt in range(repeats):  # interleaved, so a busy spell on the shared machine hits all three
            log(f"round {attempt + 1}/{repeats}: replicating (checkpoint mode)")
            checkpoint_s.append(asyncio.run(replicate(work, work / "a", entries, "checkpoint", attempt)))
            log(f"round {attempt + 1}/{repeats}: replicating (full mode)")
            full_s.append(asyncio.run(replicate(work, work / "a", entries, "full", attempt)))
            if anchor_dir is not None:
                log(f"round {attempt + 1}/{repeats}: hypercore replicating {entries} blocks")
                rate = anchor(anchor_dir, entries)
                if rate is None:
                    anchor_dir = None
                else:
                    anchor_rates.append(rate)
        log(f"live propagation: {samples} single appends")
        latencies = asyncio.run(propagation(work, samples))
        log(f"mesh: 3 nodes x {per_node} entries")
        mesh_s = asyncio.run(mesh(work, per_node))
    checkpoint_rates = [entries / s for s in checkpoint_s]
    full_rates = [entries / s for s in full_s]
    figures: dict[str, Any] = {
        "entries": entries,
        "repeats": repeats,
        "sync_checkpoint_per_s": round(statistics.median(checkpoint_rates)),
        "sync_full_per_s": round(statistics.median(full_rates)),
        "sync_checkpoint_runs": [round(r) for r in checkpoint_rates],
        "sync_full_runs": [round(r) for r in full_rates],
    }
    if anchor_rates:
        anchor_rate = statistics.median(anchor_rates)
        figures |= {
            "hypercore_replicate_per_s": round(anchor_rate),
            "hypercore_runs": anchor_rates,
            "ratio_checkpoint": round(statistics.median(checkpoint_rates) / anchor_rate, 2),
            "ratio_full": round(statistics.median(full_rates) / anchor_rate, 2),
        }
    figures |= {
        "propagation_p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "propagation_p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "mesh_entries_per_node": per_node,
        "mesh_converge_s": round(mesh_s, 2),
    }
    report("bench.sync", figures)


if __name__ == "__main__":
    main()
