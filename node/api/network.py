"""``/network/...``: who this node is."""

from __future__ import annotations

from aiohttp import web

import node
from node.api.context import DISCOVERY, LEDGER
from node.api.json import json_response, read_json, validate
from node.errors import IdentityConflict
from node.interop.records import CAPABILITIES
from protocol import PROTOCOL_VERSION
from protocol.records import NodeRecord
from protocol.signing import fingerprint

routes = web.RouteTableDef()


@routes.get("/network/info")
async def info(request: web.Request) -> web.Response:
    ledger = request.app[LEDGER]
    discovery = request.app[DISCOVERY]
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
            "record": None if discovery.record is None else discovery.record.model_dump(),
            "endpoints": {
                "entries": "/ledger/entries",
                "stats": "/ledger/stats",
                "checkpoint": "/ledger/checkpoint",
                "info": "/network/info",
                "metrics": "/metrics",
            },
        }
    )


@routes.get("/network/discover")
async def discover(request: web.Request) -> web.Response:
    """Every node discovered (registry, mDNS, bootstrap, exchange), with its sources and status."""
    return json_response({"nodes": request.app[DISCOVERY].discovered()})


@routes.get("/network/ledgers")
async def ledgers(request: web.Request) -> web.Response:
    """Peer exchange: signed records of this node and of its verified peers."""
    return json_response(request.app[DISCOVERY].records())


@routes.post("/network/introduce")
async def introduce(request: web.Request) -> web.Response:
    """A node hands over its signed record; it is verified like any discovered record."""
    record = validate(NodeRecord, await read_json(request))
    found = await request.app[DISCOVERY].consider(record, "introduce")
    if found is not None and found.status == "identity-conflict":
        raise IdentityConflict(found.detail or "identity conflict")
    return json_response({"status": None if found is None else found.status}, status=202)
