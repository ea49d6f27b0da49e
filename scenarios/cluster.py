"""Wiring real node processes into a network: settings, peering through the admin API, head checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from node.keys import load_or_create_key_file
from node.ledger.service import Ledger
from node.settings import NodeSettings
from scenarios.procs import NodeProcess

ADMIN_TOKEN = "scenario-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def node_env(**sync: Any) -> dict[str, str]:
    """``LEDGER_*`` variables for a node process: the admin token, durability normal, automatic
    admission (the scenarios' network is closed: every node in it is the runner's), sync settings."""
    # every node and client of a scenario shares 127.0.0.1, and node-to-node reads that are not signed
    # (discovery, federation) count as anonymous: the per-address limit is raised for this closed network
    values = {"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN, "LEDGER_DURABILITY": "normal", "LEDGER_DISCOVERY__AUTO_ADMIT": "true",
              "LEDGER_ACCESS__ANONYMOUS_RATE_PER_S": "5000", "LEDGER_ACCESS__ANONYMOUS_BURST": "10000"}  # fmt: skip
    for name, value in sync.items():
        values[f"LEDGER_SYNC__{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


async def fill(data_dir: Path, ledger_id: str, entries: int) -> None:
    """Write ``entries`` small entries into a (stopped) node's data directory, in batches of 1000."""
    from bench.common import append_range  # the benchmark's entry mix

    settings = NodeSettings(ledger_id=ledger_id, data_dir=data_dir, durability="normal", max_group_entries=10_000)
    async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as ledger:
        await append_range(ledger, 0, entries)


async def add_peer(session: aiohttp.ClientSession, node: NodeProcess, other: NodeProcess, mode: str) -> None:
    """Make ``other`` a peer of ``node``, pinning the key ``other`` announces."""
    async with session.get(other.url + "/network/info") as response:
        info = await response.json()
    body = {"url": other.peer_url, "ledger_id": info["ledger_id"], "public_key": info["public_key"], "mode": mode}
    async with session.post(node.url + "/admin/peers", json=body, headers=AUTH) as response:
        if response.status != 201:
            raise RuntimeError(f"adding a peer failed: {await response.text()}")


async def holds(session: aiohttp.ClientSession, node: NodeProcess, ledger_id: str, seq: int) -> bool:
    """Whether ``node`` holds entry ``seq`` of ``ledger_id``."""
    async with session.get(f"{node.url}/ledger/ledgers/{ledger_id}/entries/{seq}") as response:
        await response.read()
        return response.status == 200
