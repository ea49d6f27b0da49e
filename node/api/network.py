"""``/network/...``: who this node is."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

import node
from node.api.auth import audit
from node.api.context import DISCOVERY, LEDGER, SYNC, TRUST
from node.api.json import json_response, read_json, validate, validate_query
from node.errors import IdentityConflict, InvalidRequest
from node.interop.records import CAPABILITIES
from protocol import PROTOCOL_VERSION
from protocol.models import LedgerId
from protocol.openapi import operation
from protocol.records import NodeRecord
from protocol.signing import fingerprint
from protocol.trust import QUERY_TYPES, SYNC_TYPES, TrustAttestation

routes = web.RouteTableDef()


@routes.get("/network/info")
@operation("ledger id, public key and fingerprint, version, capabilities, head, signed record", auth="public")
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
@operation("the admitted peers discovered, with their sources", auth="read")
async def discover(request: web.Request) -> web.Response:
    """The admitted peers among the nodes discovered, with their sources (candidates: /admin/candidates)."""
    return json_response({"nodes": [n for n in request.app[DISCOVERY].discovered() if n["status"] == "peer"]})


@routes.get("/network/ledgers")
@operation("peer exchange: signed records of this node and its admitted peers", auth="public")
async def ledgers(request: web.Request) -> web.Response:
    """Peer exchange: signed records of this node and of its admitted peers."""
    return json_response(request.app[DISCOVERY].records())


@routes.post("/network/introduce")
@operation("propose this node as a candidate peer with its signed record", body=NodeRecord, ok=202, auth="public")
async def introduce(request: web.Request) -> web.Response:
    """A node proposes itself with its signed record: verified and kept as a candidate (``candidate``),
    or ``peer`` when it is one already; admission is the operator's or a trust path's decision."""
    record = validate(NodeRecord, await read_json(request))
    found = await request.app[DISCOVERY].consider(record, "introduce")
    if found is not None and found.status == "identity-conflict":
        raise IdentityConflict(found.detail or "identity conflict")
    return json_response({"status": None if found is None else found.status}, status=202)


class TopologyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["json", "graphml", "dot"] = "json"


class PathParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    to: LedgerId
    source: LedgerId | None = Field(None, alias="from")
    use: Literal["sync", "query"] = "sync"


@routes.get("/network/trust")
@operation("every trust attestation held", auth="read")
async def trust(request: web.Request) -> web.Response:
    """Every attestation held (shareable: each is signed by its author)."""
    return json_response(request.app[TRUST].attestations())


MAX_SHARED_ATTESTATIONS = 1000


async def take_attestations(request: web.Request) -> tuple[web.Response, dict[str, int]]:
    """A list of attestations into the trust graph: the answer (counts, and each refusal with its
    reason) and the counts, for the audit log."""
    body = await read_json(request)
    if not isinstance(body, list) or len(body) > MAX_SHARED_ATTESTATIONS:
        raise InvalidRequest(f"body: expected a list of at most {MAX_SHARED_ATTESTATIONS} attestations")
    answer = await request.app[TRUST].add_many(body)
    return json_response(answer), {k: answer[k] for k in ("kept", "old", "refused")}


@routes.post("/network/trust")
@operation("a pinned node shares attestations (signed request); each verified under its author's pinned key",
           body=list[TrustAttestation], auth="signed")  # fmt: skip
async def share_trust(request: web.Request) -> web.Response:
    """Take attestations shared by a node this one has pinned (the access middleware checks the
    signature: 401 otherwise, nothing read); the operator uses POST /admin/trust/attestations. Each
    attestation is verified under its author's pinned key."""
    response, counts = await take_attestations(request)
    await request.app[DISCOVERY].reconsider()  # a trust path may now admit a candidate
    await audit(request, "trust.share", **counts)
    return response


@routes.get("/network/trust/path")
@operation("the best trust path and its score", query=PathParams, auth="read")
async def trust_path(request: web.Request) -> web.Response:
    """The best trust path and its score (product of levels) from ``from`` (default: this node)."""
    params = validate_query(PathParams, request.query)
    graph = request.app[TRUST]
    kinds = SYNC_TYPES if params.use == "sync" else QUERY_TYPES
    score, path = graph.score(params.source or graph.own, params.to, kinds)
    return json_response({"from": params.source or graph.own, "to": params.to, "use": params.use, "score": score,
                          "path": path})  # fmt: skip


@routes.get("/network/topology")
@operation("nodes with sync state and lag, and trust edges, as JSON, GraphML or DOT", query=TopologyParams,
           auth="read")  # fmt: skip
async def topology(request: web.Request) -> web.Response:
    """Nodes (with sync state and lag) and trust edges, as ``format=json|graphml|dot``."""
    fmt = validate_query(TopologyParams, request.query).format
    status = await request.app[SYNC].status()
    nodes: dict[str, dict[str, object]] = {status["ledger_id"]: {"status": "self", "lag": 0}}
    for peer in status["peers"]:
        nodes[peer["ledger_id"]] = {"status": peer["state"], "lag": sum(x["lag"] for x in peer["ledgers"])}
    body, content_type = await request.app[TRUST].topology(nodes, fmt)
    return web.Response(body=body, content_type=content_type)
