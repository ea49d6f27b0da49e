"""``/ledger/sync/...``: heads, pull, push, status and the live head stream (signed requests)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Annotated

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from node.api.context import LEDGER, PAGES, SYNC
from node.api.json import json_response, read_json, validate, validate_query
from node.api.peer_auth import signed_sender
from protocol.models import MAX_PAGE, Heads, LedgerId, Page
from protocol.openapi import operation

routes = web.RouteTableDef()

HEARTBEAT_S = 15.0


class PullParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ledger: LedgerId
    after: Annotated[int, Field(ge=0, le=2**53 - 1)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = MAX_PAGE


@routes.get("/ledger/sync/heads")
@operation("every ledger held here with its head", response=Heads, auth="signed")
async def heads(request: web.Request) -> web.Response:
    """Every ledger held here with its head: one request tells a peer all it is missing."""
    await signed_sender(request)
    ledger = request.app[LEDGER]
    held = await ledger.ledgers()
    response = json_response(
        {"ledger_id": ledger.ledger_id,
         "ledgers": [{"ledger_id": h.ledger_id, "public_key": h.public_key.hex(), "seq": h.head_seq,
                      "hash": h.head_hash.hex() if h.head_hash else None, "quarantined": h.quarantined}
                     for h in held]}
    )  # fmt: skip
    # unchanged heads cost a peer's idle round no body: it asks with the tag of the heads it holds
    assert isinstance(response.body, bytes)
    tag = '"' + hashlib.blake2b(response.body, digest_size=12).hexdigest() + '"'
    if request.headers.get("If-None-Match") == tag:
        return web.Response(status=304, headers={"ETag": tag})
    response.headers["ETag"] = tag
    return response


@routes.get("/ledger/sync/pull")
@operation("entries of one held ledger after a seq, with their checkpoints", query=PullParams, response=Page,
           auth="signed")  # fmt: skip
async def pull(request: web.Request) -> web.Response:
    """Entries of one held ledger after a seq, with their checkpoints; gzip when asked."""
    await signed_sender(request)
    params = validate_query(PullParams, request.query)
    accepts = "gzip" in request.headers.get("Accept-Encoding", "")
    answer = await request.app[PAGES].answer(params.ledger, params.after, params.limit, gzip=accepts)
    response = web.Response(body=answer.body, content_type="application/json", headers={"Vary": "Accept-Encoding"})
    if answer.gzipped:
        response.headers["Content-Encoding"] = "gzip"
    return response


@routes.post("/ledger/sync/push")
@operation("a peer's page of some ledger: verified and committed whole, or refused", body=Page, auth="signed")
async def push(request: web.Request) -> web.Response:
    """A peer's page of some ledger: verified and committed whole, or refused with the reason."""
    sender = await signed_sender(request)
    page = validate(Page, await read_json(request, bounded=False))  # signed by a pinned peer; pages may be dense
    result = await request.app[SYNC].receive_push(sender, page)
    return json_response(
        {"accepted": result.accepted, "already_held": result.already_held, "head_seq": result.head_seq,
         "rejected": [], "conflicts": []}
    )  # fmt: skip


@routes.get("/ledger/sync/status")
@operation("per peer and ledger: seqs, lag, state, failures, last error", auth="read")
async def status(request: web.Request) -> web.Response:
    return json_response(await request.app[SYNC].status())


@routes.get("/ledger/sync/stream")
@operation("server-sent events: each committed batch's new head", content_type="text/event-stream", auth="signed")
async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``data:`` line per committed batch, with the ledger's new head."""
    await signed_sender(request)
    engine = request.app[SYNC]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    queue = engine.subscribe()
    try:
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):  # not wait_for: see SyncEngine._loop
                    event = await queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if event.get("closing"):
                break
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
    except ConnectionResetError:
        pass
    finally:
        engine.unsubscribe(queue)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
