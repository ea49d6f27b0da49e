"""``python -m scenarios status``: every node of a running network at a glance (head per ledger, lag
per peer, open conflicts, trust edges), from the nodes' admin APIs."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.table import Table

from node.client import NodeClient

console = Console()


async def show(nodes: dict[str, str], token: str | None) -> int:
    """Print one table per view over ``nodes`` (name -> URL); 1 when a node could not be asked."""
    answers = await asyncio.gather(*(_gather(url, token) for url in nodes.values()), return_exceptions=True)
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
            heads.add_row(name, str(answer), "", "", "")
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


async def _gather(url: str, token: str | None) -> tuple[Any, Any, Any, Any]:
    async with NodeClient(url, token, timeout_s=10) as client:
        status, sync = await client.get("/admin/status"), await client.get("/ledger/sync/status")
        conflicts, trust = await client.get("/admin/conflicts", {"status": "open"}), await client.get("/network/trust")
        return status, sync, conflicts, trust


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table
