"""OpenAPI 3.1 documents built from the pydantic models the handlers validate with.

A handler declares its operation with ``@operation(...)``: its query, path and body models, its
success status and body, and how it is authenticated. A service builds its document from the routes
it actually registered (``document()``), so the document cannot describe a route that does not exist,
and a registered route without a declaration is an error (``UndocumentedRoute``), never a gap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
_ATTR = "__openapi_operation__"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

F = TypeVar("F", bound=Callable[..., Any])
# "none": undeclared (a service that enforces access refuses to start with one); "public": anyone;
# "read", "append", "query", "admin": a bearer credential with that scope; "signed": a peer node
Auth = Literal["none", "public", "read", "append", "query", "admin", "signed"]
SCOPED = ("read", "append", "query", "admin")


class UndocumentedRoute(Exception):
    """A registered route has no ``@operation`` declaration."""


@dataclass(frozen=True)
class Operation:
    """What one route takes and answers. ``body`` and ``response`` are pydantic models or types
    (``EntryDraft | list[EntryDraft]``); ``response=None`` is any JSON value."""

    summary: str
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    body: Any = None
    ok: int = 200
    response: Any = None
    content_type: str = "application/json"
    auth: Auth = "none"


def operation(summary: str, **details: Any) -> Callable[[F], F]:
    """Declare the operation ``handler`` serves (see ``Operation``)."""

    def mark(handler: F) -> F:
        setattr(handler, _ATTR, Operation(summary, **details))
        return handler

    return mark


def declared(handler: Callable[..., Any]) -> Operation | None:
    return getattr(handler, _ATTR, None)


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "urn:ledger:problem:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "what was wrong, naming the offending field"},
    },
}
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http", "scheme": "bearer",
        "description": "an API token (lnt_<id>_<secret>) carrying the scope listed, or the node's admin token; "
                       "admin implies every scope; reads may be configured public (docs/access.md)",
    },
    "signed": {
        "type": "apiKey", "in": "header", "name": "X-Ledger-Signature",
        "description": "a node-to-node request signed by a pinned key, with X-Ledger-Id, X-Ledger-Timestamp "
                       "and X-Ledger-Nonce (docs/protocol.md)",
    },
}  # fmt: skip


def document(title: str, version: str, description: str, routes: Iterable[Any]) -> dict[str, Any]:
    """The OpenAPI document of ``routes``, the routes of an aiohttp router (``.method``,
    ``.resource.canonical``, ``.handler``); HEAD routes that aiohttp adds beside GET ones are left out.
    Raises UndocumentedRoute for a handler without a declaration."""
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        method, path, handler = route.method, route.resource.canonical, route.handler
        if method == "HEAD":
            continue
        op = declared(handler)
        if op is None:
            raise UndocumentedRoute(f"{method} {path}: no @operation declaration on {handler.__name__}")
        paths.setdefault(_PATH_PARAM.sub(r"{\1}", path), {})[method.lower()] = _operation(method, path, op, schemas)
    components = {"schemas": dict(sorted(schemas.items())), "securitySchemes": SECURITY_SCHEMES}
    info = {"title": title, "version": version, "description": description}
    return {"openapi": OPENAPI_VERSION, "info": info, "paths": dict(sorted(paths.items())), "components": components}


def _operation(method: str, path: str, op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", f"{method} {path}") if part)
    spec: dict[str, Any] = {"operationId": name[0].lower() + name[1:], "summary": op.summary}
    parameters = _path_parameters(path, op.path, schemas) + _query_parameters(op.query, schemas)
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        body = {"content": {"application/json": {"schema": _schema(op.body, "validation", schemas)}}}
        spec["requestBody"] = {"required": True, **body}
    success: dict[str, Any] = {"description": op.summary}
    if op.ok != 204:
        schema = {} if op.response is None else _schema(op.response, "serialization", schemas)
        success["content"] = {op.content_type: {"schema": schema}}
    problem = {"content": {"application/problem+json": {"schema": {"$ref": REF_TEMPLATE.format(model="Problem")}}}}
    spec["responses"] = {str(op.ok): success, "4XX": {"description": "refused; nothing changed", **problem}}
    if op.auth in SCOPED:
        spec["security"] = [{"bearer": [op.auth]}]
    elif op.auth == "signed":
        spec["security"] = [{"signed": []}]
    return spec


def _schema(kind: Any, mode: Literal["validation", "serialization"], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(kind).json_schema(mode=mode, ref_template=REF_TEMPLATE)
    schemas.update(schema.pop("$defs", {}))
    if "title" in schema and "properties" in schema:  # a model: referenced, not inlined
        schemas[schema["title"]] = schema
        return {"$ref": REF_TEMPLATE.format(model=schema["title"])}
    return schema


def _properties(model: type[BaseModel] | None, schemas: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    if model is None:
        return {}, []
    schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    schemas.update(schema.pop("$defs", {}))
    return schema.get("properties", {}), schema.get("required", [])


def _path_parameters(path: str, model: type[BaseModel] | None, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    properties, _ = _properties(model, schemas)
    return [{"name": name, "in": "path", "required": True, "schema": properties.get(name, {"type": "string"})}
            for name in _PATH_PARAM.findall(path)]  # fmt: skip


def _query_parameters(model: type[BaseModel] | None, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    properties, required = _properties(model, schemas)
    return [{"name": name, "in": "query", "required": name in required, "schema": _present(schema)}
            for name, schema in properties.items()]  # fmt: skip


def _present(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter's schema without its ``null`` branch: absent is how a query says None."""
    branches = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
    if len(branches) == 1 and len(schema["anyOf"]) == 2:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**branches[0], **rest}
    return schema
