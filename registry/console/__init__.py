"""The registry's console: one HTML page, one script and one style sheet shipped with the package, and
the routes serving them (``GET /`` answers links as JSON to a client that asks for JSON)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from protocol.openapi import operation
from protocol.pages import PAGE_HEADERS
from registry.api import json_response

ASSETS = {"index.html": "text/html", "console.js": "text/javascript", "console.css": "text/css"}

routes = web.RouteTableDef()


def _asset(name: str) -> web.Response:
    body = resources.files(__name__).joinpath(name).read_bytes()
    return web.Response(body=body, content_type=ASSETS[name], charset="utf-8", headers=PAGE_HEADERS)


@routes.get("/")
@operation("the console page; with Accept: application/json, links to the API document and the console",
           content_type="text/html")  # fmt: skip
async def index(request: web.Request) -> web.Response:
    accept = request.headers.get("Accept", "")
    if "application/json" in accept and "text/html" not in accept:
        links = {"openapi": "/openapi.json", "console": "/", "nodes": "/registry/nodes", "health": "/health"}
        return json_response({"service": "ledger-registry", "links": links})
    return _asset("index.html")


@routes.get("/console/console.js")
@operation("the console's script", content_type="text/javascript")
async def script(request: web.Request) -> web.Response:
    return _asset("console.js")


@routes.get("/console/console.css")
@operation("the console's style sheet", content_type="text/css")
async def style(request: web.Request) -> web.Response:
    return _asset("console.css")


@routes.get("/favicon.ico")
@operation("no icon: an empty answer, so browsers do not log a missing one", ok=204)
async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})
