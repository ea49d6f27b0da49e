"""``/ledger/...``: append, get, query, stats and the latest checkpoint of the node's ledger."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from node.api.auth import actor
from node.api.context import FEDERATION, LEDGER, REFS, STATE
from node.api.json import json_response, read_json, validate, validate_query
from node.errors import InvalidRequest
from node.storage.contract import Filters
from protocol.models import (
    HASH_PATTERN,
    UUID_PATTERN,
    Checkpoint,
    Entry,
    EntryDraft,
    EntryType,
    Label,
    LedgerId,
    Millis,
    Seq,
    Stream,
)
from protocol.openapi import operation

routes = web.RouteTableDef()


class FilterParams(BaseModel):
    """The query filters, as a query string; every one is served by an index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: Stream | None = None
    type: EntryType | None = None
    issuer_oid: Label | None = None
    subject_oid: Label | None = None
    key: Label | None = None
    since: Millis | None = None
    until: Millis | None = None
    limit: Annotated[int, Field(ge=1)] = 100
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None

    def filters(self, ledger_id: str | None = None) -> Filters:
        return Filters(
            ledger_id=ledger_id, stream=self.stream, type=self.type, issuer_oid=self.issuer_oid,
            subject_oid=self.subject_oid, key=self.key, since=self.since, until=self.until,
        )  # fmt: skip


class QueryParams(FilterParams):
    """Query string of GET /ledger/entries."""

    ledger_id: LedgerId | None = None
    ledgers: Annotated[str, StringConstraints(max_length=4096, pattern=r"^[a-z0-9][a-z0-9._,-]*$")] | None = None
    order: Literal["asc", "desc"] = "asc"
    after: Annotated[str, StringConstraints(pattern=r"^\d{1,16}:[a-z0-9][a-z0-9._-]{0,62}:\d{1,16}$")] | None = None


class SeqPath(BaseModel):
    ledger_id: LedgerId
    seq: Seq


class EntryPath(BaseModel):
    entry_id: Annotated[str, StringConstraints(pattern=UUID_PATTERN)]


class HashPath(BaseModel):
    hash: Annotated[str, StringConstraints(pattern=HASH_PATTERN)]


class KeyPath(BaseModel):
    key: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RefsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: Annotated[int, Field(ge=1, le=64)] = 1


@routes.post("/ledger/entries")
@operation("append one entry (201, the signed entry) or a batch of entries, all or none (201, receipts)",
           body=EntryDraft | list[EntryDraft], ok=201, auth="append")  # fmt: skip
async def append_entries(request: web.Request) -> web.Response:
    """One draft object appends one entry (201 with the entry); a list appends a batch atomically."""
    body = await read_json(request)
    ledger = request.app[LEDGER]
    if isinstance(body, dict):
        rows = await ledger.append([validate(EntryDraft, body)], batch=False, actor=actor(request))
        return json_response(rows[0].to_wire(), status=201)
    if isinstance(body, list):
        ledger.check_batch(len(body))  # refuse before validating a huge list
        drafts = [validate(EntryDraft, item, f"entries[{i}]") for i, item in enumerate(body)]
        rows = await ledger.append(drafts, actor=actor(request))
        return json_response({"count": len(rows), "entries": [row.receipt() for row in rows]}, status=201)
    raise InvalidRequest("body: expected an entry object or a list of entries")


@routes.get("/ledger/entries")
@operation("query entries by indexed filters, paged by cursor", query=QueryParams, auth="read")
async def query_entries(request: web.Request) -> web.Response:
    params = validate_query(QueryParams, request.query)
    filters = params.filters(params.ledger_id)
    if params.ledgers is not None:  # a comma list: entries of any of these ledgers
        filters = replace(filters, ledgers=tuple(x for x in params.ledgers.split(",") if x))
    after = None
    if params.after is not None:
        ts, ledger_id, seq = params.after.split(":")
        after = (int(ts), ledger_id, int(seq))
    page = await request.app[LEDGER].query(
        filters, order=params.order, limit=params.limit, cursor=params.cursor, after=after
    )
    return json_response({"entries": [row.to_wire() for row in page.rows], "next_cursor": page.next_cursor})


class FederatedParams(FilterParams):
    """Query string of GET /network/query: the local filters plus the fan-out controls."""

    ledgers: Annotated[str, StringConstraints(max_length=4096)] | None = None
    min_trust: Annotated[float, Field(ge=0, le=1)] | None = None
    timeout_ms: Annotated[int, Field(ge=1, le=30_000)] = 2000


