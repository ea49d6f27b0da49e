"""Snapshots of the node and the network around it, for the browser console.

One snapshot holds what the console shows: this node (identity, version, uptime, store size,
verification state), the ledgers held, the sync state of every peer, the nodes known (from the
registry, this node's peers and discovery), each probed for reachability and head, the marks the
console draws (forged, untrusted, quarantined) and an "in sync" verdict comparing heads.

A snapshot is built at most once per ``console.snapshot_s / 2`` whatever the number of consoles
open, so many browsers never make the node probe its network more often (no polling storm).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import orjson

import node
from node.errors import NodeError
from node.interop.discovery import MAX_EXCHANGED, Discovery
from node.interop.trust import TrustGraph
from node.ledger.service import Ledger, Verification
from node.net.client import Outbound
from node.net.shapes import NodeInfo, parse, parse_list
from node.settings import NodeSettings
from node.storage.contract import LedgerRecord
from node.sync.conflicts import StateView
from node.sync.engine import SyncEngine
from protocol import PROTOCOL_VERSION
from protocol.records import NodeRecord
from protocol.signing import fingerprint
from protocol.trust import SYNC_TYPES

MAX_CONFLICTS = 50  # open conflicts in one snapshot (the admin API lists them all)
MAX_INTRODUCED = 20  # claims that only introduced themselves, drawn in one snapshot


class ConsoleFeed:
    """Builds (and shares) snapshots; use as ``async with ConsoleFeed(...) as feed``."""

    def __init__(
        self, ledger: Ledger, settings: NodeSettings, engine: SyncEngine, discovery: Discovery, trust: TrustGraph,
        net: Outbound, state: StateView, started_ms: Callable[[], int],
    ) -> None:  # fmt: skip
        self._ledger = ledger
        self._settings = settings
        self._conf = settings.console
        self._engine = engine
        self._discovery = discovery
        self._trust = trust
        self._started_ms = started_ms
        self._state = state
        self._net = net  # probes go through the node's one outbound client: its cap, timeouts and URL policy
        self._lock = asyncio.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self.streams = 0  # console event streams open now

    async def __aenter__(self) -> ConsoleFeed:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cached = None

    @property
    def interval_s(self) -> float:
        return self._conf.snapshot_s

    async def snapshot(self) -> dict[str, Any]:
        """The latest snapshot, built now unless one younger than half the interval exists."""
        async with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._conf.snapshot_s / 2:
                self._cached = (now, await self._build())
            return self._cached[1]

    # --- building ------------------------------------------------------------------------------

    async def _build(self) -> dict[str, Any]:
        held = await self._ledger.ledgers()
        sync = await self._engine.status()
        registry, listed = await self._registry_nodes()
        nodes = self._known(held, sync, listed)
        await self._probe(nodes)
        self._mark(nodes, held)
        return {
            "node": self._identity(held),
            "ledgers": [_ledger_wire(row) for row in held],
            "sync": sync,
            "registry": registry,
            "nodes": list(nodes.values()),
            "peer_links": _peer_links(nodes),
            "trust_edges": [
                {"from": a["from"], "to": a["to"], "level": a["level"], "type": a["type"]}
                for a in self._trust.attestations()
            ],
            "in_sync": _in_sync(self._ledger.ledger_id, nodes, held, sync),
            "activities": self._ledger.activities.listed(),
            "conflicts": [  # open ones, read-only here (resolving them is the admin API's)
                {**dataclasses.asdict(c), "evidence": orjson.Fragment(c.evidence)}
                for c in (await self._state.conflicts("open"))[:MAX_CONFLICTS]
            ],
            "candidates": sorted(
                lid for lid, n in nodes.items() if n["discovery_status"] == "candidate" and not n["peer"]
            ),  # fmt: skip
        }

    def _identity(self, held: list[LedgerRecord]) -> dict[str, Any]:
        ledger, settings = self._ledger, self._settings
        own = next((row for row in held if row.is_local), None)
        size = sum(p.stat().st_size for p in settings.data_dir.glob(settings.db_path.name + "*") if p.is_file())
        started = self._started_ms()
        return {
            "ledger_id": ledger.ledger_id,
            "public_key": ledger.keys.public_key.hex(),
            "key_fingerprint": fingerprint(ledger.keys.public_key),
            "version": node.__version__,
            "protocol": PROTOCOL_VERSION,
            "started_ms": started,
            "uptime_s": round(max(0.0, time.time() - started / 1000), 1) if started else 0.0,
            "store_bytes": size,
            "index_lag_entries": ledger.index_lag(),
            "verification": _verification(ledger.verification, own.head_seq if own else 0),
            "trust_required": settings.trust.required,
        }

    async def _registry_nodes(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The registry's listing (every status), from the first registry that answers."""
        urls = self._settings.discovery.registry_urls
        if not urls:
            return {"url": None, "error": None}, []
        last = "no registry answered"
        for url in urls:
            try:
                body = await self._get_json(url, "/registry/nodes?limit=1000")
                return {"url": url, "error": None}, [n for n in body.get("nodes", []) if isinstance(n, dict)]
            except (NodeError, ValueError, AttributeError) as exc:
                last = f"{url}: {_words(exc)}"
        return {"url": urls[0], "error": last}, []

    def _known(
        self, held: list[LedgerRecord], sync: dict[str, Any], listed: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        own = self._ledger.ledger_id
        nodes: dict[str, dict[str, Any]] = {}

        def entry(ledger_id: str) -> dict[str, Any]:
            return nodes.setdefault(ledger_id, {
                "ledger_id": ledger_id, "name": ledger_id, "url": None, "self": ledger_id == own, "peer": False,
                "sources": [], "registry_status": None, "discovery_status": None, "reachable": None,
                "probe_error": None, "public_key": None, "record_keys": [], "head": None, "held": None, "marks": [],
                "peers": None,
            })  # fmt: skip

        me = entry(own)
        me["reachable"], me["sources"] = True, ["self"]
        head = self._ledger.head
        me["head"] = {"seq": head.head_seq, "hash": head.head_hash.hex() if head.head_hash else None}
        for peer in sync["peers"]:
            item = entry(peer["ledger_id"])
            item.update(url=peer["url"], peer=True, peer_state=peer["state"])
            item["sources"].append("peer")
        for found in _shown(self._discovery.discovered(), nodes):
            record = found["record"]
            item = entry(record["ledger_id"])
            item["url"] = item["url"] or (record["endpoints"] or [None])[0]
            item["name"] = record.get("name") or item["name"]
            item["discovery_status"] = found["status"]
            item["discovery_detail"] = found.get("detail")
            item["record_keys"].append(record["public_key"])
            item["sources"].extend(s for s in found["sources"] if s not in item["sources"])
        for listing in listed:
            record = listing.get("record") or {}
            if not isinstance(record, dict) or not isinstance(record.get("ledger_id"), str):
                continue
            item = entry(record["ledger_id"])
            endpoints = record.get("endpoints") or [None]
            item["url"] = item["url"] or endpoints[0]
            item["registry_status"] = listing.get("status")
            item["record_keys"].append(record.get("public_key"))
            if "registry" not in item["sources"]:
                item["sources"].append("registry")
        for row in held:
            if row.ledger_id in nodes:
                nodes[row.ledger_id]["held"] = {"seq": row.head_seq,
                                                "hash": row.head_hash.hex() if row.head_hash else None}  # fmt: skip
        return nodes

    async def _probe(self, nodes: dict[str, dict[str, Any]]) -> None:
        """Ask each peer and registry-listed node (peers first, at most ``max_probed``) for its
        /network/info. A candidate that only introduced itself is not probed: the node never fetches
        a URL a stranger named."""
        others = sorted(
            (n for n in nodes.values() if not n["self"] and n["url"] and (n["peer"] or "registry" in n["sources"])),
            key=lambda n: not n["peer"],
        )
        await asyncio.gather(*(self._probe_one(n) for n in others[: self._conf.max_probed]))

    async def _probe_one(self, item: dict[str, Any]) -> None:
        """Probe one node: its /network/info read through a bounded model (a bad answer fails the probe
        with a reason that names a field, never quotes the answer), then its peer exchange."""
        try:
            answer = await self._net.request("GET", str(item["url"]), "/network/info",
                                             headers={"Accept": "application/json"},
                                             timeout_s=self._conf.probe_timeout_s)  # fmt: skip
            info = parse(NodeInfo, answer.data)
        except NodeError as exc:
            item.update(reachable=False, probe_error=_words(exc))
            return
        item.update(reachable=True, public_key=info.public_key,
                    head=None if info.head is None else {"seq": info.head.seq, "hash": info.head.hash})  # fmt: skip
        if info.ledger_id != item["ledger_id"]:
            item["marks"].append("forged")
            item["probe_error"] = f"answers as {info.ledger_id!r}"  # a ledger id: the model bounds it
            return
        try:  # its admitted peers, from its public peer exchange (for the links between other nodes)
            answer = await self._net.request("GET", str(item["url"]), "/network/ledgers",
                                             timeout_s=self._conf.probe_timeout_s)  # fmt: skip
            records = parse_list(NodeRecord, answer.data, MAX_EXCHANGED)  # as discovery reads peer exchange
            item["peers"] = sorted({r.ledger_id for r in records} - {item["ledger_id"]})
        except NodeError:
            pass  # the node answered its info: only the links it would have shown are missing

    def _mark(self, nodes: dict[str, dict[str, Any]], held: list[LedgerRecord]) -> None:
        pinned = {row.ledger_id: row for row in held}
        own = self._ledger.ledger_id
        distrusted = {a["to"] for a in self._trust.attestations() if a["from"] == own and a["level"] == 0}
        threshold = self._settings.trust.sync_threshold
        for lid, item in nodes.items():
            marks: list[str] = item["marks"]
            row = pinned.get(lid)
            answered = item["public_key"]  # the key the node answers with must be the one its records name
            claimed = {key for key in item.pop("record_keys") if key} | ({row.public_key.hex()} if row else set())
            if item["discovery_status"] == "identity-conflict" or (answered is not None and claimed - {answered}):
                marks.append("forged")
            if not item["self"]:
                item["trust_score"], _ = self._trust.score(own, lid, SYNC_TYPES)
                if lid in distrusted or (self._settings.trust.required and item["trust_score"] < threshold):
                    marks.append("untrusted")
            if row is not None and row.quarantined:
                marks.append("quarantined")
            if item["discovery_status"] == "refused":
                marks.append("refused")
            item["marks"] = sorted(set(marks))
            if item["self"]:
                item["status"] = "online"
            elif item["reachable"] is not None:
                item["status"] = "online" if item["reachable"] else "offline"
            else:
                item["status"] = item["registry_status"] or "unknown"

    async def _get_json(self, endpoint: str, target: str) -> Any:
        answer = await self._net.request(
            "GET", endpoint, target, headers={"Accept": "application/json"}, timeout_s=self._conf.probe_timeout_s
        )
        if not isinstance(answer.data, dict):
            raise ValueError("the answer is not a JSON object")
        return answer.data


def _shown(found: list[dict[str, Any]], known: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The claims drawn: every claim of a node known otherwise or proposed by a source the operator
    configured, and the newest ``MAX_INTRODUCED`` that only introduced themselves (strangers cannot
    fill the picture; the whole list is GET /admin/candidates)."""
    introduced = [f for f in found if f["sources"] == ["introduce"] and f["ledger_id"] not in known]
    hidden = {id(f) for f in sorted(introduced, key=lambda f: f["seen_ms"], reverse=True)[MAX_INTRODUCED:]}
    return [f for f in found if id(f) not in hidden]


def _peer_links(nodes: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Peerings between two other known nodes where each lists the other in its peer exchange: one link
    per pair. A node lists a peer it admitted whether or not that peer admitted it back, and the two
    sync only when both did, so a one-sided listing draws no link."""
    pairs = {
        tuple(sorted((lid, peer)))
        for lid, item in nodes.items()
        if not item["self"]
        for peer in item["peers"] or ()
        if peer in nodes and not nodes[peer]["self"] and lid in (nodes[peer]["peers"] or ())
    }
    return [{"a": a, "b": b} for a, b in sorted(pairs)]


def _ledger_wire(row: LedgerRecord) -> dict[str, Any]:
    return {"ledger_id": row.ledger_id, "local": row.is_local, "head_seq": row.head_seq,
            "head_hash": row.head_hash.hex() if row.head_hash else None, "verified_seq": row.verified_seq,
            "quarantined": row.quarantined, "public_key": row.public_key.hex()}  # fmt: skip


def _in_sync(
    own: str, nodes: dict[str, dict[str, Any]], held: list[LedgerRecord], sync: dict[str, Any]
) -> dict[str, Any]:
    """Compare heads across the nodes reached: each reached node's own head (seq and hash) with the copy
    held here, and what each peer last said it holds of every ledger with the head held here."""
    heads = {row.ledger_id: row for row in held}
    differences: list[str] = []
    reached = [n for n in nodes.values() if n["reachable"]]
    for item in reached:
        if item["self"] or item["head"] is None:
            continue
        row, theirs = heads.get(item["ledger_id"]), item["head"]
        if row is None:
            differences.append(f"{own} holds no copy of {item['ledger_id']} (at {theirs['seq']})")
        elif row.head_seq != theirs["seq"] or (row.head_hash.hex() if row.head_hash else None) != theirs["hash"]:
            differences.append(f"{own} holds {item['ledger_id']} at {row.head_seq}, {item['ledger_id']} is at "
                               f"{theirs['seq']}")  # fmt: skip
    reachable = {n["ledger_id"] for n in reached}
    for peer in sync["peers"]:
        if peer["ledger_id"] not in reachable:
            continue
        for ledger in peer["ledgers"]:
            if ledger["remote_seq"] != ledger["local_seq"]:
                differences.append(f"{peer['ledger_id']} holds {ledger['ledger_id']} at {ledger['remote_seq']}, "
                                   f"{own} at {ledger['local_seq']}")  # fmt: skip
    return {"in_sync": not differences, "nodes": sorted(reachable), "differences": differences[:20]}


def _words(exc: BaseException) -> str:
    """The failure in words (the outbound client's messages never quote what a node answered)."""
    return str(exc) or type(exc).__name__


def _verification(last: Verification | None, head_seq: int) -> dict[str, Any]:
    """What the last verification of the store covered, in words: entries written after it were
    checked as they were written, so a passed one leaves the whole ledger verified."""
    if last is None:
        return {"state": "not verified", "detail": "no verification ran in this process", "head_seq": head_seq}
    facts = {"mode": last.mode, "at_ms": last.at_ms, "checked_through_seq": last.own_through_seq, "head_seq": head_seq}
    if last.failure is not None:
        return {**facts, "state": "corrupted", "detail": f"{last.mode} verification failed: {last.failure}"}
    since = head_seq - last.own_through_seq
    detail = f"{last.mode} verification passed through seq {last.own_through_seq}"
    if since > 0:
        detail += f"; the {since} entries written since were checked as they were written"
    return {**facts, "state": "verified", "detail": detail}
