"""The node's HTTP API (aiohttp): handlers stay thin over the services."""

from __future__ import annotations

from aiohttp import web

from node.api import admin, console, health, ledger, network, openapi, sync
from node.api.auth import check_declarations
from node.settings import NodeSettings


def setup_routes(app: web.Application, settings: NodeSettings) -> None:
    """Register every route and the OpenAPI document describing exactly those; a route without an
    access declaration stops the node from starting (node/api/auth.py enforces them)."""
    app.add_routes(ledger.routes)
    app.add_routes(network.routes)
    app.add_routes(sync.routes)
    app.add_routes(health.routes)
    app.add_routes(admin.routes())
    app.add_routes(console.routes)
    openapi.setup(app)
    check_declarations(app.router.routes())
