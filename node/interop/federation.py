"""Federated queries: one query answered from this node's store and its trusted peers'.

The query fans out concurrently to peers the trust graph allows to be queried (``full``, ``partial``
or ``query-only`` at or above ``min_trust``), each with its own timeout. Every entry a peer returns
is verified before it is used: its ledger's key must be pinned here, its hash recomputed, its
signature checked. A peer that returns one bad entry is reported (``error``) and all its results
are dropped. Results are merged with local ones, deduplicated by (ledger_id, seq), ordered by
(timestamp, ledger_id, seq) and cut to the limit; the cursor is the last position returned, which
is a position in every ledger at once, given while any source holds more, and bound to the query
(filters, ``ledgers``, ``min_trust``): another query refuses it. A ``ledgers`` filter is
part of what every source reads, so it never empties a page that was taken from other ledgers.
The answer stops at the budget of protocol answers (at least one entry), with a cursor to go on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, replace
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from node.errors import InvalidRequest, NodeError
from node.interop.trust import TrustGraph
from node.ledger.chain import verify_entry
from node.ledger.cursor import Position, decode_cursor, encode_cursor
from node.ledger.replicas import check_signatures
from node.ledger.service import Ledger
from node.net.client import Outbound
from node.net.peers import PeerView
from node.net.shapes import parse
from node.storage.contract import Filters
from protocol.errors import ProtocolError
from protocol.models import ANSWER_BUDGET_BRACKETS, ANSWER_BUDGET_BYTES, MAX_PAGE, Entry

MAX_TIMEOUT_MS = 30_000


class BadPeerAnswer(Exception):
    """A peer answered with something that does not verify."""


class QueryAnswer(BaseModel):
    """A peer's answer to ``GET /ledger/entries`` (the fields used here)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    entries: Annotated[list[Entry], Field(max_length=MAX_PAGE)]
    next_cursor: Annotated[str, StringConstraints(max_length=1024)] | None = None


