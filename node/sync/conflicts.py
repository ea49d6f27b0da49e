"""The keyed state view: for every ``key``, the winning entry among all ledgers held.

Entries carrying a ``key`` are versions of one logical record. An entry whose ``meta.supersedes``
lists the hash of another replaces it; entries that no other entry supersedes are the key's
*heads*. One head wins outright; several heads are concurrent writes, resolved by the configured
strategy:

- ``last-write-wins``: highest timestamp, ties by highest hash;
- ``source-priority``: the head from the ledger listed first in ``source_priority``, then LWW;
- ``manual``: the conflict stays open (LWW is shown meanwhile, marked ``conflict``); resolving it
  appends a signed entry to this node's ledger that supersedes every head, so it replicates;
- ``merge``: a deterministic merge of the heads' payloads (oldest first) by a registered handler.

The state depends only on the set of entries held and the configuration, never on arrival order,
so nodes holding the same entries compute the same ``digest``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from node.errors import EntryNotFound, InvalidRequest
from node.ledger.service import Ledger
from node.metrics import Metrics
from node.settings import ConflictSettings
from node.storage.contract import ConflictRecord, ConflictRepository, StoredEntry
from protocol.canonical import canonical
from protocol.models import EntryDraft

log = logging.getLogger(__name__)

MergeHandler = Callable[[list[dict[str, Any]]], dict[str, Any]]


def json_merge(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Deep-merge JSON objects in order: later values win, nested objects merge member by member."""
    merged: dict[str, Any] = {}
    for payload in payloads:
        merged = _merge(merged, payload)
    return merged


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result


MERGE_HANDLERS: dict[str, MergeHandler] = {"json-merge": json_merge}


def register_merge_handler(name: str, handler: MergeHandler) -> None:
    """Make ``handler`` available as ``conflicts.merge_handler = name``. It must be deterministic."""
    MERGE_HANDLERS[name] = handler


@dataclass(frozen=True, slots=True)
class KeyState:
    """The state of one key: its winner (or merged value), its heads, and whether it is in conflict."""

    key: str
    status: str  # "ok" | "resolved" (by strategy) | "conflict" (manual, open)
    winner: StoredEntry
    heads: list[StoredEntry]
    value: dict[str, Any]  # the winner's payload, or the merged payload

    def to_wire(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "value": self.value,
            "winner": self.winner.to_wire(),
            "heads": [{"ledger_id": h.ledger_id, "seq": h.seq, "hash": h.hash.hex()} for h in self.heads],
        }

    def fingerprint(self) -> bytes:
        heads = sorted(h.hash.hex() for h in self.heads)
        return canonical([self.key, self.status, self.winner.hash.hex(), heads, self.value])


def _lww(row: StoredEntry) -> tuple[int, bytes]:
    return (row.timestamp, row.hash)


def _supersedes(row: StoredEntry) -> list[str]:
    if row.meta is None:
        return []
    listed = orjson.loads(row.meta).get("supersedes", [])
    return [h for h in listed if isinstance(h, str)] if isinstance(listed, list) else []


