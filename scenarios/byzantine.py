"""A peer that lies: the lies a sync peer can tell, and a server that tells one (tests and scenarios)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web

Lie = Callable[[dict[str, Any]], dict[str, Any]]


def _entries(page: dict[str, Any], change: Callable[[list[dict[str, Any]]], None]) -> dict[str, Any]:
    page = copy.deepcopy(page)
    change(page["entries"])
    return page


def _swap(items: list[Any], i: int, j: int) -> None:
    items[i], items[j] = items[j], items[i]


# Each turns a genuine page of at least nine entries with a checkpoint into a lie.
LIES: dict[str, Lie] = {
    "forged signature": lambda p: _entries(p, lambda e: e[5].update(sig=e[6]["sig"])),
    "altered payload": lambda p: _entries(p, lambda e: e[3]["payload"].update(n=999)),
    "wrong hash": lambda p: _entries(p, lambda e: e[8].update(hash="0" * 64)),
    "gap": lambda p: _entries(p, lambda e: e.pop(4)),
    "reordered": lambda p: _entries(p, lambda e: _swap(e, 2, 3)),
    "forged checkpoint": lambda p: {**p, "checkpoints": [{**p["checkpoints"][0], "sig": "00" * 64}]},
    "oversized page": lambda p: {**p, "entries": p["entries"] * 40},
    "wrong shape": lambda p: {"ledger_id": p["ledger_id"], "entries": "everything"},
}


@asynccontextmanager
async def liar(page: dict[str, Any], advertised_key: str, liar_id: str = "node-m") -> AsyncIterator[str]:
    """A peer ``liar_id`` on 127.0.0.1 that advertises the head of the page's ledger under
    ``advertised_key`` and serves ``page`` for every pull; yields its URL."""
    ledger_id = page["ledger_id"]

    async def heads(request: web.Request) -> web.Response:
        head = {"ledger_id": ledger_id, "public_key": advertised_key, "seq": 30, "hash": "ab" * 32}
        return web.json_response({"ledger_id": liar_id, "ledgers": [head]})

    async def pull(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(page), content_type="application/json")

    app = web.Application()
    app.router.add_get("/ledger/sync/heads", heads)
    app.router.add_get("/ledger/sync/pull", pull)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
