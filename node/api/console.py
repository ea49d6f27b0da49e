"""The browser console: ``GET /`` (the page, or links as JSON), its script and style, who the
presented credential is, and ``GET /console/events``, the live feed of server-sent events.

The console sends the operator's token as ``Authorization: Bearer`` on every request (docs/console.md):
no cookie, so no request is made with the operator's authority unless the page's own script makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from node.api.auth import actor
from node.api.context import CREDENTIALS, DISCOVERY, LEDGER, LIFECYCLE, NET, SETTINGS, STATE, SYNC, TRUST
from node.api.json import json_response
from node.console import ASSETS, asset
from node.console.feed import ConsoleFeed
from node.errors import RateLimited, Unauthorized
from node.shutdown import Bounded
from protocol.openapi import operation
from protocol.pages import PAGE_HEADERS

log = logging.getLogger(__name__)

FEED = web.AppKey("console_feed", ConsoleFeed)
HEARTBEAT_S = 15.0
HEAD_SETTLE_S = 0.3  # a snapshot follows a burst of heads this soon (the feed shares and spaces them)


routes = web.RouteTableDef()


async def feed_ctx(app: web.Application) -> AsyncIterator[None]:
    """The console's snapshot feed, once the services it reads exist (after ``ledger_ctx``)."""
    lifecycle = app[LIFECYCLE]
    feed_service = ConsoleFeed(app[LEDGER], app[SETTINGS], app[SYNC], app[DISCOVERY], app[TRUST], app[NET],
                               app[STATE], lambda: lifecycle.started_ms)  # fmt: skip
    async with Bounded("console feed", feed_service, 3) as feed:
        app[FEED] = feed
        yield


def _asset_response(name: str) -> web.Response:
    return web.Response(body=asset(name), content_type=ASSETS[name], charset="utf-8", headers=PAGE_HEADERS)


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


@routes.get("/")
@operation("the console page; with Accept: application/json, links to the API document and the console",
           content_type="text/html", auth="public")  # fmt: skip
async def index(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if _wants_json(request) or not settings.console.enabled:
        links = {"openapi": "/openapi.json", "console": "/" if settings.console.enabled else None,
                 "events": "/console/events", "info": "/network/info", "health": "/health"}  # fmt: skip
        return json_response({"service": "ledger-node", "ledger_id": settings.ledger_id, "links": links})
    return _asset_response("index.html")


@routes.get("/console/console.js")
@operation("the console's script", content_type="text/javascript", auth="public")
async def script(request: web.Request) -> web.Response:
    return _asset_response("console.js")


@routes.get("/console/console.css")
@operation("the console's style sheet", content_type="text/css", auth="public")
async def style(request: web.Request) -> web.Response:
    return _asset_response("console.css")


@routes.get("/favicon.ico")
@operation("no icon: an empty answer, so browsers do not log a missing one", ok=204, auth="public")
async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})


@routes.get("/console/whoami")
@operation("the presented credential: id, name and scopes (401 for none or a wrong one)", auth="read")
async def whoami(request: web.Request) -> web.Response:
    """The console's login check: the credential in ``Authorization: Bearer`` and what it may do."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    credential = request.app[CREDENTIALS].check(token.strip()) if scheme.lower() == "bearer" else None
    if credential is None:
        raise Unauthorized("the console needs a credential: 'Authorization: Bearer <token>'")
    return json_response({"id": credential.id, "name": credential.name, "scopes": sorted(credential.scopes),
                          "ledger_id": request.app[SETTINGS].ledger_id})  # fmt: skip


@routes.get("/console/events")
@operation("server-sent events for the console: a status snapshot every few seconds and each new head",
           content_type="text/event-stream", auth="read")  # fmt: skip
async def events(request: web.Request) -> web.StreamResponse:
    """``event: snapshot`` at once and every ``console.snapshot_s``; ``event: head`` for each committed
    batch (coalesced per ledger); a comment line keeps an idle stream open. Needs a credential even
    where reads are public (the console logs in), and at most ``console.max_streams`` are open."""
    feed = request.app[FEED]
    if actor(request) == "anonymous" or actor(request).startswith("peer:"):  # even where reads are public
        raise Unauthorized("the console's event stream needs 'Authorization: Bearer <token>' with scope read")
    if feed.streams >= request.app[SETTINGS].console.max_streams:
        raise RateLimited(f"{feed.streams} console event streams are open, the most this node serves", 5.0)
    feed.streams += 1
    try:
        return await _stream(request, feed)
    finally:
        feed.streams -= 1


async def _stream(request: web.Request, feed: ConsoleFeed) -> web.StreamResponse:
    engine = request.app[SYNC]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Content-Type-Options": "nosniff"})  # fmt: skip
    await response.prepare(request)
    queue = engine.subscribe()
    try:
        await _feed(response, queue, feed)
    except ConnectionResetError:
        pass
    finally:
        engine.unsubscribe(queue)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def _feed(response: web.StreamResponse, queue: asyncio.Queue[dict[str, Any]], feed: ConsoleFeed) -> None:
    """Write snapshots on time, head events as they come (a snapshot being built, which may wait for
    probes, never holds them back), a keep-alive comment when idle; return when the node closes its
    streams (shutdown)."""
    loop = asyncio.get_running_loop()
    await _send(response, "snapshot", await feed.snapshot())
    due, quiet = loop.time() + feed.interval_s, loop.time()
    building: asyncio.Task[dict[str, Any]] | None = None
    getting: asyncio.Task[dict[str, Any]] | None = None
    try:
        while True:
            if building is None and loop.time() >= due:
                building = asyncio.create_task(feed.snapshot())
            if getting is None:
                getting = asyncio.create_task(queue.get())
            until = min(quiet + HEARTBEAT_S, due if building is None else math.inf)
            waiting: set[asyncio.Task[dict[str, Any]]] = {getting} if building is None else {getting, building}
            done, _ = await asyncio.wait(waiting, timeout=max(0.0, until - loop.time()),
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if building is not None and building in done:
                snapshot, building = building, None
                due = loop.time() + feed.interval_s
                if snapshot.exception() is not None:
                    log.warning("console snapshot failed: %r", snapshot.exception())
                else:
                    await _send(response, "snapshot", snapshot.result())
                    quiet = loop.time()
            if getting in done:
                events = [getting.result()]
                getting = None
                while not queue.empty():  # a burst of commits becomes one event per ledger
                    events.append(queue.get_nowait())
                if any(event.get("closing") for event in events):
                    return
                for head in {event["ledger_id"]: event for event in events}.values():
                    await _send(response, "head", head)
                quiet = loop.time()
                due = min(due, quiet + HEAD_SETTLE_S)  # the heads compared in the next snapshot include these
            if loop.time() >= quiet + HEARTBEAT_S:
                await response.write(b": keep-alive\n\n")
                quiet = loop.time()
    finally:
        for task in (building, getting):
            if task is not None:
                task.cancel()


async def _send(response: web.StreamResponse, kind: str, data: Any) -> None:
    await response.write(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