class StateView:
    """Computes key states from the store under one conflict configuration."""

    def __init__(
        self, ledger: Ledger, settings: ConflictSettings, conflicts: ConflictRepository, metrics: Metrics | None = None
    ) -> None:
        if settings.strategy == "merge" and settings.merge_handler not in MERGE_HANDLERS:
            raise InvalidRequest(f"conflicts.merge_handler: no handler named {settings.merge_handler!r}")
        self._ledger = ledger
        self._conflicts = conflicts
        self._settings = settings
        self._metrics = metrics
        self._digest: str | None = None

    def resolve_heads(self, key: str, entries: Sequence[StoredEntry]) -> KeyState:
        """The state of ``key`` from all entries carrying it (any order)."""
        superseded = {h for row in entries for h in _supersedes(row)}
        heads = sorted((row for row in entries if row.hash.hex() not in superseded), key=_lww)
        if not heads:  # a cycle of supersedes: fall back to every entry
            heads = sorted(entries, key=_lww)
        latest = heads[-1]
        if len(heads) == 1:
            return KeyState(key, "ok", latest, heads, orjson.loads(latest.payload))
        strategy = self._settings.strategy
        if strategy == "source-priority":
            order = {lid: i for i, lid in enumerate(self._settings.source_priority)}
            best = min(
                heads, key=lambda r: (order.get(r.ledger_id, len(order)), -r.timestamp, bytes(255 - b for b in r.hash))
            )
            return KeyState(key, "resolved", best, heads, orjson.loads(best.payload))
        if strategy == "merge":
            merged = MERGE_HANDLERS[self._settings.merge_handler]([orjson.loads(h.payload) for h in heads])
            return KeyState(key, "resolved", latest, heads, merged)
        status = "conflict" if strategy == "manual" else "resolved"
        return KeyState(key, status, latest, heads, orjson.loads(latest.payload))

    async def state(self, key: str) -> KeyState:
        entries = await self._ledger.keyed(key)
        if not entries:
            raise EntryNotFound(f"no entry carries key {key!r}")
        return self.resolve_heads(key, entries)

    async def states(self, after: str | None, limit: int) -> tuple[list[KeyState], str | None]:
        keys = await self._ledger.entry_keys(after, limit + 1)
        page = [await self.state(k) for k in keys[:limit]]
        return page, keys[limit - 1] if len(keys) > limit else None

    async def conflicts(self, status: str | None = None) -> list[ConflictRecord]:
        """Recorded conflicts of every kind, newest first (only those in ``status`` when given)."""
        return await self._conflicts.all(status)

    async def digest(self) -> str:
        """SHA-256 over every key's state in key order; cached until the next commit."""
        if self._digest is None:
            hasher = hashlib.sha256()
            after: str | None = None
            while True:
                page, after = await self.states(after, 500)
                for state in page:
                    hasher.update(state.fingerprint())
                if after is None:
                    break
            self._digest = hasher.hexdigest()
        return self._digest

    async def on_commit(self, rows: Sequence[StoredEntry]) -> None:
        """after_append hook: drop the cached digest; record concurrent writes to the keys touched.

        Evidence is stored once per head: while the key's latest conflict is open (or was resolved by
        the configured strategy, which resolves every later head the same way), new heads join it and
        heads it holds are not stored again; otherwise a new conflict starts with the current heads."""
        keys = sorted({row.key for row in rows if row.key is not None})
        if not keys:
            return
        self._digest = None
        store = self._conflicts
        strategy = self._settings.strategy
        for key in keys:
            state = await self.state(key)
            if len(state.heads) < 2:
                continue
            heads = {h.hash for h in state.heads}
            latest = await store.latest_for_key(key)
            if latest is not None and (
                latest.status == "open" or (strategy != "manual" and latest.resolution == strategy)
            ):
                new = heads - await store.heads(latest.id)
                if new:
                    await store.add_heads(latest.id, sorted(new))
                    log.info("concurrent writes key=%s new_heads=%d conflict=%d", key, len(new), latest.id)
                continue
            resolution = strategy if state.status == "resolved" else None
            conflict = await store.record_key_conflict(key, sorted(heads), resolution)
            if self._metrics is not None:
                self._metrics.conflicts.labels("key").inc()
            log.info("concurrent writes key=%s heads=%d conflict=%d status=%s", key, len(state.heads), conflict,
                     state.status)  # fmt: skip

    async def resolve(self, conflict_id: int, winner: str | None, payload: dict[str, Any] | None) -> StoredEntry:
        """Resolve an open key conflict: append an entry superseding every head, carrying the winner's
        payload (``winner`` = one head's hash) or ``payload``."""
        found = await self._conflicts.get(conflict_id)
        if found is None or found.status != "open" or found.kind != "key" or found.key is None:
            raise EntryNotFound(f"no open key conflict {conflict_id}")
        key = found.key
        state = await self.state(key)
        heads = {h.hash.hex(): h for h in state.heads}
        if (winner is None) == (payload is None):
            raise InvalidRequest("body: give exactly one of winner (a head's hash) or payload")
        if winner is not None and winner not in heads:
            raise InvalidRequest(f"winner: {winner} is not a head of key {key!r}")
        chosen = orjson.loads(heads[winner].payload) if winner is not None else payload
        base = heads[winner] if winner is not None else state.winner
        draft = EntryDraft(
            stream=base.stream, type="resolution", key=key, payload=chosen or {},
            meta={"supersedes": sorted(heads), "resolves": conflict_id},
        )  # fmt: skip
        (row,) = await self._ledger.append([draft], batch=False)
        await self._conflicts.resolve(conflict_id, f"entry {row.ledger_id}/{row.seq}")
        return row
