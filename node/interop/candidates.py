"""Candidate peers: nodes proposed by introductions, mDNS, registries and peer exchange.

A candidate is a verified record and the sources that proposed it; proposing never pins a key or
creates a peer (see ``Discovery.consider`` for how a candidate is admitted). The list is bounded:
when it is full the oldest candidate that is not a peer is dropped, so a flood of introductions
costs a fixed amount of memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from node.ledger.clock import wall_ms
from protocol.records import NodeRecord

Status = Literal["candidate", "peer", "refused", "identity-conflict"]


@dataclass
class Found:
    """A node discovered by some source, and what became of it."""

    record: NodeRecord
    sources: set[str] = field(default_factory=set)
    status: Status = "candidate"
    detail: str | None = None
    seen_ms: int = field(default_factory=wall_ms)

    def to_wire(self) -> dict[str, Any]:
        return {"ledger_id": self.record.ledger_id, "record": self.record.model_dump(),
                "sources": sorted(self.sources), "status": self.status, "detail": self.detail,
                "seen_ms": self.seen_ms}  # fmt: skip


class Candidates:
    """The bounded list of discovered nodes, keyed by ledger id, oldest first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[str, Found] = OrderedDict()

    def get(self, ledger_id: str) -> Found | None:
        return self._items.get(ledger_id)

    def put(self, found: Found) -> Found:
        """Keep ``found`` as the newest; drop the oldest non-peers beyond the limit."""
        self._items[found.record.ledger_id] = found
        self._items.move_to_end(found.record.ledger_id)
        if len(self._items) > self._limit:
            for ledger_id in [k for k, f in self._items.items() if f.status != "peer"]:
                del self._items[ledger_id]
                if len(self._items) <= self._limit:
                    break
        return found

    def remove(self, ledger_id: str) -> Found | None:
        return self._items.pop(ledger_id, None)

    def all(self) -> list[Found]:
        return [found for _, found in sorted(self._items.items())]

    def __len__(self) -> int:
        return len(self._items)
