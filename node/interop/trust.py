"""The trust graph (networkx ``DiGraph``): signed attestations as edges, effective trust as the best
product of levels along a path of bounded length, expired edges absent.

Attestations are verified against the pinned key of their ``from`` ledger before they count, kept
newest-per-(from, to), and shareable (``GET /network/trust``). Scores are cached; the cache is
dropped when an attestation arrives or the earliest expiry in the graph passes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any

import networkx as nx
import orjson
from pydantic import ValidationError

from node.errors import IdentityConflict, InvalidRequest
from node.ledger.clock import wall_ms
from node.ledger.service import Ledger
from node.settings import TrustSettings
from protocol.errors import BadSignature
from protocol.trust import QUERY_TYPES, SYNC_TYPES, TrustAttestation, attest

log = logging.getLogger(__name__)

FOREVER = 2**53 - 1


class TrustGraph:
    def __init__(self, ledger: Ledger, settings: TrustSettings, clock: Callable[[], int] = wall_ms) -> None:
        self._ledger = ledger
        self._settings = settings
        self._clock = clock
        self._edges: dict[tuple[str, str], TrustAttestation] = {}
        self._cache: dict[tuple[str, str, frozenset[str]], tuple[float, list[str]]] = {}
        self._graphs: dict[frozenset[str] | None, nx.DiGraph] = {}
        self._valid_until = FOREVER

    @property
    def own(self) -> str:
        return self._ledger.ledger_id

    async def load(self) -> None:
        for text in await self._ledger.store.attestations():
            att = TrustAttestation.model_validate_json(text)
            self._edges[(att.source, att.target)] = att
        self._invalidate()

    async def add(self, att: TrustAttestation) -> bool:
        """Verify an attestation under its author's pinned key and keep it if it is the newest."""
        if att.source == self.own:
            key = self._ledger.keys.public_key
        else:
            held = await self._ledger.replicas.held(att.source)
            if held is None:
                raise IdentityConflict(f"attestation from {att.source}: no key is pinned for it here")
            key = held.public_key
        try:
            att.verify(key)
        except BadSignature as exc:
            raise BadSignature(f"attestation {att.source}->{att.target}: signature does not verify") from exc
        held_att = self._edges.get((att.source, att.target))
        if held_att is not None and held_att.issued_at >= att.issued_at:
            return False
        kept = await self._ledger.store.save_attestation(att.source, att.target, att.model_dump_json(by_alias=True),
                                                         att.issued_at)  # fmt: skip
        if kept:
            self._edges[(att.source, att.target)] = att
            self._invalidate()
        return kept

    async def attest(self, target: str, level: float, type_: str, expires_at: int | None = None) -> TrustAttestation:
        """Sign and keep this node's attestation for ``target`` (level 0 revokes)."""
        if target == self.own:
            raise InvalidRequest("to: a node does not attest itself")
        now = max(self._clock(), max((a.issued_at + 1 for a in self._edges.values() if a.source == self.own),
                                     default=0))  # fmt: skip
        att = attest(self._ledger.keys, self.own, target, level, type_, expires_at or FOREVER, now)
        await self.add(att)
        return att

    async def add_many(self, items: Iterable[Any]) -> dict[str, int]:
        """Take shared attestations (wire dicts); returns counts of kept, old and refused ones."""
        counts = {"kept": 0, "old": 0, "refused": 0}
        for item in items:
            try:
                att = TrustAttestation.model_validate(item)
                counts["kept" if await self.add(att) else "old"] += 1
            except (ValidationError, BadSignature, IdentityConflict) as exc:
                log.info("refused attestation: %s", exc)
                counts["refused"] += 1
        return counts

    def forget(self, source: str) -> None:
        """Drop the attestations made by ``source`` (its pin was replaced or removed: they were
        verified under a key that no longer stands for it; the store dropped them already)."""
        for edge in [e for e in self._edges if e[0] == source]:
            del self._edges[edge]
        self._invalidate()

    def attestations(self) -> list[dict[str, object]]:
        return [a.wire() for _, a in sorted(self._edges.items())]

    # --- scores --------------------------------------------------------------------------------

    def score(self, source: str, target: str, kinds: frozenset[str]) -> tuple[float, list[str]]:
        """Best product of levels over paths of at most ``max_depth`` unexpired edges of ``kinds``."""
        if self._clock() >= self._valid_until:
            self._invalidate()
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
        limit = self._settings.query_threshold if threshold is None else threshold
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
        """The unexpired edges (of ``kinds``) as a DiGraph with level, type and expires_at (cached)."""
        if self._clock() >= self._valid_until:
            self._invalidate()
        cached = self._graphs.get(kinds)
        if cached is not None:
            return cached
        now = self._clock()
        graph = self._graphs[kinds] = nx.DiGraph()
        for att in self._edges.values():
            if att.expires_at > now and att.level > 0 and (kinds is None or att.type in kinds):
                graph.add_edge(att.source, att.target, level=att.level, type=att.type, expires_at=att.expires_at)
        return graph

    def _invalidate(self) -> None:
        self._cache.clear()
        self._graphs.clear()
        now = self._clock()
        self._valid_until = min((a.expires_at for a in self._edges.values() if a.expires_at > now), default=FOREVER)

    # --- export --------------------------------------------------------------------------------

    def topology(self, nodes: dict[str, dict[str, Any]], fmt: str) -> tuple[bytes, str]:
        """The trust graph with node attributes (status, lag) as JSON, GraphML or DOT."""
        graph = self.graph().copy()
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
