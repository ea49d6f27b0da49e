"""``GET /openapi.json``: the node's OpenAPI 3.1 document, built from the routes registered."""

from __future__ import annotations

from aiohttp import web

import node
from node.api.json import json_response
from protocol.openapi import document, operation

SPEC = web.AppKey("openapi", dict)
DESCRIPTION = ("A ledger network node: its own signed, hash-chained ledger, verified replicas of its peers' "
               "ledgers, discovery, trust and federated queries. Errors are application/problem+json.")  # fmt: skip


@operation("this OpenAPI document", auth="public")
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[SPEC])


def setup(app: web.Application) -> None:
    """Serve the document; built now, so an undeclared route stops the node from starting."""
    app.router.add_get("/openapi.json", openapi)
    app[SPEC] = document("ledger-node", node.__version__, DESCRIPTION, app.router.routes())
