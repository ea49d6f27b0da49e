"""The trust graph (networkx ``DiGraph``): signed attestations as edges, effective trust as the best
product of levels along a path of bounded length, expired edges absent.

Attestations are verified against the pinned key of their ``from`` ledger before they count, kept
newest-per-(from, to), and shareable (``GET /network/trust``). One author holds at most
``trust.max_per_author`` attestations (one per target); beyond that, attestations for new targets are
refused with the reason.

Updates are incremental: an attestation changes one edge of each cached graph, and an expiry heap
removes edges as they expire, so taking an attestation costs the same at 30,000 held as at none.
Scores are cached and the cache is dropped on every change (a score is a bounded walk from one node).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any

import networkx as nx
import orjson
from pydantic import ValidationError

from node.errors import IdentityConflict, InvalidRequest, UnknownLedger
from node.ledger.clock import wall_ms
from node.ledger.service import Ledger
from node.net.shapes import location
from node.settings import TrustSettings
from node.storage.contract import AttestationRecord, TrustRepository
from protocol.errors import BadSignature, LimitExceeded
from protocol.trust import QUERY_TYPES, SYNC_TYPES, TrustAttestation, attest

log = logging.getLogger(__name__)

FOREVER = 2**53 - 1
UNVOUCHING = frozenset({"peer"})  # pins whose ledgers' attestations do not count: no one accountable chose the key


class TrustGraph:
    def __init__(
        self, ledger: Ledger, settings: TrustSettings, store: TrustRepository, clock: Callable[[], int] = wall_ms
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._settings = settings
        self._clock = clock
        self._edges: dict[tuple[str, str], TrustAttestation] = {}
        self._targets: dict[str, set[str]] = {}  # author -> targets it attested (the per-author bound)
        self._cache: dict[tuple[str, str, frozenset[str]], tuple[float, list[str]]] = {}
        self._graphs: dict[frozenset[str] | None, nx.DiGraph] = {}
        self._expiries: list[tuple[int, str, str]] = []  # heap of (expires_at, from, to) of counted edges
        self.version = 0  # moves on every change of the graph (the topology export's cache key)
        self._listing: tuple[int, list[dict[str, object]]] | None = None
        self._exports: dict[str, tuple[tuple[int, str, bytes], asyncio.Future[tuple[bytes, str]]]] = {}

    @property
    def own(self) -> str:
        return self._ledger.ledger_id

    async def load(self) -> None:
        for record in await self._store.all():
            self._put(TrustAttestation.model_validate_json(record.attestation))

    async def add(self, att: TrustAttestation) -> bool:
        """Verify an attestation under its author's pinned key and keep it if it is the newest.
        IdentityConflict for an author without a pinned key, BadSignature, LimitExceeded when the
        author already holds ``max_per_author`` attestations for other targets."""
        if not await self._admit(att):
            return False
        await self._store.save([self._record(att)])
        self._put(att)
        return True

    async def _admit(self, att: TrustAttestation, keys: dict[str, bytes | str] | None = None) -> bool:
        """Whether ``att`` is newer than the one held for its pair; raises when it is refused. ``keys``
        caches, over one batch, each author's pinned key or why it has none that may vouch."""
        keys = {} if keys is None else keys
        if att.source == self.own:
            key: bytes | str = self._ledger.keys.public_key
        elif att.source in keys:
            key = keys[att.source]
        else:
            key = keys[att.source] = await self._author_key(att.source)
        if isinstance(key, str):
            raise IdentityConflict(f"attestation from {att.source}: {key}")
        try:
            att.verify(key)
        except BadSignature as exc:
            raise BadSignature(f"attestation {att.source}->{att.target}: signature does not verify") from exc
        held_att = self._edges.get((att.source, att.target))
        if held_att is not None:
            return held_att.issued_at < att.issued_at
        targets = self._targets.get(att.source, set())
        if att.target not in targets and len(targets) >= self._settings.max_per_author:
            raise LimitExceeded(
                f"attestation {att.source}->{att.target}: {att.source} already holds "
                f"{self._settings.max_per_author} attestations (trust.max_per_author)"
            )
        return True

    async def _author_key(self, source: str) -> bytes | str:
        """The key ``source``'s attestations must verify under, or why none of them count here."""
        held = await self._ledger.held(source)
        if held is None:
            return "no key is pinned for it here"
        if held.pin_source in UNVOUCHING:
            return ("its key was pinned on a peer's word only, so it cannot vouch for others here (pin it as the "
                    "operator to count its attestations)")  # fmt: skip
        return held.public_key

    @staticmethod
    def _record(att: TrustAttestation) -> AttestationRecord:
        return AttestationRecord(att.source, att.target, att.model_dump_json(by_alias=True), att.issued_at)

    def _put(self, att: TrustAttestation) -> None:
        """Hold ``att`` for its pair and update the cached graphs' one edge."""
        pair = (att.source, att.target)
        self._edges[pair] = att
        self._targets.setdefault(att.source, set()).add(att.target)
        counted = att.expires_at > self._clock() and att.level > 0
        for kinds, graph in self._graphs.items():
            if graph.has_edge(*pair):
                graph.remove_edge(*pair)
            if counted and (kinds is None or att.type in kinds):
                graph.add_edge(*pair, level=att.level, type=att.type, expires_at=att.expires_at)
        if counted and att.expires_at < FOREVER:
            heapq.heappush(self._expiries, (att.expires_at, *pair))
        self._changed()

    def _changed(self) -> None:
        self._cache.clear()
        self.version += 1

    def _expire(self) -> None:
        """Drop the edges whose attestations expired since the last look (each once, from the heap)."""
        now = self._clock()
        dropped = False
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, source, target = heapq.heappop(self._expiries)
            att = self._edges.get((source, target))
            if att is None or att.expires_at != expires_at:
                continue  # replaced since; the newer one has its own heap entry
            for graph in self._graphs.values():
                if graph.has_edge(source, target):
                    graph.remove_edge(source, target)
            dropped = True
        if dropped:
            self._changed()

    async def attest(
        self, target: str, level: float, type_: str, expires_at: int | None = None, *, discovered: bool = True
    ) -> TrustAttestation:
        """Sign and keep this node's attestation for ``target`` (level 0 revokes). UnknownLedger when
        this node knows nothing of ``target``: no key pinned for it, not ``discovered``, no attestation
        of it held (an operator's typo would otherwise travel the network as a signed edge)."""
        if target == self.own:
            raise InvalidRequest("to: a node does not attest itself")
        known = discovered or await self._ledger.held(target) is not None
        if not known and not any(t == target for _, t in self._edges):
            raise UnknownLedger(
                f"to: no ledger {target} is known here (no key pinned, not discovered, no attestation of it "
                "held); add it as a peer or let discovery find it first"
            )
        own = [self._edges[(self.own, t)] for t in self._targets.get(self.own, ())]
        now = max(self._clock(), max((a.issued_at + 1 for a in own), default=0))
        att = attest(self._ledger.keys, self.own, target, level, type_, expires_at or FOREVER, now)
        await self.add(att)
        return att

    async def add_many(self, items: Iterable[Any]) -> dict[str, Any]:
        """Take shared attestations (wire dicts), stored in one transaction; returns counts of kept, old
        and refused ones, and for each refused one its index and the reason."""
        counts = {"kept": 0, "old": 0, "refused": 0}
        refusals: list[dict[str, Any]] = []
        fresh: dict[tuple[str, str], TrustAttestation] = {}
        keys: dict[str, bytes | str] = {}
        for index, item in enumerate(items):
            try:
                att = TrustAttestation.model_validate(item)
                pending = fresh.get((att.source, att.target))
                if pending is not None and pending.issued_at >= att.issued_at:
                    counts["old"] += 1
                elif await self._admit(att, keys):
                    if pending is None:
                        self._targets.setdefault(att.source, set()).add(att.target)  # counts toward the bound
                    fresh[(att.source, att.target)] = att
                    counts["kept"] += 1
                else:
                    counts["old"] += 1
            except ValidationError as exc:
                error = exc.errors(include_url=False, include_input=False)[0]  # a flat model: a few at most
                where, whole = location(TrustAttestation, "", error["loc"])  # never a member name sent
                reason = error["msg"] if whole else "an unexpected member"
                refusals.append({"index": index, "reason": f"{where or 'attestation'}: {reason}"})
            except (BadSignature, IdentityConflict, LimitExceeded) as exc:
                refusals.append({"index": index, "reason": str(exc)})
        counts["refused"] = len(refusals)
        if fresh:
            try:
                await self._store.save([self._record(att) for att in fresh.values()])
            finally:
                for att in fresh.values():  # the bound counted them already; undo that if the store failed
                    if (att.source, att.target) not in self._edges:
                        self._targets[att.source].discard(att.target)
            for att in fresh.values():
                self._put(att)
        return {**counts, "refusals": refusals}

    def forget(self, source: str) -> None:
        """Drop the attestations made by ``source`` (its pin was replaced or removed: they were
        verified under a key that no longer stands for it; the store dropped them already)."""
        for target in self._targets.pop(source, set()):
            if self._edges.pop((source, target), None) is not None:
                for graph in self._graphs.values():
                    if graph.has_edge(source, target):
                        graph.remove_edge(source, target)
        self._changed()  # expiry heap entries of dropped edges are skipped: their pair is gone

    def attestations(self) -> list[dict[str, object]]:
        """Every attestation held, in (from, to) order; built once per version of the graph."""
        if self._listing is None or self._listing[0] != self.version:
            self._listing = (self.version, [a.wire() for _, a in sorted(self._edges.items())])
        return self._listing[1]

    # --- scores --------------------------------------------------------------------------------

    def score(self, source: str, target: str, kinds: frozenset[str]) -> tuple[float, list[str]]:
        """Best product of levels over paths of at most ``max_depth`` unexpired edges of ``kinds``."""
        self._expire()
        key = (source, target, kinds)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._best_path(source, target, kinds)
        return cached

    def allows_sync(self, ledger_id: str) -> bool:
        if not self._settings.required or ledger_id == self.own:
            return True
        return self.score(self.own, ledger_id, SYNC_TYPES)[0] >= self._settings.sync_threshold

    def allows_query(self, ledger_id: str, threshold: float | None = None) -> bool:
        """Whether a query may go to ``ledger_id``: a caller's ``threshold`` may ask for more trust than
        the operator's ``query_threshold``, never less (the setting is a floor)."""
        limit = self._settings.query_threshold if threshold is None else max(threshold, self._settings.query_threshold)
        return ledger_id == self.own or self.score(self.own, ledger_id, QUERY_TYPES)[0] >= limit

    def _best_path(self, source: str, target: str, kinds: frozenset[str]) -> tuple[float, list[str]]:
        if source == target:
            return 1.0, [source]
        graph = self.graph(kinds)
        if source not in graph or target not in graph:
            return 0.0, []
        best: dict[str, tuple[float, list[str]]] = {source: (1.0, [source])}
        frontier = dict(best)
        for _ in range(self._settings.max_depth):
            step: dict[str, tuple[float, list[str]]] = {}
            for node, (value, path) in frontier.items():
                for _, nxt, data in graph.out_edges(node, data=True):
                    candidate = value * data["level"]
                    if nxt in path or candidate <= 0:
                        continue
                    if candidate > best.get(nxt, (0.0, []))[0] and candidate > step.get(nxt, (0.0, []))[0]:
                        step[nxt] = (candidate, [*path, nxt])
            for node, found in step.items():
                best[node] = found
            frontier = step
            if not frontier:
                break
        return best.get(target, (0.0, []))

    def graph(self, kinds: frozenset[str] | None = None) -> nx.DiGraph:
        """The unexpired edges (of ``kinds``) as a DiGraph with level, type and expires_at (built once,
        then kept up to date edge by edge)."""
        self._expire()
        cached = self._graphs.get(kinds)
        if cached is not None:
            return cached
        now = self._clock()
        graph = self._graphs[kinds] = nx.DiGraph()
        for att in self._edges.values():
            if att.expires_at > now and att.level > 0 and (kinds is None or att.type in kinds):
                graph.add_edge(att.source, att.target, level=att.level, type=att.type, expires_at=att.expires_at)
        return graph

    # --- export --------------------------------------------------------------------------------

    async def topology(self, nodes: dict[str, dict[str, Any]], fmt: str) -> tuple[bytes, str]:
        """The trust graph with node attributes (status, lag) as JSON, GraphML or DOT.

        Rendered in a worker thread from a snapshot of the (immutable) attestations, so a large graph
        never holds the event loop; the answer is kept until the graph or the node attributes change,
        and concurrent requests for the same answer share one rendering."""
        self._expire()
        key = (self.version, fmt, orjson.dumps(nodes, option=orjson.OPT_SORT_KEYS))
        cached = self._exports.get(fmt)
        if cached is None or cached[0] != key:
            edges = list(self._edges.values())
            task = asyncio.ensure_future(asyncio.to_thread(_render, edges, self._clock(), nodes, fmt))
            cached = self._exports[fmt] = (key, task)
        try:
            return await asyncio.shield(cached[1])
        except Exception:
            if self._exports.get(fmt) is cached:
                del self._exports[fmt]  # a failed rendering is not kept
            raise


