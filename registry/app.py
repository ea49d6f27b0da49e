"""The registry's aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest

import registry
from protocol.openapi import document, operation
from protocol.requests import ReplayGuard
from registry import console
from registry.api import (
    REGISTRY,
    REPLAY,
    Handler,
    RateLimit,
    admin_routes,
    json_response,
    malformed_http_as_problems,
    problems,
    routes,
)
from registry.service import Registry
from registry.settings import RegistrySettings
from registry.store import RegistryStore

SETTINGS = web.AppKey("settings", RegistrySettings)
METRICS = web.AppKey("metrics", CollectorRegistry)
SPEC = web.AppKey("openapi", dict)
DESCRIPTION = "The registry of a ledger network: signed node records, heartbeats, discovery."


async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
    async with RegistryStore(app[SETTINGS].db_path) as store, Registry(store, app[SETTINGS]) as registry:
        app[REGISTRY] = registry
        yield


def build_app(settings: RegistrySettings) -> web.Application:
    malformed_http_as_problems()
    limit = RateLimit(settings.rate_per_s, settings.burst)
    app = web.Application(middlewares=[problems, limit.middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[REPLAY] = ReplayGuard(settings.request_window_s)
    metrics = CollectorRegistry()
    app[METRICS] = metrics
    requests = Counter("registry_http_requests", "Requests answered", ["method", "status"], registry=metrics)

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        requests.labels(request.method, str(response.status)).inc()
        return response

    @operation("Prometheus metrics", content_type="text/plain")
    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics), content_type="text/plain", charset="utf-8")

    app.middlewares.insert(0, count)
    app.cleanup_ctx.append(registry_ctx)
    app.add_routes(routes)
    app.add_routes(console.routes)
    if settings.admin_token is not None:
        app.add_routes(admin_routes(settings.admin_token.get_secret_value()))
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/openapi.json", openapi)
    app[SPEC] = document("ledger-registry", registry.__version__, DESCRIPTION, app.router.routes())
    return app


@operation("this OpenAPI document")
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[SPEC])
