"""The registry's HTTP API (aiohttp): handlers thin over the Registry service, problem+json errors,
a per-client rate limit."""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Annotated, Any, Literal

import orjson
from aiohttp import web, web_protocol
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from protocol.errors import BadSignature, ProtocolError, RequestRefused
from protocol.models import LedgerId
from protocol.openapi import operation
from protocol.records import KeyRotation, NodeRecord
from protocol.requests import LEDGER_ID, NONCE, SIGNATURE, TIMESTAMP, ReplayGuard, verify_request
from protocol.serving import read_body
from registry.errors import (
    InvalidRequest,
    KeyMismatch,
    NodeNotFound,
    NotEnrolled,
    RateLimited,
    RegistryError,
    StaleRecord,
    StorageError,
    Unauthenticated,
)
from registry.service import Registry

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REGISTRY = web.AppKey("registry", Registry)
REPLAY = web.AppKey("replay", ReplayGuard)

STATUS: dict[type[Exception], int] = {
    InvalidRequest: 400,
    Unauthenticated: 401,
    RequestRefused: 401,
    NotEnrolled: 403,
    NodeNotFound: 404,
    KeyMismatch: 409,
    StaleRecord: 409,
    RateLimited: 429,
    StorageError: 503,
    ProtocolError: 422,
}

routes = web.RouteTableDef()


def problem(status: int, code: str, detail: str) -> web.Response:
    body = {"type": f"urn:ledger:problem:{code}", "title": code.replace("-", " "), "status": status, "detail": detail}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/problem+json")


def status_of(exc: Exception) -> int:
    return next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 500)