class Federation:
    def __init__(self, ledger: Ledger, peers: PeerView, trust: TrustGraph, net: Outbound) -> None:
        self._ledger = ledger
        self._peers = peers
        self._trust = trust
        self._net = net

    async def __aenter__(self) -> Federation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def query(
        self,
        filters: Filters,
        *,
        ledgers: list[str] | None,
        min_trust: float | None,
        timeout_ms: int,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
            raise InvalidRequest(f"timeout_ms: between 1 and {MAX_TIMEOUT_MS}")
        bound = {"filters": asdict(filters), "ledgers": sorted(set(ledgers or ())), "min_trust": min_trust}
        after = decode_cursor(cursor, bound) if cursor else None
        statuses: dict[str, str] = {}
        if ledgers:  # part of what every source reads, so a page holds only entries of these ledgers
            known = {row.ledger_id for row in await self._ledger.ledgers()} | {self._ledger.ledger_id}
            statuses = {lid: "unknown" for lid in ledgers if lid not in known}
            filters = replace(filters, ledgers=tuple(sorted(set(ledgers) & known)))
            if not filters.ledgers:  # no key pinned for any of them: nothing here or at a peer can match
                return {"entries": [], "next_cursor": None, "peers": {}, "ledgers": statuses}
        wanted = filters.ledgers
        local = await self._ledger.query(filters, limit=limit, after=after)
        results = {(r.ledger_id, r.seq): (r.timestamp, r.to_wire()) for r in local.rows}
        unfinished = {self._ledger.ledger_id} if local.next_cursor else set()  # sources holding more
        peers: dict[str, dict[str, Any]] = {}
        asked = []
        for peer in self._peers.all():
            if not self._trust.allows_query(peer.ledger_id, min_trust):
                peers[peer.ledger_id] = {"status": "untrusted"}
            else:
                asked.append(peer)
        answers = await asyncio.gather(
            *(self._ask(p.url, filters, after, limit, timeout_ms) for p in asked), return_exceptions=True
        )
        offered: dict[str, list[Entry]] = {}  # unverified, per peer
        for peer, answer in zip(asked, answers, strict=True):
            if isinstance(answer, TimeoutError):
                peers[peer.ledger_id] = {"status": "timeout"}
            elif isinstance(answer, BaseException):
                peers[peer.ledger_id] = {"status": "error", "detail": str(answer)[:200]}
            else:
                entries, more, elapsed = answer
                try:
                    await self._verify(entries, signatures=False)  # every hash, recomputed: cheap
                except BadPeerAnswer as exc:
                    peers[peer.ledger_id] = {"status": "error", "detail": str(exc)[:200]}
                    continue
                peers[peer.ledger_id] = {"status": "ok", "entries": len(entries), "ms": round(elapsed, 1)}
                offered[peer.ledger_id] = [e for e in entries if wanted is None or e.ledger_id in wanted]
                if more:
                    unfinished.add(peer.ledger_id)
        # merge, then check the signatures of what would be returned; a peer with one bad signature
        # is dropped whole and the page merged again without it
        while True:
            candidates = dict(results)
            source: dict[tuple[str, int], str] = {}
            for peer_id, entries in offered.items():
                for entry in entries:
                    position = (entry.ledger_id, entry.seq)
                    if position not in candidates:
                        candidates[position] = (entry.timestamp, entry)
                        source[position] = peer_id
            ordered = sorted(candidates.items(), key=lambda item: (item[1][0], item[0][0], item[0][1]))[:limit]
            chosen: dict[str, list[Entry]] = {}
            for position, (_, item) in ordered:
                if position in source:
                    chosen.setdefault(source[position], []).append(item)
            failed = None
            for peer_id, entries in chosen.items():
                try:
                    await self._verify(entries)
                except BadPeerAnswer as exc:
                    peers[peer_id] = {"status": "error", "detail": str(exc)[:200]}
                    failed = peer_id
                    break
            if failed is None:
                break
            del offered[failed]
        ordered = [(pos, (ts, item if isinstance(item, dict) else item.model_dump())) for pos, (ts, item) in ordered]
        fitting = _within_budget(ordered)
        cut, ordered = len(fitting) < len(ordered), fitting
        page = [wire for _, (_, wire) in ordered]
        statuses.update({lid: "ok" for (lid, _), _ in ordered})
        for lid in wanted or ():
            statuses.setdefault(lid, "skipped" if self._trust.allows_query(lid, min_trust) else "untrusted")
        # more to come if a source left entries out of this page; the cursor is then exact: every
        # source continues after the last position returned, so no entry is skipped or repeated
        more = len(candidates) > limit or bool(unfinished & {self._ledger.ledger_id, *offered})
        next_cursor = None
        if (more or cut) and ordered:
            (lid, seq), (ts, _) = ordered[-1]
            next_cursor = encode_cursor((ts, lid, seq), bound)
        return {"entries": page, "next_cursor": next_cursor, "peers": peers, "ledgers": statuses}

    async def _ask(
        self, url: str, filters: Filters, after: Position | None, limit: int, timeout_ms: int
    ) -> tuple[list[Entry], bool, float]:
        params = {k: str(v) for k, v in asdict(filters).items() if v is not None}
        if filters.ledgers is not None:
            params["ledgers"] = ",".join(filters.ledgers)  # a comma list on the wire
        params["limit"] = str(limit)
        if after is not None:
            params["after"] = f"{after[0]}:{after[1]}:{after[2]}"
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                answer = await self._net.request("GET", url, "/ledger/entries?" + urlencode(params))
            body = parse(QueryAnswer, answer.data)
        except NodeError as exc:
            raise BadPeerAnswer(str(exc)) from exc
        if len(body.entries) > limit:
            raise BadPeerAnswer(f"more entries than the limit of {limit}")
        more = body.next_cursor is not None  # the peer holds more after this page
        return list(body.entries), more, (time.perf_counter() - started) * 1000

    async def _verify(self, entries: list[Entry], *, signatures: bool = True) -> None:
        """Entries from a peer count only if their origin's pinned key signed exactly this content:
        each hash is recomputed here; the signatures (unless ``signatures`` is off) are checked per
        ledger on two threads."""
        keys = {row.ledger_id: row.public_key for row in await self._ledger.ledgers()}
        keys[self._ledger.ledger_id] = self._ledger.keys.public_key
        signed: dict[str, list[tuple[int, bytes, bytes]]] = {}
        for entry in entries:
            key = keys.get(entry.ledger_id)
            if key is None:
                raise BadPeerAnswer(f"entry of unknown ledger {entry.ledger_id}")
            try:
                row = verify_entry(key, entry, signature=False)  # the hash, recomputed from the content
            except ProtocolError as exc:
                raise BadPeerAnswer(f"{entry.ledger_id}/{entry.seq}: {exc}") from exc
            signed.setdefault(entry.ledger_id, []).append((entry.seq, row.hash, row.sig))
        if not signatures:
            return
        for ledger_id, items in signed.items():
            try:
                await check_signatures(keys[ledger_id], items)
            except ProtocolError as exc:
                raise BadPeerAnswer(f"{ledger_id}: {exc}") from exc


def _within_budget(ordered: list[Any]) -> list[Any]:
    """The longest prefix of the merged page whose entries fit the answer budget (at least one)."""
    used = opened = 0
    for i, (_, (_, wire)) in enumerate(ordered):
        raw = orjson.dumps(wire)
        used += len(raw) + 1
        opened += raw.count(b"[") + raw.count(b"{")
        # room for the cursor and the peers' statuses
        if (used > ANSWER_BUDGET_BYTES - 64 * 1024 or opened > ANSWER_BUDGET_BRACKETS - 1024) and i > 0:
            return ordered[:i]
    return ordered
