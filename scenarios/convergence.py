"""Whether a network has converged: every node holds every ledger that any node holds, each at the same
head (seq and hash, so two copies of one length that differ are not counted as agreeing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str | None

    def __str__(self) -> str:
        return f"seq {self.seq} ({(self.hash or 'empty')[:16]})"


def heads_of(status: dict[str, Any]) -> dict[str, Head]:
    """The head of every ledger a node holds, from its ``GET /admin/status`` answer."""
    return {x["ledger_id"]: Head(x["head_seq"], x["head_hash"]) for x in status["ledgers"]}


def disagreement(heads: dict[str, dict[str, Head]]) -> str | None:
    """None when every node (name -> its heads) holds every ledger at one head; else the first
    difference, in words."""
    ledgers = sorted({lid for held in heads.values() for lid in held})
    for lid in ledgers:
        missing = [node for node, held in heads.items() if lid not in held]
        if missing:
            return f"{', '.join(missing)} does not hold ledger {lid} yet"
        seen = {node: held[lid] for node, held in heads.items()}
        if len(set(seen.values())) > 1:
            return f"ledger {lid} differs: " + ", ".join(f"{node} at {head}" for node, head in seen.items())
    return None


def waiting_links(sync: dict[str, dict[str, Any]]) -> list[str]:
    """Every link ``node → peer`` where the node still waits for the peer to admit it, from each node's
    ``GET /ledger/sync/status`` answer (node name -> answer)."""
    return [f"{node} → {peer['ledger_id']}" for node, answer in sync.items() for peer in answer["peers"]
            if peer["state"] == "waiting"]  # fmt: skip
