"""Auth hardening: admin endpoints refuse every token, path and method trick (0 bypasses), the token
comparison leaks no timing, and forged or replayed node-to-node requests are never accepted."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from node.keys import load_key_file
from node.ledger.clock import wall_ms
from protocol.requests import SIGNATURE, sign_request
from protocol.signing import KeyPair
from tests.conftest import ADMIN_TOKEN, RunningNode
from tests.reliability.conftest import record, size

MakeNode = Callable[..., Awaitable[RunningNode]]


async def raw(url: str, method: str, target: str, headers: dict[str, str] | None = None) -> int:
    """Send ``method target`` byte for byte (no client normalises the path); the status code."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close", "Content-Length: 0",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]  # fmt: skip
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


def admin_operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path.replace("{ledger_id}", "node-b").replace("{conflict_id}", "1"))
            for path, item in spec["paths"].items() for method, op in item.items()
            if op.get("security") == [{"bearer": ["admin"]}]]  # fmt: skip


WRONG_TOKENS = {
    "no header": {},
    "wrong token": {"Authorization": "Bearer " + "x" * len(ADMIN_TOKEN)},
    "token upper case": {"Authorization": "Bearer " + ADMIN_TOKEN.upper()},
    "token swapped case": {"Authorization": "Bearer " + ADMIN_TOKEN.swapcase()},
    "token prefix": {"Authorization": "Bearer " + ADMIN_TOKEN[:-1]},
    "token plus a byte": {"Authorization": "Bearer " + ADMIN_TOKEN + "x"},
    "empty bearer": {"Authorization": "Bearer "},
    "basic scheme": {"Authorization": "Basic " + ADMIN_TOKEN},
    "token without scheme": {"Authorization": ADMIN_TOKEN},
    "other header": {"X-Admin-Token": ADMIN_TOKEN},
    "cookie": {"Cookie": f"token={ADMIN_TOKEN}"},
}
QUERY_TOKENS = [f"?token={ADMIN_TOKEN}", f"?access_token={ADMIN_TOKEN}", f"?Authorization=Bearer%20{ADMIN_TOKEN}"]
PATH_TRICKS = ["//{p}", "/.{p}", "/admin/..{p}", "{p}/", "{p}%2F", "/%61dmin{rest}", "%2F{p}",
               "/ADMIN{rest}", "{p};x", "/./{p}"]  # fmt: skip


async def test_no_admin_bypass_by_token_path_or_method(make_node: MakeNode) -> None:
    node = await make_node(admin_token=ADMIN_TOKEN)
    _, spec, _ = await node.request("GET", "/openapi.json")
    operations = admin_operations(spec)
    assert len(operations) >= 10
    tries = bypasses = 0
    for method, path in operations:
        rest = path.removeprefix("/admin")
        for headers in WRONG_TOKENS.values():
            status = await raw(node.url, method, path, headers)
            tries, bypasses = tries + 1, bypasses + (status < 300 or status >= 500)
        for query in QUERY_TOKENS:
            status = await raw(node.url, method, path + query)
            tries, bypasses = tries + 1, bypasses + (status < 300 or status >= 500)
        for trick in PATH_TRICKS:
            status = await raw(node.url, method, trick.format(p=path.lstrip("/"), rest=rest))
            tries, bypasses = tries + 1, bypasses + (status < 300 or status >= 500)
        for other in ("HEAD", "OPTIONS", "TRACE", "PUT", "PATCH"):
            status = await raw(node.url, other, path)
            tries, bypasses = tries + 1, bypasses + (status < 300 or status >= 500)
    record("admin: tricks tried", tries)
    record("admin: bypasses", bypasses, "0")
    assert bypasses == 0


async def test_the_scheme_is_case_insensitive_but_the_token_is_not(node: RunningNode) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert await raw(node.url, "GET", "/admin/status", {"Authorization": f"{scheme} {ADMIN_TOKEN}"}) == 200
    assert await raw(node.url, "GET", "/admin/status", {"Authorization": f"bearer {ADMIN_TOKEN.upper()}"}) == 401


async def test_without_a_configured_token_admin_answers_401_to_everyone(make_node: MakeNode) -> None:
    node = await make_node(admin_token=None)
    for path in ("/admin/status", "/admin/peers", "/admin/verify", "/network/connect", "/admin/trust"):
        for method in ("GET", "POST"):
            assert await raw(node.url, method, path, {"Authorization": f"Bearer {ADMIN_TOKEN}"}) in (401, 405)
            assert await raw(node.url, method, path, {"Authorization": "Bearer "}) in (401, 405)


