"""Access control for every route, in one middleware.

Each route declares what it needs with ``@operation(auth=...)``: ``public``, a scope (``read``,
``append``, ``query``, ``admin``; a bearer credential carrying it, ``admin`` carrying all), or
``signed`` (a node-to-node request signed by a pinned key). The middleware finds the matched
route's declaration, identifies the caller, spends one request of the caller's rate limit and
enforces the declaration before the handler runs, so no route can forget its check. A credential or
signature that does not check out is charged to the client address (by the body it made the node
read: ``CallerLimits.failed``), so failures are rate-limited like anonymous requests. Reads (and
federated queries) are open to anonymous callers when the operator configured them public; a
signed request from a pinned peer may read too. Writes are never public.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from node.access.credentials import Credential
from node.access.limits import RateLimiter
from node.api.context import AUDIT, CREDENTIALS, LIMITS, SETTINGS
from node.api.peer_auth import signed_sender
from node.errors import Forbidden, RateLimited, RequestRejected, Unauthorized
from protocol.errors import LimitExceeded, RequestRefused
from protocol.openapi import declared
from protocol.requests import SIGNATURE
from protocol.serving import LARGE_BODY_BYTES, large_body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ACTOR = web.RequestKey("actor", str)  # who is calling: a credential id, admin-token, peer:<id>
NODE_AUTH = ("public", "read", "append", "query", "admin", "signed")
UNLIMITED = frozenset({"/health", "/ready"})  # liveness probes answer whatever else is going on


def actor(request: web.Request) -> str:
    """Who made ``request``: the credential id (``admin-token`` for the bootstrap token), or another
    caller name; this is what the audit log records."""
    return request[ACTOR] if ACTOR in request else "anonymous"


async def audit(request: web.Request, action: str, **detail: Any) -> None:
    """Record in the audit log that the caller of ``request`` did ``action``."""
    await request.app[AUDIT].record(actor(request), action, detail)


def check_declarations(routes: Iterable[Any]) -> None:
    """Refuse to start with a route that declares no access of the node's kinds."""
    for route in routes:
        op = declared(route.handler)
        if route.method != "HEAD" and (op is None or op.auth not in NODE_AUTH):
            raise ValueError(f"{route.method} {route.resource.canonical}: declare auth= one of {NODE_AUTH}")


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    op = declared(request.match_info.handler)
    need = "public" if op is None else op.auth  # None: no such route, the handler answers 404/405
    if need == "public" and large_body(request):  # a stranger may not hold a large-body slot (introduce: ~1 KB)
        raise LimitExceeded(f"body: at most {LARGE_BODY_BYTES} bytes without a credential")
    if need == "signed":
        await _signed(request)
        return await handler(request)
    credential = _credential(request, need)
    settings = request.app[SETTINGS].access
    if credential is not None:
        _spend(request.app[LIMITS].credentials, credential.id, f"credential {credential.id}")
        request[ACTOR] = credential.id
        await request.app[CREDENTIALS].used(credential)
    elif need == "read" and SIGNATURE in request.headers and not settings.public_read:
        await _signed(request)  # a pinned peer may read what it replicates anyway
        return await handler(request)
    else:
        resource = request.match_info.route.resource
        if resource is None or resource.canonical not in UNLIMITED:
            _spend(request.app[LIMITS].anonymous, request.remote or "unknown", "this client address")
    if need == "public" or (need == "read" and settings.public_read) or (need == "query" and settings.public_query):
        return await handler(request)
    if credential is None:
        raise Unauthorized(f"this route needs 'Authorization: Bearer <token>' with scope {need}")
    if not credential.allows(need):  # type: ignore[arg-type]  # need is a scope here
        raise Forbidden(f"credential {credential.id} lacks scope {need}")
    return await handler(request)


def _credential(request: web.Request, need: str) -> Credential | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    # the scheme is case-insensitive (RFC 9110), the token is compared byte for byte
    found = request.app[CREDENTIALS].check(token.strip()) if scheme.lower() == "bearer" else None
    if found is None and need != "public":
        _failed(request)  # 429 instead once the address is over its budget of failures
        raise Unauthorized("'Authorization: Bearer <token>' names no live credential (unknown, wrong or revoked)")
    return found


async def _signed(request: web.Request) -> None:
    """Identify the pinned peer that signed ``request`` and spend one of its requests; a signature
    that does not check out is charged to the client address (429 once it is over its budget)."""
    try:
        sender = await signed_sender(request)
    except (RequestRejected, RequestRefused):
        _failed(request)
        raise
    _spend(request.app[LIMITS].peers, sender, f"peer {sender}")
    request[ACTOR] = f"peer:{sender}"


def _failed(request: web.Request) -> None:
    request.app[LIMITS].failed(request.remote or "unknown", request.content_length, request.body_exists)


def _spend(limiter: RateLimiter, caller: str, who: str) -> None:
    wait = limiter.take(caller)
    if wait > 0:
        raise RateLimited(f"{who} is over {limiter.rate_per_s:g} requests/s; retry later", wait)
