"""Candidate peers: nodes proposed by introductions, mDNS, registries and peer exchange.

A candidate is a claim: a verified record (a ledger id and the key that signed it) and the sources
that proposed it. Two keys may claim one ledger id (a node and a stranger naming itself after it):
each claim is kept apart, so a stranger's newer record never replaces the owner's, and the operator
chooses by key. Proposing never pins a key or creates a peer (see ``Discovery.consider`` for how a
claim is admitted).

The list is bounded: when it is full the oldest claims that are neither peers nor refused are
dropped, so a flood of introductions costs a fixed amount of memory and never pushes out an
operator's decision. Every change is saved (``CandidateRepository``), so the list and the
refusals survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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

    def __init__(self, limit: int, store: CandidateRepository) -> None:
        self._limit = limit
        self._store = store
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
        """Keep ``found`` as the newest claim of its key; drop the oldest droppable beyond the limit."""
        self._items.pop(found.claim, None)
        self._items[found.claim] = found
        await self._store.save(found.stored(), durable=durable)
        excess = max(0, len(self._items) - self._limit)
        for claim in [c for c, f in self._items.items() if f.status not in KEPT][:excess]:
            del self._items[claim]
            await self._store.delete(*claim)
        return found

    async def save(self, found: Found, *, durable: bool = False) -> None:
        """Save a change of a held claim (its status, detail or sources)."""
        if self._items.get(found.claim) is found:
            await self._store.save(found.stored(), durable=durable)

    def all(self) -> list[Found]:
        return sorted(self._items.values(), key=lambda f: f.claim)

    def __len__(self) -> int:
        return len(self._items)