async def test_token_comparison_time_does_not_depend_on_how_much_matches(make_node: MakeNode) -> None:
    """Interleaved requests with a token wrong in its first byte and one wrong in its last byte: the
    median times are indistinguishable (within the noise of the loopback itself). Failed tokens are
    rate-limited per address; this test's address may fail as often as it likes."""
    node = await make_node(access={"anonymous_rate_per_s": 1e6, "anonymous_burst": 10**7})
    tries = size(2000, 10_000)
    first = "Bearer " + ("y" + ADMIN_TOKEN[1:])
    last = "Bearer " + (ADMIN_TOKEN[:-1] + "y")
    times: dict[str, list[float]] = {first: [], last: []}
    async with aiohttp.ClientSession() as session:
        for i in range(tries):
            token = first if i % 2 else last
            started = time.perf_counter_ns()
            async with session.get(node.url + "/admin/status", headers={"Authorization": token}) as response:
                await response.read()
            times[token].append(time.perf_counter_ns() - started)
            assert response.status == 401
    median_first, median_last = statistics.median(times[first]), statistics.median(times[last])
    spread = statistics.median(abs(t - median_first) for t in times[first])  # median absolute deviation
    difference = abs(median_first - median_last)
    record(f"token timing: median difference over {tries} tries (us)", round(difference / 1000, 2),
           f"within noise (MAD {spread / 1000:.1f} us)")  # fmt: skip
    assert difference <= max(spread, 20_000), (median_first, median_last, spread)


HEADS = "/ledger/sync/heads"


async def test_forged_or_replayed_node_requests_are_never_accepted(make_node: MakeNode) -> None:
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync={"interval_s": 60, "live": False})
    b = await make_node("node-b", sync={"interval_s": 60, "live": False})
    keys = load_key_file(b.settings.key_path)
    body = {"url": b.url, "ledger_id": "node-b", "public_key": keys.public_key.hex(), "mode": "pull"}
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (await a.request("POST", "/admin/peers", headers=auth, json=body))[0] == 201
    push_body = orjson.dumps({"ledger_id": "node-b", "entries": []})
    stranger = KeyPair(bytes(range(32)))

    def forged(kind: str) -> tuple[str, str, dict[str, str], bytes]:
        now = wall_ms()
        if kind == "stale":
            return "GET", HEADS, sign_request(keys, "node-b", "GET", HEADS, b"", now - 10 * 60_000), b""
        if kind == "from the future":
            return "GET", HEADS, sign_request(keys, "node-b", "GET", HEADS, b"", now + 10 * 60_000), b""
        if kind == "path changed":
            return "GET", HEADS, sign_request(keys, "node-b", "GET", "/ledger/sync/status", b"", now), b""
        if kind == "method changed":
            return "POST", "/ledger/sync/push", sign_request(keys, "node-b", "GET", "/ledger/sync/push", push_body,
                                                             now), push_body  # fmt: skip
        if kind == "body changed":
            headers = sign_request(keys, "node-b", "POST", "/ledger/sync/push", push_body, now)
            return "POST", "/ledger/sync/push", headers, push_body.replace(b"[]", b"[ ]")
        if kind == "wrong key":
            return "GET", HEADS, sign_request(stranger, "node-b", "GET", HEADS, b"", now), b""
        if kind == "unknown sender":
            return "GET", HEADS, sign_request(stranger, "node-x", "GET", HEADS, b"", now), b""
        headers = sign_request(keys, "node-b", "GET", HEADS, b"", now)  # bad signature
        headers[SIGNATURE] = "00" * 64
        return "GET", HEADS, headers, b""

    kinds = ["stale", "from the future", "path changed", "method changed", "body changed", "wrong key",
             "unknown sender", "bad signature"]  # fmt: skip
    rounds = size(20, 200)
    accepted = tried = 0
    async with aiohttp.ClientSession() as session:

        async def send(method: str, path: str, headers: dict[str, str], data: bytes) -> int:
            headers = {**headers, "Content-Type": "application/json"}
            async with session.request(method, a.url + path, headers=headers, data=data or None) as response:
                await response.read()
                return response.status

        for _ in range(rounds):
            for kind in kinds:
                tried += 1
                accepted += await send(*forged(kind)) < 300
            genuine = sign_request(keys, "node-b", "GET", HEADS, b"", wall_ms())
            assert await send("GET", HEADS, genuine, b"") == 200  # the genuine request passes once
            tried += 1
            accepted += await send("GET", HEADS, genuine, b"") < 300  # and its replay does not
    record("node-to-node: forged or replayed requests tried", tried)
    record("node-to-node: forged or replayed requests accepted", accepted, "0")
    assert accepted == 0


@pytest.mark.parametrize("header", ["Bearer", "bearer"])
async def test_a_refusal_says_how_to_authenticate(node: RunningNode, header: str) -> None:
    status, problem, ctype = await node.request("GET", "/admin/status", headers={"Authorization": f"{header} nope"})
    assert status == 401 and ctype == "application/problem+json" and "Bearer" in problem["detail"]
    status, problem, ctype = await node.request("GET", "/admin/status", anonymous=True)
    assert status == 401 and ctype == "application/problem+json" and "Bearer" in problem["detail"]
