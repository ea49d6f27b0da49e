"""``python -m scenarios status``: every node of a running network at a glance (head per ledger, lag
per peer, open conflicts, trust edges), from the nodes' admin APIs."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

console = Console()


async def show(nodes: dict[str, str], token: str | None) -> int:
    """Print one table per view over ``nodes`` (name -> URL); 1 when a node could not be asked."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as session:
        answers = await asyncio.gather(*(_gather(session, url) for url in nodes.values()), return_exceptions=True)
    heads, lags, conflicts, trust = (_table(t, c) for t, c in (
        ("heads", ["node", "ledger", "seq", "hash", "quarantined"]),
        ("lag per peer", ["node", "peer", "state", "failures", "lag", "last error"]),
        ("open conflicts", ["node", "kind", "ledger", "seq", "key"]),
        ("trust edges", ["node", "from", "to", "level", "type"]),
    ))  # fmt: skip
    failed = 0
    for name, answer in zip(nodes, answers, strict=True):
        if isinstance(answer, BaseException):
            failed += 1
            reason = str(answer) if isinstance(answer, PermissionError) else f"unreachable ({type(answer).__name__})"
            heads.add_row(name, reason, "", "", "")
            continue
        status, sync, found, edges = answer
        for x in status["ledgers"]:
            heads.add_row(name, x["ledger_id"], str(x["head_seq"]), (x["head_hash"] or "")[:16],
                          "yes" if x["quarantined"] else "")  # fmt: skip
        for p in sync["peers"]:
            lags.add_row(name, p["ledger_id"], p["state"], str(p["failures"]), str(sum(x["lag"] for x in p["ledgers"])),
                         p["last_error"] or "")  # fmt: skip
        for c in found:
            conflicts.add_row(name, c["kind"], c["ledger_id"] or "", str(c["seq"] or ""), c["key"] or "")
        for e in edges:
            trust.add_row(name, e["from"], e["to"], str(e["level"]), e["type"])
    for table in (heads, lags, conflicts, trust):
        console.print(table)
    return 1 if failed else 0


async def _gather(session: aiohttp.ClientSession, url: str) -> tuple[Any, Any, Any, Any]:
    async def get(path: str, **params: str) -> Any:
        async with session.get(url + path, params=params) as response:
            if response.status == 401:
                raise PermissionError("admin token refused (--token or $LEDGER_ADMIN_TOKEN)")
            response.raise_for_status()
            return await response.json()

    return (await get("/admin/status"), await get("/ledger/sync/status"), await get("/admin/conflicts", status="open"),
            await get("/network/trust"))  # fmt: skip


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table