def malformed_http_as_problems() -> None:
    """aiohttp answers requests it cannot parse (a NUL in the URL, a request line over 8 KiB, a bad
    header) itself, before any middleware, in text/plain; make those answers problem+json too."""
    original = web_protocol.RequestHandler.handle_error
    if getattr(original, "problem_json", False):
        return

    def handle_error(
        self: web_protocol.RequestHandler, request: Any, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:  # fmt: skip
        original(self, request, status, exc, message)  # logs, and refuses when a response was already sent
        detail = "internal error" if status >= 500 else (message or HTTPStatus(status).phrase).splitlines()[0]
        response = problem(status, "internal-error" if status >= 500 else f"http-{status}", detail)
        response.force_close()
        return response

    handle_error.problem_json = True  # type: ignore[attr-defined]
    web_protocol.RequestHandler.handle_error = handle_error  # type: ignore[method-assign]


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (RegistryError, ProtocolError) as exc:
        return problem(status_of(exc), exc.code, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, f"http-{exc.status}", exc.reason)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem(500, "internal-error", "internal error")


class RateLimit:
    """A token bucket per client address."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate, self._burst = rate_per_s, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            raise RateLimited("too many requests from this address; slow down")
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        self._buckets[client] = (tokens - 1, now)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in ("/health", "/ready", "/metrics", "/openapi.json"):
            self.take(request.remote or "?")
        return await handler(request)


async def read_model(request: web.Request, model: type[Any]) -> Any:
    raw = await read_body(request)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise InvalidRequest(f"{where}: {error['msg']}") from exc


async def signed_by_node(request: web.Request, ledger_id: str) -> None:
    """The request must be signed (protocol signed-request headers) by the key ``ledger_id`` is bound to."""
    try:
        sender, timestamp = request.headers[LEDGER_ID], int(request.headers[TIMESTAMP])
        nonce, sig = request.headers[NONCE], bytes.fromhex(request.headers[SIGNATURE])
    except (KeyError, ValueError) as exc:
        raise Unauthenticated("this request must be signed by the node (X-Ledger-* headers)") from exc
    if sender != ledger_id:
        raise Unauthenticated(f"signed by {sender}, not by {ledger_id}")
    key = request.app[REGISTRY].bound_key(ledger_id)
    body = await read_body(request)
    try:
        verify_request(key, sender, request.method, request.raw_path, body, timestamp, nonce, sig)
    except BadSignature as exc:
        raise Unauthenticated("request signature does not verify under the bound key") from exc
    request.app[REPLAY].check(sender, nonce, timestamp)


class DiscoverParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    capability: Annotated[str, StringConstraints(max_length=32)] | None = None
    region: Annotated[str, StringConstraints(max_length=64)] | None = None
    status: Literal["online", "offline"] | None = None
    stream: Annotated[str, StringConstraints(max_length=64)] | None = None
    after: LedgerId | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _ledger_id(request: web.Request) -> str:
    ledger_id = request.match_info["ledger_id"]
    try:
        return BaseLedger.model_validate({"ledger_id": ledger_id}).ledger_id
    except ValidationError as exc:
        raise InvalidRequest("ledger_id: not a valid ledger id") from exc


class BaseLedger(BaseModel):
    ledger_id: LedgerId


@routes.post("/registry/nodes")
@operation("register or update a signed node record", body=NodeRecord, ok=201)
async def register(request: web.Request) -> web.Response:
    """Register or update a signed node record."""
    record = await read_model(request, NodeRecord)
    return json_response(await request.app[REGISTRY].register(record, bearer(request)), status=201)


def bearer(request: web.Request) -> str | None:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def require_admin(token: str, handler: Handler) -> Handler:
    """Wrap ``handler`` so it runs only for the registry operator's bearer token (constant time)."""
    expected = token.encode()

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not hmac.compare_digest((bearer(request) or "").encode(), expected):
            raise Unauthenticated("registry admin endpoints need 'Authorization: Bearer <registry admin token>'")
        return await handler(request)

    return guarded


class EnrolBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ledger_id: LedgerId


@operation("issue an enrolment token for a ledger id (shown once, stored hashed)", body=EnrolBody, ok=201,
           auth="admin")  # fmt: skip
async def enrol(request: web.Request) -> web.Response:
    """Issue an enrolment token for a ledger id: its first registration must present it."""
    body = await read_model(request, EnrolBody)
    token = await request.app[REGISTRY].enrol(body.ledger_id)
    return json_response({"ledger_id": body.ledger_id, "token": token}, status=201)


@operation("every ledger id bound or enrolled, with its key and status", auth="admin")
async def bindings(request: web.Request) -> web.Response:
    return json_response(request.app[REGISTRY].bindings())


@operation("release a ledger id: its binding, record and enrolment are forgotten", path=BaseLedger, ok=204,
           auth="admin")  # fmt: skip
async def release(request: web.Request) -> web.Response:
    """Release a ledger id so its rightful owner can enrol again (after a squatter, or a lost key)."""
    await request.app[REGISTRY].release(_ledger_id(request))
    return web.Response(status=204)


def admin_routes(token: str) -> list[web.RouteDef]:
    return [
        web.post("/admin/enrolments", require_admin(token, enrol)),
        web.get("/admin/nodes", require_admin(token, bindings)),
        web.delete("/admin/nodes/{ledger_id}", require_admin(token, release)),
    ]


@routes.get("/registry/nodes")
@operation("discover nodes by capability, region, status or stream, paged by after", query=DiscoverParams)
async def discover(request: web.Request) -> web.Response:
    try:
        params = DiscoverParams.model_validate(dict(request.query))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise InvalidRequest(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from exc
    nodes, after = request.app[REGISTRY].discover(**params.model_dump())
    return json_response({"nodes": nodes, "next_after": after})


@routes.get("/registry/nodes/{ledger_id}")
@operation("one node's record and status", path=BaseLedger)
async def get_node(request: web.Request) -> web.Response:
    return json_response(request.app[REGISTRY].get(_ledger_id(request)))


@routes.post("/registry/nodes/{ledger_id}/heartbeat")
@operation("a signed heartbeat keeps the node online", path=BaseLedger, auth="signed")
async def heartbeat(request: web.Request) -> web.Response:
    """A signed heartbeat keeps the node online."""
    ledger_id = _ledger_id(request)
    await signed_by_node(request, ledger_id)
    return json_response(request.app[REGISTRY].heartbeat(ledger_id))


@routes.delete("/registry/nodes/{ledger_id}")
@operation("deregister, signed by the node", path=BaseLedger, ok=204, auth="signed")
async def deregister(request: web.Request) -> web.Response:
    ledger_id = _ledger_id(request)
    await signed_by_node(request, ledger_id)
    await request.app[REGISTRY].deregister(ledger_id)
    return web.Response(status=204)


@routes.post("/registry/nodes/{ledger_id}/rotate")
@operation("move the ledger id to a new key, on a statement signed by the old key", path=BaseLedger,
           body=KeyRotation)  # fmt: skip
async def rotate(request: web.Request) -> web.Response:
    """Move the ledger id to a new key, on a statement signed by the old key."""
    rotation = await read_model(request, KeyRotation)
    if rotation.ledger_id != _ledger_id(request):
        raise InvalidRequest("ledger_id: differs from the path")
    return json_response(await request.app[REGISTRY].rotate(rotation))


@routes.get("/health")
@operation("the process answers")
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/ready")
@operation("the registry serves")
async def ready(request: web.Request) -> web.Response:
    return json_response({"status": "ready"})