def _render(edges: list[TrustAttestation], now: int, nodes: dict[str, dict[str, Any]], fmt: str) -> tuple[bytes, str]:
    graph = nx.DiGraph()
    for att in edges:
        if att.expires_at > now and att.level > 0:
            graph.add_edge(att.source, att.target, level=att.level, type=att.type, expires_at=att.expires_at)
    for name, attrs in nodes.items():
        graph.add_node(name, **{k: v for k, v in attrs.items() if v is not None})
    if fmt == "graphml":
        buffer = BytesIO()
        nx.write_graphml(graph, buffer)
        return buffer.getvalue(), "application/graphml+xml"
    if fmt == "dot":
        lines = ["digraph trust {"]
        for name, attrs in graph.nodes(data=True):
            label = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
            lines.append(f'  "{name}" [label="{name}\\n{label}"];')
        for a, b, data in graph.edges(data=True):
            lines.append(f'  "{a}" -> "{b}" [label="{data["type"]} {data["level"]:g}"];')
        lines.append("}")
        return ("\n".join(lines) + "\n").encode(), "text/vnd.graphviz"
    data = {"nodes": [{"id": n, **a} for n, a in graph.nodes(data=True)],
            "edges": [{"from": a, "to": b, **d} for a, b, d in graph.edges(data=True)]}  # fmt: skip
    return orjson.dumps(data), "application/json"
