"""``/admin/...``: operator endpoints behind the admin bearer token."""

from __future__ import annotations

import dataclasses
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

import node
from node.api.auth import require_token
from node.api.context import LEDGER, LIFECYCLE, METRICS
from node.api.json import json_response, validate_query


class VerifyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["fast", "chain", "full"] = "chain"


async def status(request: web.Request) -> web.Response:
    """The node's identity, head, settings that matter to operators, and uptime."""
    ledger = request.app[LEDGER]
    settings = ledger.settings
    return json_response(
        {
            "ledger_id": ledger.ledger_id,
            "version": node.__version__,
            "ready": request.app[LIFECYCLE].ready,
            "started_ms": request.app[LIFECYCLE].started_ms,
            "stats": await ledger.stats(),
            "settings": {
                "data_dir": str(settings.data_dir),
                "durability": settings.durability,
                "verify_on_start": settings.verify_on_start,
                "streams": settings.streams,
                "limits": settings.limits.model_dump(),
            },
        }
    )


async def verify(request: web.Request) -> web.Response:
    """Verify the store now (``?mode=fast|chain|full``); 500 store-corrupted names the bad seq."""
    params = validate_query(VerifyParams, request.query)
    reports = await request.app[LEDGER].verify(params.mode)
    for report in reports:
        request.app[METRICS].verify_seconds.labels(report.mode).set(report.seconds)
    return json_response({"ok": True, "ledgers": [dataclasses.asdict(r) for r in reports]})


def routes(token: str) -> list[web.RouteDef]:
    return [
        web.get("/admin/status", require_token(token, status)),
        web.post("/admin/verify", require_token(token, verify)),
    ]
