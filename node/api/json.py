"""JSON in and out of handlers: orjson, bounded bodies, errors that name the field.

Parsing JSON costs far more memory than the body's bytes (a 4 MiB body of ``[[],[],...]`` becomes
two million lists), and orjson holds the event loop while it parses. Bodies over ``LARGE_BODY``
bytes are therefore parsed a few at a time (``PARSE_SLOTS``), so parallel large requests queue
instead of multiplying the memory and stacking their pauses of the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from node.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

LARGE_BODY = 64 * 1024  # bytes; smaller bodies parse in well under a millisecond, unbounded
PARSE_SLOTS = web.AppKey("parse_slots", asyncio.Semaphore)  # set by the app factory


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; InvalidRequest for a wrong content type or malformed JSON."""
    if request.content_type not in ("application/json", "application/octet-stream") and request.body_exists:
        raise InvalidRequest(f"body: content type must be application/json, not {request.content_type}")
    if request.content_length is not None and request.content_length > LARGE_BODY and PARSE_SLOTS in request.app:
        async with request.app[PARSE_SLOTS]:  # wait before reading: the raw bytes count too
            return _parse(await request.read())
    raw = await request.read()  # aiohttp refuses bodies over client_max_size with 413
    if len(raw) > LARGE_BODY and PARSE_SLOTS in request.app:  # chunked: the length is known only now
        async with request.app[PARSE_SLOTS]:
            return _parse(raw)
    return _parse(raw)


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: malformed JSON ({exc})") from exc


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
