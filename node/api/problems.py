"""RFC 9457 problem responses: every error leaves the node as application/problem+json.

The middleware maps our error classes to statuses in one table; a stack trace never reaches a
client (it goes to the log once, here).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web, web_protocol

from node.errors import (
    AppendRejected,
    BackupError,
    BatchTooLarge,
    CandidatesFull,
    CredentialNotFound,
    DataDirLocked,
    DuplicateEntry,
    EntryNotFound,
    Forbidden,
    ForkDetected,
    IdentityConflict,
    InvalidRequest,
    KeyFileError,
    LedgerQuarantined,
    NodeError,
    NotReady,
    PeerFailed,
    PeerRefused,
    PeerUnavailable,
    RateLimited,
    RequestRejected,
    SchemaTooNew,
    StorageError,
    StorageFull,
    StoreCorrupted,
    Unauthorized,
    UnknownLedger,
)
from protocol.errors import LimitExceeded, ProtocolError, RequestRefused

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS: dict[type[Exception], int] = {
    InvalidRequest: 400,
    ProtocolError: 422,
    LimitExceeded: 413,
    BatchTooLarge: 413,
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    EntryNotFound: 404,
    CredentialNotFound: 404,
    UnknownLedger: 422,
    DuplicateEntry: 409,
    AppendRejected: 422,
    StoreCorrupted: 500,
    SchemaTooNew: 500,
    KeyFileError: 500,
    BackupError: 409,
    DataDirLocked: 503,
    NotReady: 503,
    StorageError: 503,
    StorageFull: 507,
    RequestRejected: 401,
    PeerRefused: 403,
    CandidatesFull: 503,
    RequestRefused: 401,
    IdentityConflict: 409,
    ForkDetected: 409,
    LedgerQuarantined: 409,
    # A peer named in the request (POST /network/connect) that does not answer, or answers wrongly:
    # the request cannot be carried out as given; the node itself is fine (5xx is kept for that).
    PeerUnavailable: 422,
    PeerFailed: 422,
}

PROBLEM_TYPE_BASE = "urn:ledger:problem:"


def problem(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """A problem+json response with a stable ``type``."""
    body = {"type": PROBLEM_TYPE_BASE + code, "title": code.replace("-", " "), "status": status, "detail": detail}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/problem+json", headers=headers
    )


def status_of(exc: Exception) -> int:
    """The HTTP status for one of our errors (most specific class wins)."""
    return next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 500)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (NodeError, ProtocolError) as exc:
        status = status_of(exc)
        if status >= 500:
            log.error("request failed %s %s: %s", request.method, request.path, exc)
        return problem(status, exc.code, str(exc), headers=_headers(exc))
    except web.HTTPException as exc:  # unknown route, wrong method, body too large
        if exc.status < 400:
            raise
        return problem(exc.status, f"http-{exc.status}", exc.reason, headers=_allow(exc))
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem(500, "internal-error", "internal error")


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


def _headers(exc: Exception) -> dict[str, str] | None:
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": 'Bearer realm="ledger-node"'}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return None


def _allow(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None
