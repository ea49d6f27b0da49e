"""``python -m scenarios status``: every node of a running network at a glance (head per ledger, lag
per peer, open conflicts, trust edges), from the nodes' admin APIs, as the tables ``ledger-node`` prints."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console

from node.client import NodeClient
from protocol.terminal import print_table

console = Console()


async def show(nodes: dict[str, str], token: str | None) -> int:
    """Print one table per view over ``nodes`` (name -> URL); 1 when a node could not be asked."""
    answers = await asyncio.gather(*(_gather(url, token) for url in nodes.values()), return_exceptions=True)
    heads: list[list[object]] = []
    lags: list[list[object]] = []
    conflicts: list[list[object]] = []
    trust: list[list[object]] = []
    failed = 0
    for name, answer in zip(nodes, answers, strict=True):
        if isinstance(answer, BaseException):
            failed += 1
            heads.append([name, str(answer), "", "", ""])
            continue
        status, sync, found, edges = answer
        for x in status["ledgers"]:
            heads.append([name, x["ledger_id"], x["head_seq"], (x["head_hash"] or "")[:16],
                          "yes" if x["quarantined"] else ""])  # fmt: skip
        for p in sync["peers"]:
            lags.append([name, p["ledger_id"], p["state"], p["failures"], sum(x["lag"] for x in p["ledgers"]),
                         p["last_error"]])  # fmt: skip
        for c in found:
            conflicts.append([name, c["kind"], c["ledger_id"], c["seq"], c["key"]])
        for e in edges:
            trust.append([name, e["from"], e["to"], e["level"], e["type"]])
    print_table("heads", ["node", "ledger", "seq", "hash", "quarantined"], heads, console)
    print_table("lag per peer", ["node", "peer", "state", "failures", "lag", "last error"], lags, console)
    print_table("open conflicts", ["node", "kind", "ledger", "seq", "key"], conflicts, console)
    print_table("trust edges", ["node", "from", "to", "level", "type"], trust, console)
    return 1 if failed else 0


async def _gather(url: str, token: str | None) -> tuple[Any, Any, Any, Any]:
    async with NodeClient(url, token, timeout_s=10) as client:
        status, sync = await client.get("/admin/status"), await client.get("/ledger/sync/status")
        conflicts, trust = await client.get("/admin/conflicts", {"status": "open"}), await client.get("/network/trust")
        return status, sync, conflicts, trust
