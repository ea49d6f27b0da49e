"""The node's aiohttp application: services wired with cleanup_ctx, routes, middlewares."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from node.access.credentials import Credentials
from node.access.limits import CallerLimits
from node.api import setup_routes
from node.api.auth import access
from node.api.console import feed_ctx
from node.api.context import (
    AUDIT,
    CREDENTIALS,
    DISCOVERY,
    FEDERATION,
    LEDGER,
    LIFECYCLE,
    LIMITS,
    METRICS,
    NET,
    PAGES,
    PEERS,
    REFS,
    REPLAY,
    SETTINGS,
    STATE,
    SYNC,
    TASKS,
    TRUST,
    Lifecycle,
)
from node.api.json import BODY_LIMITS, BodyLimits
from node.api.problems import Handler, malformed_http_as_problems, problems
from node.interop.discovery import Discovery
from node.interop.federation import Federation
from node.interop.refs import References
from node.interop.trust import TrustGraph
from node.keys import load_or_create_key_file
from node.ledger.clock import wall_ms
from node.ledger.service import Ledger
from node.lock import DataDirLock
from node.metrics import Metrics
from node.net.client import Outbound
from node.net.peers import PeerDirectory
from node.settings import NodeSettings
from node.shutdown import Bounded
from node.storage.sqlite import open_sqlite
from node.supervise import Supervisor
from node.sync.conflicts import StateView
from node.sync.engine import SyncEngine
from node.sync.pages import PageAnswers
from protocol.requests import ReplayGuard

log = logging.getLogger(__name__)


async def ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    with DataDirLock(settings.data_dir):
        keys = load_or_create_key_file(settings.key_path)
        async with (
            open_sqlite(
                settings.db_path, durability=settings.durability, index_max_lag=settings.index_max_lag
            ) as storage,
            Ledger.open(settings, keys, storage=storage) as ledger,
        ):
            ledger.hooks.after_append.append(app[METRICS].on_append)
            app[STATE] = StateView(ledger, settings.conflicts, storage.conflicts, app[METRICS])
            trust = TrustGraph(ledger, settings.trust, storage.trust)
            await trust.load()
            ledger.on_unpin(trust.forget)
            app[TRUST] = trust
            app[AUDIT] = storage.audit
            ledger.hooks.after_append.append(app[STATE].on_commit)
            app[METRICS].head_seq.set(ledger.head.head_seq)
            app[METRICS].index_lag.set_function(ledger.index_lag)
            app[LEDGER] = ledger
            app[PAGES] = PageAnswers(ledger)
            token = settings.admin_token.get_secret_value() if settings.admin_token is not None else None
            app[CREDENTIALS] = Credentials(storage.credentials, token)
            await app[CREDENTIALS].load()
            app[LIFECYCLE].ready = True
            app[LIFECYCLE].started_ms = wall_ms()
            peers = PeerDirectory(ledger, storage.peers)
            await peers.load(settings.peers)
            app[PEERS] = peers
            # each closes within its own deadline (the last opened first); one that hangs is logged
            async with (
                Bounded("outbound client", Outbound(settings.net, settings.sync.timeout_s, app[METRICS]), 3) as net,
                Bounded(
                    "sync engine",
                    SyncEngine(ledger, settings, app[METRICS], trust, net, peers, storage.peers, app[TASKS]),
                    5,
                ) as engine,
                Bounded(
                    "discovery",
                    Discovery(
                        ledger, settings, peers, app[METRICS], trust, net, storage.audit, storage.candidates, app[TASKS]
                    ),
                    8,
                ) as discovery,
                Bounded("federation", Federation(ledger, peers, trust, net), 2) as federation,
                Bounded(
                    "references", References(ledger, peers, settings.refs, net, storage.refs, app[TASKS]), 3
                ) as references,
            ):
                app[NET] = net
                app[REFS] = references
                app[FEDERATION] = federation
                app[SYNC] = engine
                app[DISCOVERY] = discovery
                if settings.discovery.advertise_url or settings.port:
                    discovery.start(settings.discovery.advertise_url or f"http://{settings.host}:{settings.port}")
                log.info("serving ledger=%s head=%d peers=%d", settings.ledger_id, ledger.head.head_seq,
                         len(peers.all()))  # fmt: skip
                yield
                app[LIFECYCLE].ready = False


async def _stop_serving(app: web.Application) -> None:
    app[LIFECYCLE].ready = False
    if SYNC in app:
        app[SYNC].close_streams()  # open event streams would hold the shutdown for its whole timeout


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics = request.app[METRICS]
    metrics.http_requests.labels(request.method, route, str(response.status)).inc()
    metrics.http_seconds.labels(route).observe(time.perf_counter() - started)
    return response


def build_app(settings: NodeSettings) -> web.Application:
    """The node application; nothing starts until the runner starts it."""
    malformed_http_as_problems()
    app = web.Application(middlewares=[http_metrics, problems, access], client_max_size=settings.limits.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = Metrics(settings.ledger_id)
    app[LIFECYCLE] = Lifecycle()
    app[TASKS] = Supervisor(app[METRICS], settings.tasks)
    app[REPLAY] = ReplayGuard(settings.sync.request_window_s)
    app[BODY_LIMITS] = BodyLimits(asyncio.Semaphore(settings.limits.large_body_parsers),
                                  settings.limits.max_body_values)  # fmt: skip
    app[LIMITS] = CallerLimits.from_settings(settings.access, settings.limits.max_body_bytes)
    app.cleanup_ctx.append(ledger_ctx)
    app.cleanup_ctx.append(feed_ctx)  # the console's feed reads the services ledger_ctx starts
    app.on_shutdown.append(_stop_serving)
    setup_routes(app, settings)
    return app
