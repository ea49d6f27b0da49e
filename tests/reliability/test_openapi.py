"""The OpenAPI documents describe exactly the routes registered: none missing, none invented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web

from node.api import setup_routes
from node.api.auth import check_declarations
from node.api.openapi import SPEC as NODE_SPEC
from node.settings import NodeSettings
from protocol.openapi import UndocumentedRoute, document, operation
from registry.app import SPEC as REGISTRY_SPEC
from registry.app import build_app
from registry.settings import RegistrySettings
from tests.conftest import ADMIN_TOKEN, RunningNode


def registered(app: web.Application) -> set[tuple[str, str]]:
    return {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}


def described(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in spec["paths"].items() for method in item}


def node_app(admin: bool) -> web.Application:
    app = web.Application()
    setup_routes(app, NodeSettings(ledger_id="node-a", admin_token=ADMIN_TOKEN if admin else None))
    return app


@pytest.mark.parametrize("admin", [True, False])
def test_the_node_document_has_every_registered_route_and_no_other(admin: bool) -> None:
    app = node_app(admin)
    spec = app[NODE_SPEC]
    assert spec["openapi"] == "3.1.0"
    assert described(spec) == registered(app)
    assert any(path.startswith("/admin") for _, path in described(spec))  # always there, 401 without a credential


def test_every_node_operation_declares_its_access() -> None:
    paths = node_app(True)[NODE_SPEC]["paths"]
    assert paths["/ledger/entries"]["post"]["security"] == [{"bearer": ["append"]}]
    assert paths["/ledger/entries"]["get"]["security"] == [{"bearer": ["read"]}]
    assert paths["/network/query"]["get"]["security"] == [{"bearer": ["query"]}]
    assert paths["/admin/credentials"]["post"]["security"] == [{"bearer": ["admin"]}]
    assert paths["/ledger/sync/pull"]["get"]["security"] == [{"signed": []}]
    assert "security" not in paths["/health"]["get"] and "security" not in paths["/network/introduce"]["post"]


def test_a_route_with_an_undeclared_access_stops_the_node() -> None:
    app = web.Application()

    @operation("no auth declared")
    async def bare(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/ledger/bare", bare)
    with pytest.raises(ValueError, match="GET /ledger/bare: declare auth="):
        check_declarations(app.router.routes())


def test_the_registry_document_has_every_registered_route_and_no_other(tmp_path: Path) -> None:
    app = build_app(RegistrySettings(data_dir=tmp_path))
    assert described(app[REGISTRY_SPEC]) == registered(app)


def test_a_route_without_a_declaration_is_an_error() -> None:
    app = node_app(admin=False)

    async def undeclared(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/ledger/undeclared", undeclared)
    with pytest.raises(UndocumentedRoute, match="GET /ledger/undeclared"):
        document("t", "0", "", app.router.routes())


def test_documents_are_valid_openapi_with_the_handlers_models(tmp_path: Path) -> None:
    for spec in (node_app(True)[NODE_SPEC], build_app(RegistrySettings(data_dir=tmp_path))[REGISTRY_SPEC]):
        schema = schemathesis.openapi.from_dict(spec)
        operations = [op.ok() for op in schema.get_all_operations()]
        assert len(operations) == len(described(spec))
    append = node_app(True)[NODE_SPEC]["paths"]["/ledger/entries"]["post"]
    body = append["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/EntryDraft"} in body["anyOf"]
    query = {p["name"]: p for p in node_app(True)[NODE_SPEC]["paths"]["/ledger/entries"]["get"]["parameters"]}
    assert query["limit"]["schema"]["minimum"] == 1 and query["stream"]["schema"]["pattern"]


async def test_served_at_openapi_json(node: RunningNode) -> None:
    status, spec, ctype = await node.request("GET", "/openapi.json")
    assert status == 200 and ctype == "application/json"
    assert described(spec) == registered(node.app)
