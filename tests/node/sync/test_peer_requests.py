"""Node-to-node request signing: only fresh, unreplayed requests signed by a pinned key get through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import orjson
import pytest

from node.keys import load_key_file
from node.ledger.clock import wall_ms
from protocol.requests import NONCE, SIGNATURE, TIMESTAMP, sign_request
from protocol.signing import KeyPair
from tests.conftest import ADMIN_TOKEN, RunningNode

MakeNode = Callable[..., Awaitable[RunningNode]]
HEADS = "/ledger/sync/heads"


@pytest.fixture
async def pair(make_node: MakeNode) -> tuple[RunningNode, RunningNode, KeyPair]:
    """Node a knows node b (b is its peer); b's key signs the requests."""
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync={"interval_s": 60, "live": False})
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync={"interval_s": 60, "live": False})
    b_keys = load_key_file(b.settings.key_path)
    status, _, _ = await a.request(
        "POST", "/admin/peers", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"url": b.url, "ledger_id": "node-b", "public_key": b_keys.public_key.hex(), "mode": "pull"},
    )  # fmt: skip
    assert status == 201
    return a, b, b_keys


async def send(node: RunningNode, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, node.url + path, headers=headers, data=body or None) as response:
            await response.read()
            return response.status


async def test_a_signed_request_passes_once(pair: tuple[RunningNode, RunningNode, KeyPair]) -> None:
    a, _, keys = pair
    headers = sign_request(keys, "node-b", "GET", HEADS, b"", wall_ms())
    assert await send(a, "GET", HEADS, headers) == 200
    assert await send(a, "GET", HEADS, headers) == 401  # the same nonce again: a replay


async def test_unsigned_stale_tampered_and_foreign_requests_are_refused(
    pair: tuple[RunningNode, RunningNode, KeyPair],
) -> None:
    a, _, keys = pair
    assert await send(a, "GET", HEADS, {}) == 401
    stale = sign_request(keys, "node-b", "GET", HEADS, b"", wall_ms() - 10 * 60 * 1000)
    assert await send(a, "GET", HEADS, stale) == 401
    future = sign_request(keys, "node-b", "GET", HEADS, b"", wall_ms() + 10 * 60 * 1000)
    assert await send(a, "GET", HEADS, future) == 401
    other_path = sign_request(keys, "node-b", "GET", "/ledger/sync/status", b"", wall_ms())
    assert await send(a, "GET", HEADS, other_path) == 401
    body = orjson.dumps({"ledger_id": "node-b", "entries": []})
    changed = sign_request(keys, "node-b", "POST", "/ledger/sync/push", body, wall_ms())
    assert await send(a, "POST", "/ledger/sync/push", changed, body + b" ") == 401
    stranger = KeyPair(bytes(range(32)))
    assert await send(a, "GET", HEADS, sign_request(stranger, "node-b", "GET", HEADS, b"", wall_ms())) == 401
    assert await send(a, "GET", HEADS, sign_request(stranger, "node-x", "GET", HEADS, b"", wall_ms())) == 401
    bad_sig = sign_request(keys, "node-b", "GET", HEADS, b"", wall_ms())
    bad_sig[SIGNATURE] = "00" * 64
    assert await send(a, "GET", HEADS, bad_sig) == 401
    malformed = sign_request(keys, "node-b", "GET", HEADS, b"", wall_ms())
    malformed[TIMESTAMP], malformed[NONCE] = "soon", "short"
    assert await send(a, "GET", HEADS, malformed) == 401


async def test_pushes_only_from_peers(make_node: MakeNode, pair: tuple[RunningNode, RunningNode, KeyPair]) -> None:
    a, b, b_keys = pair
    # b is a's peer; a is not b's peer, though b has pinned a's key through a's own ledger below
    body = orjson.dumps({"ledger_id": "node-b", "entries": []})
    headers = sign_request(b_keys, "node-b", "POST", "/ledger/sync/push", body, wall_ms())
    headers["Content-Type"] = "application/json"
    assert await send(a, "POST", "/ledger/sync/push", headers, body) == 200
    a_keys = load_key_file(a.settings.key_path)
    await b.request("POST", "/admin/peers", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    json={"url": a.url, "ledger_id": "node-a", "public_key": a_keys.public_key.hex()})  # fmt: skip
    await b.request("DELETE", "/admin/peers/node-a", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    headers = sign_request(a_keys, "node-a", "POST", "/ledger/sync/push", body, wall_ms())
    headers["Content-Type"] = "application/json"
    assert await send(b, "POST", "/ledger/sync/push", headers, body) == 401  # pinned, but no longer a peer
