"""Registry load: N registered nodes each heartbeating once a second, plus discovery queries.

    python -m bench.registry [--quick] [--nodes N] [--seconds S]

A registry process on 127.0.0.1; the nodes are simulated in this process (each with its own key,
signing each heartbeat as a node does). Heartbeats are spread evenly over each second; a discovery
query (capability filter, 100 results) runs every 100 ms. Errors are non-2xx answers or failures.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from bench.common import arguments, log, percentile, report
from node.ledger.clock import wall_ms
from protocol.records import sign_record
from protocol.requests import sign_request
from protocol.signing import KeyPair
from scenarios.procs import REPO


def start_registry(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    # open enrolment: the simulated nodes are the benchmark's own
    env = {**os.environ, "LEDGER_REGISTRY_RATE_PER_S": "1000000", "LEDGER_REGISTRY_BURST": "1000000",
           "LEDGER_REGISTRY_ENROLMENT": "open"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry.cli", "run", "--port", "0", "--data-dir", str(data_dir), "--ttl", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"registry did not start: {line}")
    return proc, match.group(1)


async def load(url: str, nodes: int, seconds: float) -> tuple[list[float], list[float], int]:
    keys = [KeyPair(os.urandom(32)) for _ in range(nodes)]
    ids = [f"bench-{i:05d}" for i in range(nodes)]
    heartbeats: list[float] = []
    discovers: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        for k, lid in zip(keys, ids, strict=True):
            record = sign_record(k, ledger_id=lid, name=lid, endpoints=["http://127.0.0.1:1"],
                                 capabilities=["ledger"], issued_at=wall_ms())  # fmt: skip
            async with session.post(url + "/registry/nodes", data=orjson.dumps(record.model_dump())) as r:
                assert r.status == 201, await r.text()

        async def beat(k: KeyPair, lid: str) -> None:
            nonlocal errors
            path = f"/registry/nodes/{lid}/heartbeat"
            started = time.perf_counter()
            try:
                async with session.post(url + path, headers=sign_request(k, lid, "POST", path, b"", wall_ms())) as r:
                    await r.read()
                    errors += r.status != 200
            except aiohttp.ClientError:
                errors += 1
            heartbeats.append(time.perf_counter() - started)

        async def query() -> None:
            nonlocal errors
            started = time.perf_counter()
            async with session.get(url + "/registry/nodes?capability=ledger&limit=100") as r:
                await r.read()
                errors += r.status != 200
            discovers.append(time.perf_counter() - started)

        tasks: set[asyncio.Task[None]] = set()
        begin = time.perf_counter()
        slot = 1.0 / nodes
        for tick in range(int(seconds)):
            for i in range(nodes):
                delay = begin + tick + i * slot - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(beat(keys[i], ids[i]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if i % max(1, nodes // 10) == 0:
                    q = asyncio.create_task(query())
                    tasks.add(q)
                    q.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return heartbeats, discovers, errors


def main() -> None:
    parser = arguments(__doc__, "100 nodes for 3 s, for a smoke test")
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    nodes = args.nodes or (100 if args.quick else 1000)
    seconds = args.seconds or (3 if args.quick else 30)
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as work:
        proc, url = start_registry(Path(work))
        try:
            log(f"{nodes} nodes heartbeating every second for {seconds:.0f} s")
            heartbeats, discovers, errors = asyncio.run(load(url, nodes, seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    report(
        "bench.registry",
        {
            "nodes": nodes,
            "seconds": seconds,
            "heartbeats": len(heartbeats),
            "heartbeat_p50_ms": round(percentile(heartbeats, 50) * 1000, 2),
            "heartbeat_p99_ms": round(percentile(heartbeats, 99) * 1000, 2),
            "discover_p95_ms": round(percentile(discovers, 95) * 1000, 2),
            "errors": errors,
        },
    )


if __name__ == "__main__":
    main()
