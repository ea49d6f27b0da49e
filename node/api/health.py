"""``/health`` (the process answers), ``/ready`` (the ledger is open and verified), ``/metrics``."""

from __future__ import annotations

from aiohttp import web

from node.api.context import LIFECYCLE, METRICS
from node.api.json import json_response
from node.errors import NotReady
from protocol.openapi import operation

routes = web.RouteTableDef()


@routes.get("/health")
@operation("the process answers", auth="public")
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/ready")
@operation("the ledger is open and verified (503 otherwise)", auth="public")
async def ready(request: web.Request) -> web.Response:
    if not request.app[LIFECYCLE].ready:
        raise NotReady("the node is not serving (starting or stopping)")
    return json_response({"status": "ready"})


@routes.get("/metrics")
@operation("Prometheus metrics", content_type="text/plain", auth="read")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), content_type="text/plain", charset="utf-8")
