"""``/network/...``: who this node is."""

from __future__ import annotations

from aiohttp import web

import node
from node.api.context import LEDGER
from node.api.json import json_response
from protocol import PROTOCOL_VERSION
from protocol.signing import fingerprint

routes = web.RouteTableDef()

CAPABILITIES = ["ledger", "query"]


@routes.get("/network/info")
async def info(request: web.Request) -> web.Response:
    ledger = request.app[LEDGER]
    head = ledger.head
    return json_response(
        {
            "ledger_id": ledger.ledger_id,
            "public_key": ledger.keys.public_key.hex(),
            "key_fingerprint": fingerprint(ledger.keys.public_key),
            "version": node.__version__,
            "protocol": PROTOCOL_VERSION,
            "capabilities": CAPABILITIES,
            "head": {"seq": head.head_seq, "hash": head.head_hash.hex() if head.head_hash else None},
            "endpoints": {
                "entries": "/ledger/entries",
                "stats": "/ledger/stats",
                "checkpoint": "/ledger/checkpoint",
                "info": "/network/info",
                "metrics": "/metrics",
            },
        }
    )
