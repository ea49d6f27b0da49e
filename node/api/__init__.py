"""The node's HTTP API (aiohttp): handlers stay thin over the services."""

from __future__ import annotations

from aiohttp import web

from node.api import admin, health, ledger, network, openapi, sync
from node.settings import NodeSettings


def setup_routes(app: web.Application, settings: NodeSettings) -> None:
    """Register every route (admin routes only when an admin token is configured) and the OpenAPI
    document describing exactly those."""
    app.add_routes(ledger.routes)
    app.add_routes(network.routes)
    app.add_routes(sync.routes)
    app.add_routes(health.routes)
    if settings.admin_token is not None:
        app.add_routes(admin.routes(settings.admin_token.get_secret_value()))
    openapi.setup(app)