@routes.get("/network/query")
@operation("one query answered here and by trusted peers, every remote entry verified", query=FederatedParams,
           auth="query")  # fmt: skip
async def federated_query(request: web.Request) -> web.Response:
    """The query answered here and by trusted peers, every remote entry verified first."""
    params = validate_query(FederatedParams, request.query)
    filters = params.filters()
    ledgers = [x for x in (params.ledgers or "").split(",") if x] or None
    answer = await request.app[FEDERATION].query(
        filters, ledgers=ledgers, min_trust=params.min_trust, timeout_ms=params.timeout_ms, limit=params.limit,
        cursor=params.cursor,
    )  # fmt: skip
    return json_response(answer)


@routes.get("/ledger/entries/{entry_id}")
@operation("one entry by id", path=EntryPath, response=Entry, auth="read")
async def get_entry(request: web.Request) -> web.Response:
    entry_id = validate_query(EntryPath, request.match_info).entry_id
    return json_response((await request.app[LEDGER].get(entry_id)).to_wire())


@routes.get("/ledger/entries/{entry_id}/refs")
@operation("the entry's cross-ledger references with their status, followed depth hops", path=EntryPath,
           query=RefsParams, auth="read")  # fmt: skip
async def entry_refs(request: web.Request) -> web.Response:
    """The entry's references with their stored status, and the references reachable from it
    (``depth`` hops, default 1), cycle-safe."""
    entry_id = validate_query(EntryPath, request.match_info).entry_id
    depth = validate_query(RefsParams, request.query).depth
    refs = request.app[REFS]
    walk = await refs.follow(entry_id, depth)
    walk["status"] = await refs.statuses(walk["entry"]["ledger_id"], walk["entry"]["seq"])
    return json_response(walk)


@routes.get("/ledger/hashes/{hash}")
@operation("one entry by hash", path=HashPath, response=Entry, auth="read")
async def get_by_hash(request: web.Request) -> web.Response:
    digest = validate_query(HashPath, request.match_info).hash
    return json_response((await request.app[LEDGER].get_by_hash(bytes.fromhex(digest))).to_wire())


@routes.get("/ledger/ledgers/{ledger_id}/entries/{seq}")
@operation("one entry of a held ledger by position", path=SeqPath, response=Entry, auth="read")
async def get_by_seq(request: web.Request) -> web.Response:
    path = validate_query(SeqPath, request.match_info)
    return json_response((await request.app[LEDGER].get_by_seq(path.ledger_id, path.seq)).to_wire())


@routes.get("/ledger/stats")
@operation("head, counts per stream and type, first and last timestamps", auth="read")
async def stats(request: web.Request) -> web.Response:
    return json_response(await request.app[LEDGER].stats())


@routes.get("/ledger/checkpoint")
@operation("the latest signed checkpoint (null before the first entry)", response=Checkpoint | None,
           auth="read")  # fmt: skip
async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint of the node's own ledger (null before the first entry)."""
    cp = await request.app[LEDGER].checkpoint()
    return json_response(None if cp is None else cp.to_wire())


class StateParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    after: Label | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


@routes.get("/ledger/state")
@operation("every key's state, in key order, paged by after", query=StateParams, auth="read")
async def states(request: web.Request) -> web.Response:
    """Every key's state, in key order, paged by ``after`` (the last key of the previous page)."""
    params = validate_query(StateParams, request.query)
    page, next_after = await request.app[STATE].states(params.after, params.limit)
    return json_response({"states": [s.to_wire() for s in page], "next_after": next_after})


@routes.get("/ledger/state/digest")
@operation("a hash of the whole state view", auth="read")
async def state_digest(request: web.Request) -> web.Response:
    """A hash of the whole state view: equal on nodes that hold the same entries and configuration."""
    view = request.app[STATE]
    return json_response({"digest": await view.digest(), "strategy": request.app[LEDGER].settings.conflicts.strategy})


@routes.get("/ledger/state/{key}")
@operation("one key's state: heads, winner, conflicts", path=KeyPath, auth="read")
async def state(request: web.Request) -> web.Response:
    key = validate_query(KeyPath, request.match_info).key
    return json_response((await request.app[STATE].state(key)).to_wire())
