"""JSON in and out of handlers: orjson, bounded bodies, errors that name the field.

Parsing JSON costs far more memory than the body's bytes (a 4 MiB body of ``[[],[],...]`` becomes
1.4 million lists), and orjson holds the event loop while it parses. Bodies over ``LARGE_BODY``
bytes are therefore parsed a few at a time (``PARSE_SLOTS``), so parallel large requests queue
instead of multiplying the memory and stacking their pauses of the loop. Before parsing, a scan at
memory speed counts ``,``, ``[`` and ``{``: an upper bound on the values, arrays and objects the body
can hold, which is what parsing costs (in time and memory), and refuses more than
``limits.max_body_values``. Large bodies are then parsed with the cyclic garbage collector paused,
since allocating many containers otherwise triggers collections that traverse them again and again;
parsed JSON holds no cycles to collect.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from node.errors import InvalidRequest
from protocol import jsontext
from protocol.errors import DuplicateMember, LimitExceeded
from protocol.serving import body_slot, read_body

M = TypeVar("M", bound=BaseModel)

LARGE_BODY = 64 * 1024  # bytes; smaller bodies parse in well under a millisecond, unbounded


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """How large bodies are parsed: ``slots`` at once, at most ``max_values`` values (bound by counting)."""

    slots: asyncio.Semaphore
    max_values: int


BODY_LIMITS = web.AppKey("body_limits", BodyLimits)  # set by the app factory


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


async def read_json(request: web.Request, *, bounded: bool = True) -> Any:
    """The request body as JSON; InvalidRequest for a wrong content type or malformed JSON,
    LimitExceeded (413) for a large body that may hold more values than allowed (unless not
    ``bounded``: pages pushed by signed, admitted peers)."""
    if request.content_type not in ("application/json", "application/octet-stream") and request.body_exists:
        raise InvalidRequest(f"body: content type must be application/json, not {request.content_type}")
    limits = request.app.get(BODY_LIMITS)
    if limits is None:
        return _parse(await read_body(request))
    if request.content_length is not None and request.content_length > LARGE_BODY:
        async with body_slot(request, limits.slots):  # wait before reading (the raw bytes count too), 408 beyond
            return _parse_large(await read_body(request), limits.max_values if bounded else None)
    raw = await read_body(request)  # aiohttp refuses bodies over client_max_size with 413 (408: too slow)
    if len(raw) > LARGE_BODY:  # chunked: the length is known only now
        async with body_slot(request, limits.slots):
            return _parse_large(raw, limits.max_values if bounded else None)
    return _parse(raw)


def _parse(raw: bytes) -> Any:
    try:
        return jsontext.loads(raw)  # duplicate member names refused (docs/protocol.md section 2)
    except jsontext.JSONDecodeError as exc:
        raise InvalidRequest(f"body: malformed JSON ({exc})") from exc
    except DuplicateMember as exc:
        raise DuplicateMember(f"body: {exc}") from exc


def _parse_large(raw: bytes, max_values: int | None) -> Any:
    if max_values is not None and raw.count(b",") + raw.count(b"[") + raw.count(b"{") > max_values:
        raise LimitExceeded(f"body: may hold more than {max_values} JSON values (limits.max_body_values)")
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(raw)
    finally:
        if collecting:
            gc.enable()


def validate(model: type[M], data: Any, where: str = "") -> M:
    """Validate ``data`` as ``model``; InvalidRequest naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc, where)) from exc


def validate_query(model: type[M], query: Mapping[str, str]) -> M:
    """Validate query parameters (strings, converted by the model in lax mode)."""
    try:
        return model.model_validate(dict(query), strict=False)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc, "")) from exc


def describe(exc: ValidationError, where: str) -> str:
    error = exc.errors(include_url=False)[0]
    path = where
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return f"{path or 'body'}: {error['msg']}"
