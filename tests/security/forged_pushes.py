"""An attacker process for test_serving.py: pushes of a 4 MB body with a bogus signature claiming a
pinned ledger, ``at_once`` at a time spread over ``addresses`` loopback addresses (127.0.3.1, ...), for
``secs``; prints the answers counted, as JSON. Run apart from the test so that its own event loop,
busy sending, does not slow the test's /health probes.

usage: python -m tests.security.forged_pushes URL PINNED_ID ADDRESSES AT_ONCE SECS
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter

import aiohttp

BODY = b"[" + b"1," * (2_000_000 - 1) + b"1]"


async def flood(url: str, pinned: str, addresses: int, at_once: int, secs: float) -> Counter[str]:
    counts: Counter[str] = Counter()
    end = time.monotonic() + secs
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.3.{k + 1}", 0), limit=at_once))
        for k in range(addresses)
    ]

    async def pushes(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < end:
            headers = {"X-Ledger-Id": pinned, "X-Ledger-Timestamp": str(int(time.time() * 1000)),
                       "X-Ledger-Nonce": os.urandom(16).hex(), "X-Ledger-Signature": "00" * 64,
                       "Content-Type": "application/json"}  # fmt: skip
            try:
                async with session.post(url + "/ledger/sync/push", data=BODY, headers=headers) as response:
                    await response.read()
                    counts[str(response.status)] += 1
            except aiohttp.ClientError as exc:
                counts[type(exc).__name__] += 1

    try:
        await asyncio.gather(*(pushes(sessions[k % addresses]) for k in range(at_once)))
    finally:
        for session in sessions:
            await session.close()
    return counts


if __name__ == "__main__":
    url, pinned, addresses, at_once, secs = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5]), float(sys.argv[5])
    print(json.dumps(asyncio.run(flood(url, pinned, addresses, at_once, secs))))
