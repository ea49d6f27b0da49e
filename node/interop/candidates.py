"""Candidate peers: nodes proposed by introductions, mDNS, registries and peer exchange.

A candidate is a claim: a verified record (a ledger id and the key that signed it) and the sources
that proposed it. Two keys may claim one ledger id (a node and a stranger naming itself after it):
each claim is kept apart, so a stranger's newer record never replaces the owner's, and the operator
chooses by key. Proposing never pins a key or creates a peer (see ``Discovery.consider`` for how a
claim is admitted).

The pending claims (neither peers nor refused) are bounded, and a flood cannot push anything out:
when they are full, claims nobody proposed again for ``ttl_ms`` go first; then a claim from a source
the operator configured (registry, mDNS, peer exchange, bootstrap) takes the place of the oldest
claim that only introduced itself; an introduction that finds no room is refused
(``CandidatesFull``). Peers and refusals are the operator's decisions: never dropped, and not counted,
so refusing a flood makes room. A claim proposed again keeps its place. Every change is saved (``CandidateRepository``),
so the list and the refusals survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from node.errors import CandidatesFull
from node.ledger.clock import wall_ms
from node.storage.contract import CandidateRecord, CandidateRepository
from protocol.records import NodeRecord
from protocol.signing import fingerprint

Status = Literal["candidate", "peer", "refused", "identity-conflict"]
KEPT: frozenset[Status] = frozenset({"peer", "refused"})  # never dropped to make room


@dataclass
class Found:
    """A claim discovered by some source, and what became of it."""

    record: NodeRecord
    sources: set[str] = field(default_factory=set)
    status: Status = "candidate"
    detail: str | None = None
    seen_ms: int = field(default_factory=wall_ms)

    @property
    def claim(self) -> tuple[str, str]:
        return self.record.ledger_id, self.record.public_key

    def to_wire(self) -> dict[str, Any]:
        return {"ledger_id": self.record.ledger_id, "record": self.record.model_dump(),
                "key_fingerprint": fingerprint(bytes.fromhex(self.record.public_key)),
                "sources": sorted(self.sources), "status": self.status, "detail": self.detail,
                "seen_ms": self.seen_ms}  # fmt: skip

    def stored(self) -> CandidateRecord:
        return CandidateRecord(self.record.ledger_id, self.record.public_key, self.record.model_dump_json(),
                               ",".join(sorted(self.sources)), self.status, self.detail, self.seen_ms)  # fmt: skip

    @classmethod
    def restored(cls, row: CandidateRecord) -> Found:
        status: Status = row.status  # type: ignore[assignment]  # written from a Status only
        return cls(NodeRecord.model_validate_json(row.record), set(filter(None, row.sources.split(","))), status,
                   row.detail, row.seen_ms)  # fmt: skip


class Candidates:
    """The bounded list of claims, keyed by (ledger id, key), oldest first; saved on every change."""

    def __init__(self, limit: int, store: CandidateRepository, ttl_ms: int) -> None:
        self._limit = limit
        self._store = store
        self._ttl_ms = ttl_ms
        self._items: dict[tuple[str, str], Found] = {}

    async def load(self) -> None:
        """Read the saved claims (oldest first)."""
        self._items = {found.claim: found for found in map(Found.restored, await self._store.all())}

    def get(self, ledger_id: str, public_key: str) -> Found | None:
        return self._items.get((ledger_id, public_key))

    def claims(self, ledger_id: str) -> list[Found]:
        """Every claim to ``ledger_id``, oldest first."""
        return [found for (lid, _), found in self._items.items() if lid == ledger_id]

    async def put(self, found: Found, *, durable: bool = False) -> Found:
        """Keep ``found`` as its key's claim (in the place the claim already had); make room for a new
        one as the module says, or raise CandidatesFull. Memory changes before any await, so
        concurrent puts never drop one claim twice."""
        dropped: list[tuple[str, str]] = []
        if found.claim not in self._items and self._pending() >= self._limit:
            dropped = self._room_for(found)
        for claim in dropped:
            del self._items[claim]
        self._items[found.claim] = found
        await self._store.save(found.stored(), durable=durable)
        for claim in dropped:
            await self._store.delete(*claim)
        return found

    def _pending(self) -> int:
        return sum(1 for f in self._items.values() if f.status not in KEPT)

    def _room_for(self, found: Found) -> list[tuple[str, str]]:
        droppable = [(c, f) for c, f in self._items.items() if f.status not in KEPT]
        expired = [c for c, f in droppable if f.seen_ms < wall_ms() - self._ttl_ms]
        if expired:
            return expired
        if found.sources - {"introduce"}:  # proposed by a source the operator configured
            introduced = [c for c, f in droppable if f.sources == {"introduce"}]
            if introduced:
                return introduced[:1]
        raise CandidatesFull(
            f"the candidate list is full ({self._limit} pending claims, discovery.max_candidates); proposals are "
            "taken again as claims expire or the operator refuses or admits them"
        )

    async def save(self, found: Found, *, durable: bool = False) -> None:
        """Save a change of a held claim (its status, detail or sources)."""
        if self._items.get(found.claim) is found:
            await self._store.save(found.stored(), durable=durable)

    def all(self) -> list[Found]:
        return sorted(self._items.values(), key=lambda f: f.claim)

    def __len__(self) -> int:
        return len(self._items)
